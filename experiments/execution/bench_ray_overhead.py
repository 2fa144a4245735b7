"""Ray executor benchmark: overhead per evaluation and parallel efficiency on real CL evaluations.

    nice -n 10 .venv/bin/python experiments/execution/bench_ray_overhead.py [--out FILE] [--n-noop 200]
        [--n-cl 12] [--backbone tiny] [--stream synthetic]

1. Overhead: a no-op target (``evocl.execution.testing:noop``) evaluated ``--n-noop`` times
   through the executor, one at a time (latency of one round trip: submit -> result) and
   pipelined on 2 workers (throughput); the local executor as the floor.
2. Parallel efficiency: the same ``--n-cl`` candidates (sampled from search_spaces/tiny.yaml
   with seed 0) evaluated by CLEvaluator on 1 worker (T1) and on 2 workers (T2), one CPU and
   one torch thread per worker; efficiency = T1 / (2 * T2). Actor start-up (building the
   target: backbone + tokenized stream) is measured apart and excluded from T1 and T2.
``busy_fraction`` = sum of evaluation times / (workers * wall): how much of the wall time the
workers spent evaluating (the executor's share of any loss); evaluation times themselves grow
when the cores are shared with other processes. Writes JSON (default experiments/execution/results/bench_ray_overhead.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from evocl.execution import create_executor  # noqa: E402
from evocl.records import Candidate  # noqa: E402


def _noop_candidates(n: int) -> list[Candidate]:
    return [Candidate(id=i, config={}, config_hash=str(i), seed=i) for i in range(n)]


def overhead(kind: str, workers: int, n: int, pipelined: bool) -> dict:
    ex = create_executor(kind, target="evocl.execution.testing:noop", workers=workers)
    try:
        if kind == "ray":
            ex.wait_ready(300)
        cands = _noop_candidates(n)
        # warm-up (first calls pay for lazy imports in the worker)
        for c in _noop_candidates(5):
            ex.submit(c)
            list(ex.results())
        t = time.perf_counter()
        if pipelined:
            queue = list(cands)
            done = 0
            while done < n:
                while queue and ex.free_slots() > 0:
                    ex.submit(queue.pop(0))
                for _ in ex.results(timeout=60):
                    done += 1
                    break
        else:
            for c in cands:
                ex.submit(c)
                list(ex.results())
        total = time.perf_counter() - t
    finally:
        ex.shutdown()
    return {"executor": kind, "workers": workers, "n": n, "pipelined": pipelined,
            "total_s": round(total, 4), "ms_per_eval": round(1000 * total / n, 3)}


def cl_candidates(n: int, steps: int | None = None) -> list[Candidate]:
    from evocl.space import load
    space = load(ROOT / "search_spaces" / "tiny.yaml")
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        cfg = space.canonical(space.sample(rng))
        h = space.config_hash(cfg)
        if steps is not None:  # longer evaluations than tiny.yaml's range (CLEvaluator accepts it)
            cfg["steps_per_task"] = steps
        out.append(Candidate(id=i, config=cfg, config_hash=h, seed=i))
    return out


def cl_run(workers: int, cands: list[Candidate], kwargs: dict) -> dict:
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    ex = create_executor("ray", target="evocl.cl:CLEvaluator", target_kwargs=kwargs,
                         workers=workers, cpus_per_eval=1.0)
    try:
        ex.wait_ready(600)
        startup = time.perf_counter() - t0
        t = time.perf_counter()
        queue = list(cands)
        results = {}
        while len(results) < len(cands):
            while queue and ex.free_slots() > 0:
                ex.submit(queue.pop(0))
            for c, r in ex.results(timeout=600):
                results[c.id] = r
                break
        wall = time.perf_counter() - t
    finally:
        ex.shutdown()
    failed = [r.error for r in results.values() if not r.ok]
    return {"workers": workers, "n": len(cands), "startup_s": round(startup, 2),
            "loadavg_1min_before": round(load_before, 2), "loadavg_1min_after": round(os.getloadavg()[0], 2),
            "wall_s": round(wall, 3),
            "sum_eval_s": round(sum(r.wall_time for r in results.values()), 3),
            "busy_fraction": round(sum(r.wall_time for r in results.values())
                                   / (workers * wall), 3),
            "failed": failed,
            "objectives": {i: results[i].objectives for i in sorted(results)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "experiments" / "execution" / "results" / "bench_ray_overhead.json"))
    ap.add_argument("--n-noop", type=int, default=200)
    ap.add_argument("--n-cl", type=int, default=8)
    ap.add_argument("--backbone", default="tiny")
    ap.add_argument("--stream", default="synthetic")
    ap.add_argument("--fitness-tasks", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None,
                    help="override steps_per_task of every candidate (longer evaluations)")
    args = ap.parse_args()

    report: dict = {"command": " ".join(["python"] + sys.argv), "host": {
        "cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}}
    import ray
    report["host"]["ray"] = ray.__version__
    report["overhead"] = [overhead("local", 1, args.n_noop, False),
                          overhead("ray", 1, args.n_noop, False),
                          overhead("ray", 2, args.n_noop, True)]
    for row in report["overhead"]:
        print("overhead", row, flush=True)
    kwargs = {"stream": args.stream, "backbone": args.backbone, "device": "cpu",
              "fitness_tasks": args.fitness_tasks, "max_eval_per_task": 32}
    cands = cl_candidates(args.n_cl, args.steps)
    one = cl_run(1, cands, kwargs)
    print("cl 1 worker", {k: v for k, v in one.items() if k != "objectives"}, flush=True)
    two = cl_run(2, cands, kwargs)
    print("cl 2 workers", {k: v for k, v in two.items() if k != "objectives"}, flush=True)
    det = ("acc", "forgetting", "bwt", "fwt", "plasticity")  # wall time / memory vary by nature
    same = all({k: one["objectives"][i].get(k) for k in det}
               == {k: two["objectives"][i].get(k) for k in det} for i in one["objectives"])
    report["parallel"] = {"target_kwargs": kwargs, "one_worker": one, "two_workers": two,
                          "efficiency": round(one["wall_s"] / (2 * two["wall_s"]), 3),
                          "speedup": round(one["wall_s"] / two["wall_s"], 3),
                          "same_results_1_vs_2_workers": same}
    print("efficiency", report["parallel"]["efficiency"], "same results", same, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
