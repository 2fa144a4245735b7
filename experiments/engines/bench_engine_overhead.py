"""Benchmark 2: engine overhead, milliseconds per evaluation spent in ask + tell (the
evaluation itself excluded), ZDT1 (30 variables), population 50, 5,000 evaluations.

Objective values are computed outside the timed region; asks are made in batches of 8 and
told in id order, as a pool of 8 workers would. Median over --repeats runs.

    nice -n 10 .venv/bin/python experiments/engines/bench_engine_overhead.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from bench_engine_common import machine, summary, write_json  # noqa: E402

from evocl.evolution import create  # noqa: E402
from evocl.evolution.problems import evaluate, problem_space  # noqa: E402
from evocl.records import Result  # noqa: E402


def overhead_ms(algorithm: str, evals: int, seed: int, pop: int = 50) -> tuple[float, float]:
    """(CPU ms, wall ms) per evaluation in ask + tell. CPU time (process_time) is the
    headline: the machine is shared, and wall time also counts waiting for a core."""
    space = problem_space("zdt1")
    engine = create(algorithm, space, population_size=pop, seed=seed)
    cpu = wall = 0.0
    while engine.n_told < evals:
        c0, w0 = time.process_time(), time.perf_counter()
        cands = engine.ask(min(8, evals - engine.n_asked))
        cpu, wall = cpu + time.process_time() - c0, wall + time.perf_counter() - w0
        results = [Result(objectives=evaluate("zdt1", c.config)) for c in cands]
        c0, w0 = time.process_time(), time.perf_counter()
        for c, r in zip(cands, results):
            engine.tell(c, r)
        cpu, wall = cpu + time.process_time() - c0, wall + time.perf_counter() - w0
    return 1000.0 * cpu / engine.n_told, 1000.0 * wall / engine.n_told


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evals", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--algorithms", default="nsga2,async-nsga2,ga,random,optuna-nsga2,optuna-tpe")
    ap.add_argument("--tpe-evals", type=int, default=1000,
                    help="evaluations for optuna-tpe (its cost grows with the history)")
    ap.add_argument("--out", default="engine_overhead.json")
    ap.add_argument("--update", action="store_true",
                    help="keep the other engines' entries of an existing --out file")
    args = ap.parse_args()
    out = {"command": " ".join(["python"] + sys.argv), "evaluations": args.evals,
           "population": 50, "machine": machine(), "cpu_ms_per_evaluation": {},
           "wall_ms_per_evaluation": {}}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", args.out)
    if args.update and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        out["cpu_ms_per_evaluation"] = old["cpu_ms_per_evaluation"]
        out["wall_ms_per_evaluation"] = old["wall_ms_per_evaluation"]
        out["command"] = old["command"] + " ; " + out["command"]
    for alg in args.algorithms.split(","):
        evals = min(args.evals, args.tpe_evals) if alg == "optuna-tpe" else args.evals
        runs = [overhead_ms(alg, evals, seed) for seed in range(args.repeats)]
        out["cpu_ms_per_evaluation"][alg] = {**summary([r[0] for r in runs]), "evaluations": evals}
        out["wall_ms_per_evaluation"][alg] = {**summary([r[1] for r in runs]), "evaluations": evals}
        print(f"{alg:14s} cpu {np.median([r[0] for r in runs]):.3f} ms/eval, wall "
              f"{np.median([r[1] for r in runs]):.3f} ms/eval ({evals} evaluations)", flush=True)
        write_json(args.out, out)


if __name__ == "__main__":
    main()
