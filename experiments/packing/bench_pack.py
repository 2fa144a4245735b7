"""Packed evaluation (`evocl.cl.pack`, issue 20): evaluations/s and peak memory of the same N
candidates trained one at a time (`CLEvaluator`, today's worker) and in packs of K.

Each mode runs in a fresh subprocess (so its peak RSS -- VmHWM -- or its CUDA peak is its own;
one torch thread on the CPU), builds the evaluator once (backbone + tokenized stream; not
counted), then evaluates the N candidates: ``unpacked`` one after another, ``pack K`` through
one `Pack` whose freed slots take the next candidate. Reported per mode: wall seconds of the N
evaluations, evaluations/s, speed against unpacked, peak memory (MiB), and the largest
|ACC packed - ACC unpacked| over the N candidates (rounding of other matrix shapes; LoRA
dropout is 0 here so masks are not a difference).

    # CPU (this machine; under the shared heavy lock)
    PYTHONPATH=. flock /work/wt/heavy.lock nice -n 10 .venv/bin/python \
        experiments/packing/bench_pack.py --backbone tiny --ks 1,2,4,8
    PYTHONPATH=. flock /work/wt/heavy.lock nice -n 10 .venv/bin/python \
        experiments/packing/bench_pack.py --backbone minilm --ks 1,2,4,8 --n 8
    # SmolLM2 on chat, memory: 4 candidates, 2 steps per task, 1 task
    PYTHONPATH=. flock /work/wt/heavy.lock nice -n 10 .venv/bin/python \
        experiments/packing/bench_pack.py --backbone smollm2 --stream chat --ks 4 --n 4 --steps 2 \
        --fitness-tasks 1
    # GPU (ready to run unchanged where one is available)
    PYTHONPATH=. .venv/bin/python experiments/packing/bench_pack.py --backbone minilm --device cuda \
        --ks 1,2,4,8,16 --n 32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
#: demo-like budgets, kept short: 3 tasks scored, length 32, 32 validation rows per task
OPTIONS = {"max_length": 32, "max_eval_per_task": 32, "max_test_per_task": 40}
FITNESS_TASKS = 3


def candidates(n: int, steps_override: int | None = None) -> list[dict]:
    """N varied packable configurations (rank, lr, steps, batch, targets, layers, strategies);
    ``steps_override``: every candidate that many steps per task (a memory-only run)."""
    ranks, lrs, steps, batches = (2, 4, 8, 16), (5e-4, 1e-3, 2e-3), (10, 15, 20), (8, 16)
    targets = ("attention", "attention_mlp", "all_linear")
    strategies = ({}, {"replay": True}, {"ewc": True}, {"replay": True, "distill": True})
    return [{"lora_rank": ranks[i % 4], "lr": lrs[i % 3], "steps_per_task": steps[(i // 2) % 3],
             "batch_size": batches[(i // 3) % 2], "lora_targets": targets[(i // 4) % 3],
             "lora_dropout": 0.0, **strategies[(i // 5) % 4],
             **({"steps_per_task": steps_override} if steps_override else {})}
            for i in range(n)]


def child(args: argparse.Namespace) -> None:
    import torch

    if args.device == "cpu":
        torch.set_num_threads(1)
    from evocl.cl import CLEvaluator
    from evocl.cl.evaluation import _peak_memory_mb, _reset_peak_rss
    from evocl.cl.pack import Pack
    from evocl.records import Candidate

    t0 = time.perf_counter()
    ev = CLEvaluator(stream=args.stream, backbone=args.backbone, device=args.device,
                     fitness_tasks=args.fitness_tasks, **OPTIONS,
                     **({"pack_max_rows": args.pack_max_rows} if args.pack_max_rows else {}))
    build = time.perf_counter() - t0
    cands = [Candidate(i, c, f"h{i}", seed=100 + i) for i, c in enumerate(candidates(args.n, args.steps))]
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(dev)
    _reset_peak_rss()
    t0 = time.perf_counter()
    results = {}
    if args.mode == "unpacked":
        for c in cands:
            results[c.id] = ev(c)
    else:
        pack = Pack(ev.backbone, ev.data, int(args.mode), ev.device, ev.fitness_tasks,
                    ev.options)
        todo = list(cands)
        while todo or pack.members:
            while todo and pack.free > 0:
                c = todo.pop(0)
                r = pack.join(c)
                if r is not None:
                    results[c.id] = r
            results.update({c.id: r for c, r in pack.step()})
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda"
            else _peak_memory_mb(dev))
    print(json.dumps({"mode": args.mode, "build_s": build, "wall_s": wall, "peak_mb": peak,
                      "status": {i: r.status for i, r in results.items()},
                      "acc": {i: r.objectives.get("acc") for i, r in results.items()},
                      "errors": [r.error for r in results.values() if r.error]}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="tiny")
    ap.add_argument("--stream", default=None, help="default: synthetic for tiny, else default")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ks", default="1,2,4,8")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--steps", type=int, default=None, help="steps per task for every candidate")
    ap.add_argument("--fitness-tasks", type=int, default=FITNESS_TASKS)
    ap.add_argument("--pack-max-rows", type=int, default=None,
                    help="evaluator option pack_max_rows (rows per packed forward)")
    ap.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    args.stream = args.stream or ("synthetic" if args.backbone == "tiny" else "default")
    if args.mode is not None:
        child(args)
        return
    rows = []
    for mode in ["unpacked", *args.ks.split(",")]:
        cmd = [sys.executable, os.path.abspath(__file__), "--backbone", args.backbone,
               "--stream", args.stream, "--device", args.device, "--n", str(args.n),
               "--fitness-tasks", str(args.fitness_tasks), "--mode", mode]
        cmd += ["--steps", str(args.steps)] if args.steps else []
        cmd += ["--pack-max-rows", str(args.pack_max_rows)] if args.pack_max_rows else []
        env = {**os.environ, "OMP_NUM_THREADS": "1"} if args.device == "cpu" else None
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"mode {mode} failed")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{mode:>9s}: {row['wall_s']:7.1f} s for {args.n} evaluations "
              f"({args.n / row['wall_s']:.3f}/s), peak {row['peak_mb']:.0f} MiB", flush=True)
    base = rows[0]
    for row in rows:
        row["evals_per_s"] = args.n / row["wall_s"]
        row["speed_vs_unpacked"] = base["wall_s"] / row["wall_s"]
        row["memory_vs_unpacked"] = row["peak_mb"] / base["peak_mb"]
        row["max_abs_acc_diff_vs_unpacked"] = max(
            abs((row["acc"][k] or 0.0) - (base["acc"][k] or 0.0)) for k in base["acc"])
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    doc = {"benchmark": "pack", "date": time.strftime("%Y-%m-%d %H:%M"),
           "command": "PYTHONPATH=. .venv/bin/python experiments/packing/bench_pack.py "
                      + " ".join(a for a in sys.argv[1:]),
           "backbone": args.backbone, "stream": args.stream, "device": args.device,
           "n_candidates": args.n,
           "options": {**OPTIONS, "pack_max_rows": args.pack_max_rows}, "fitness_tasks": args.fitness_tasks,
           "candidates": candidates(args.n, args.steps), "machine": platform.platform(),
           "cpu_threads_per_mode": 1 if args.device == "cpu" else None,
           "load_average_after": load, "rows": rows}
    out = args.out or os.path.join(HERE, "results", f"pack_{args.backbone}_{args.device}.json")
    out = os.path.abspath(out)
    sys.path.insert(0, os.path.dirname(HERE))
    from common import write_json

    write_json(out, doc)  # atomic, with the command, the git commit and the machine
    print("wrote", out)


if __name__ == "__main__":
    main()
