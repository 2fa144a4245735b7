"""Benchmark 3: worker utilization with a simulated pool (event-driven clock, no sleeping):
8 workers, population 32, lognormal evaluation times with mean 1 and CV 1.0, ZDT1.

Utilization = total evaluation time / (workers x makespan). A generational engine leaves
workers idle at each generation barrier; async-nsga2 refills a worker as soon as it frees.

    nice -n 10 .venv/bin/python experiments/engines/bench_engine_utilization.py
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from bench_engine_common import (lognormal_durations, machine, simulate, summary,  # noqa: E402
                                 write_json)

from evocl.evolution import create  # noqa: E402
from evocl.evolution.problems import evaluate, problem_space  # noqa: E402
from evocl.records import Result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--population", type=int, default=32)
    ap.add_argument("--evals", type=int, default=3200)
    ap.add_argument("--cv", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--algorithms", default="nsga2,async-nsga2,random")
    ap.add_argument("--out", default="engine_utilization.json")
    args = ap.parse_args()
    space = problem_space("zdt1")
    objective = lambda c: Result(objectives=evaluate("zdt1", c.config))  # noqa: E731
    out = {"command": " ".join(["python"] + sys.argv), **{k: v for k, v in vars(args).items()
                                                          if k != "out"},
           "machine": machine(), "utilization": {}, "makespan": {}}
    for alg in args.algorithms.split(","):
        util, span = [], []
        for seed in range(args.seeds):
            engine = create(alg, space, population_size=args.population, seed=seed)
            draw = lognormal_durations(np.random.default_rng(seed + 1000), cv=args.cv)
            r = simulate(engine, objective, args.evals, args.workers, draw)
            util.append(r["utilization"])
            span.append(r["makespan"])
        out["utilization"][alg] = summary(util)
        out["makespan"][alg] = summary(span)
        print(f"{alg:12s} utilization median {np.median(util):.3f} "
              f"[{min(util):.3f}, {max(util):.3f}], makespan {np.median(span):.0f}", flush=True)
        write_json(args.out, out)


if __name__ == "__main__":
    main()
