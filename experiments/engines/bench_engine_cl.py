"""Engines on a real (small) continual-learning search: the tiny random-init transformer on the
built-in ``synthetic`` stream (5 class-incremental tasks, fitness on the first 3), LoRA with
replay / EWC / distillation genes; objectives ACC (maximize) and forgetting (minimize).

Every method drives its engine with ask/tell in batches of the population size against one
``CLEvaluator`` built once (as a worker would); evaluations are deterministic per candidate
seed. Measure: hypervolume of the non-dominated (-ACC, forgetting) points of everything
evaluated, reference (0, 1); best ACC seen.

    PYTHONPATH=. nice -n 10 .venv/bin/python experiments/engines/bench_engine_cl.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_engine_common import archive_hv, machine, summary, write_json  # noqa: E402

SPACE = {
    "name": "bench-cl",
    "parameters": {
        "lr": {"type": "float", "low": 1.0e-4, "high": 3.0e-2, "log": True},
        "steps_per_task": {"type": "int", "low": 5, "high": 30, "step": 5},
        "lora_rank": {"type": "categorical", "choices": [2, 4, 8]},
        "replay": {"type": "bool"},
        "replay_ratio": {"type": "float", "low": 0.1, "high": 0.5, "when": {"replay": True}},
        "replay_buffer_per_class": {"type": "int", "low": 2, "high": 16,
                                    "when": {"replay": True}},
        "ewc": {"type": "bool"},
        "ewc_lambda": {"type": "float", "low": 1.0e-2, "high": 1.0e+4, "log": True,
                       "when": {"ewc": True}},
        "distill": {"type": "bool"},
        "distill_alpha": {"type": "float", "low": 0.1, "high": 2.0, "when": {"distill": True}},
    },
    "objectives": {"acc": "maximize", "forgetting": "minimize"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="nsga2,rl,random")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--evals", type=int, default=40)
    ap.add_argument("--out", default="engine_cl.json")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from evocl.cl import CLEvaluator
    from evocl.evolution import create
    from evocl.space import SearchSpace

    space = SearchSpace.from_dict(SPACE)
    t0 = time.perf_counter()
    evaluator = CLEvaluator(stream="synthetic", backbone="tiny", device="cpu", fitness_tasks=3)
    out: dict = {"command": " ".join(["python"] + sys.argv), "space": SPACE,
                 "population": args.population, "evaluations": args.evals,
                 "seeds": args.seeds, "evaluator": {"stream": "synthetic", "backbone": "tiny",
                                                    "fitness_tasks": 3, "device": "cpu",
                                                    "torch_threads": 1},
                 "build_seconds": time.perf_counter() - t0, "machine": machine(),
                 "methods": {}}
    for method in args.methods.split(","):
        hvs, best_acc, secs, runs = [], [], [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            engine = create(method, space, population_size=args.population, seed=seed)
            while engine.n_told < args.evals:
                for cand in engine.ask(min(args.population, args.evals - engine.n_asked)):
                    engine.tell(cand, evaluator(cand))
            secs.append(time.perf_counter() - t0)
            pts = np.array([[-r.objectives["acc"], r.objectives["forgetting"]]
                            for _, r in engine.evaluations() if r.ok])
            hvs.append(archive_hv(pts, [0.0, 1.0]) if len(pts) else 0.0)
            best_acc.append(float(-pts[:, 0].min()) if len(pts) else 0.0)
            runs.append({"seed": seed, "failed": engine.n_failed,
                         "front": [{"id": c.id, "acc": r.objectives["acc"],
                                    "forgetting": r.objectives["forgetting"], "config": c.config}
                                   for c, r in engine.pareto_front()]})
            print(f"{method:8s} seed {seed}: hv {hvs[-1]:.4f} best acc {best_acc[-1]:.3f} "
                  f"({secs[-1]:.0f} s)", flush=True)
        out["methods"][method] = {"hv": summary(hvs), "hv_per_seed": hvs,
                                  "best_acc": summary(best_acc), "best_acc_per_seed": best_acc,
                                  "seconds_per_run": float(np.median(secs)), "runs": runs}
        write_json(args.out, out)


if __name__ == "__main__":
    main()
