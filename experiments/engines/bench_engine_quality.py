"""Benchmark 1: optimization quality on ZDT1, ZDT2 (30 variables) and DTLZ2 (3 objectives,
12 variables); population 50, 5,000 evaluations, several seeds.

Compared: evocl nsga2; evocl async-nsga2 driven by a simulated pool of 8 workers with
lognormal evaluation times (CV 1.0, no real sleeping); pymoo NSGA-II (SBX eta 15 / PM eta 20,
duplicates eliminated); Optuna NSGAIISampler (in-memory study, defaults); evocl random search;
evocl rl (REINFORCE, default options, batches of 50 asked then told); evocl sa-nsga2
(surrogate-assisted, default options, batches of 50 asked then told).
Measure: hypervolume (reference 1.1 per objective) of every non-dominated point evaluated,
as a fraction of the true front's hypervolume.

    nice -n 10 .venv/bin/python experiments/engines/bench_engine_quality.py --seeds 5 --evals 5000
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.dirname(
    __import__("os").path.abspath(__file__)))))
from bench_engine_common import (archive_hv, lognormal_durations, machine, simulate,  # noqa: E402
                                 summary, write_json)

from evocl.evolution import create  # noqa: E402
from evocl.evolution.problems import PROBLEMS, REF, evaluate, problem_space, true_hypervolume  # noqa: E402
from evocl.records import Result  # noqa: E402

POP = 50


def run_evocl(algorithm: str, name: str, seed: int, evals: int) -> np.ndarray:
    space = problem_space(name)
    engine = create(algorithm, space, population_size=POP, seed=seed)
    objective = lambda c: Result(objectives=evaluate(name, c.config))  # noqa: E731
    if algorithm == "async-nsga2":
        draw = lognormal_durations(np.random.default_rng(seed + 1000), cv=1.0)
        simulate(engine, objective, evals, workers=8, duration=draw)
    else:
        while engine.n_told < evals:
            for c in engine.ask(min(POP, evals - engine.n_asked)):
                engine.tell(c, objective(c))
    names = [o.name for o in space.objectives]
    return np.array([[r.objectives[n] for n in names] for _, r in engine.evaluations()])


def run_pymoo(name: str, seed: int, evals: int) -> np.ndarray:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.optimize import minimize

    fn, n_var, n_obj, _ = PROBLEMS[name]
    seen: list[np.ndarray] = []

    class P(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=n_var, n_obj=n_obj, xl=0.0, xu=1.0)

        def _evaluate(self, x, out, *args, **kwargs):
            f = np.array([fn(row) for row in x])
            seen.append(f)
            out["F"] = f

    minimize(P(), NSGA2(pop_size=POP, eliminate_duplicates=True), ("n_eval", evals),
             seed=seed, verbose=False)
    return np.vstack(seen)[:evals]


def run_optuna(name: str, seed: int, evals: int) -> np.ndarray:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fn, n_var, n_obj, _ = PROBLEMS[name]
    study = optuna.create_study(directions=["minimize"] * n_obj,
                                sampler=optuna.samplers.NSGAIISampler(population_size=POP,
                                                                      seed=seed))
    study.optimize(lambda t: fn(np.array([t.suggest_float(f"x{i}", 0.0, 1.0)
                                          for i in range(n_var)])), n_trials=evals)
    return np.array([t.values for t in study.trials])


METHODS = {
    "evocl nsga2": lambda n, s, e: run_evocl("nsga2", n, s, e),
    "evocl async-nsga2 (8 sim. workers)": lambda n, s, e: run_evocl("async-nsga2", n, s, e),
    "pymoo NSGA-II": run_pymoo,
    "optuna NSGAIISampler": run_optuna,
    "evocl random": lambda n, s, e: run_evocl("random", n, s, e),
    "evocl rl": lambda n, s, e: run_evocl("rl", n, s, e),
    "evocl sa-nsga2": lambda n, s, e: run_evocl("sa-nsga2", n, s, e),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--evals", type=int, default=5000)
    ap.add_argument("--optuna-evals", type=int, default=None,
                    help="evaluations for Optuna (default: --evals)")
    ap.add_argument("--problems", default="zdt1,zdt2,dtlz2")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", default="engine_quality.json")
    args = ap.parse_args()
    results: dict = {"command": " ".join(["python"] + sys.argv), "population": POP,
                     "evaluations": args.evals, "seeds": args.seeds, "reference": REF,
                     "machine": machine(), "problems": {}}
    for name in args.problems.split(","):
        true_hv = true_hypervolume(name)
        results["problems"][name] = {"true_hv": true_hv, "methods": {}}
        for method in args.methods.split(","):
            evals = args.evals
            if method.startswith("optuna") and args.optuna_evals:
                evals = args.optuna_evals
            fracs, secs = [], []
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                f = METHODS[method](name, seed, evals)
                secs.append(time.perf_counter() - t0)
                fracs.append(archive_hv(f, [REF] * f.shape[1]) / true_hv)
            results["problems"][name]["methods"][method] = {
                "hv_fraction": summary(fracs), "per_seed": fracs, "evaluations": evals,
                "seconds_per_run": float(np.median(secs))}
            print(f"{name:6s} {method:36s} median {np.median(fracs):.3f} "
                  f"[{min(fracs):.3f}, {max(fracs):.3f}]  {np.median(secs):.1f} s/run", flush=True)
            write_json(args.out, results)
    print(json.dumps({"written": args.out}))


if __name__ == "__main__":
    main()
