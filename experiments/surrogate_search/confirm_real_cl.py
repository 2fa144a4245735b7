"""Issue 10's confirmation on real continual-learning searches: evocl's default algorithm
against Optuna TPE with the real product (`evocl search`), MiniLM on the `default` stream at
the demo's settings, several seeds, equal workers.

Each (algorithm, seed) is one `evocl search` run directory under ``--root`` (a run already
complete there is kept; a stopped one is resumed): `cl_lora.yaml`, the demo's evaluator
options (fitness on 3 tasks, 32 tokens, 32 validation and 40 test rows per task), sequential
fine-tuning evaluated first (``--baseline``), ``--budget`` evaluations, ``--workers`` Ray
workers of one CPU each. Then, from the journals: the hypervolume of (ACC, forgetting) of
everything evaluated (reference ACC 0, forgetting 1, as the surrogate benchmark) after each
number of evaluations (equal evaluations), at fractions of the shortest run's duration and,
per seed, when that seed's shorter run ended (equal wall time: the search's own clock at each
tell), per run and as medians per algorithm.

    PYTHONPATH=. .venv/bin/python experiments/surrogate_search/confirm_real_cl.py --seeds 0,1,2 --budget 20 \
        --root /tmp/confirm_cl --out experiments/surrogate_search/results/confirm_real_cl.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from evocl.demo import DEMO_FITNESS_TASKS, DEMO_OPTIONS  # noqa: E402

#: the demo's evaluator settings, as CLI flags
DEMO_FLAGS = ["--fitness-tasks", str(DEMO_FITNESS_TASKS),
              *(x for k, v in DEMO_OPTIONS.items() for x in ("-o", f"{k}={json.dumps(v)}"))]
REF = (0.0, 1.0)  # hypervolume reference: ACC 0 (maximized), forgetting 1 (minimized)


def _complete(run: Path, budget: int) -> bool:
    from evocl.storage import read_run

    try:
        return len(read_run(run).evaluations) >= budget
    except Exception:  # noqa: BLE001 - not a run yet
        return False


def run_one(root: Path, algorithm: str, seed: int, budget: int, workers: int,
            backbone: str, stream: str = "default") -> Path:
    run = root / f"{algorithm}-s{seed}"
    evocl = str(Path(sys.executable).parent / "evocl")
    if _complete(run, budget):
        return run
    if (run / "run.yaml").exists():
        cmd = [evocl, "resume", str(run), "--quiet"]
    else:
        cmd = [evocl, "search", "--run-dir", str(run), "--stream", stream, "--backbone",
               backbone, "--algorithm", algorithm, "--budget", str(budget), "--workers",
               str(workers), "--cpus-per-eval", "1", "--seed", str(seed), "--quiet",
               *DEMO_FLAGS]
    print(" ".join(cmd[1:]), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
    return run


class Curve(NamedTuple):
    hv: list[float]                 # hypervolume after each evaluation
    best: list[float]               # ACC of the best so far
    elapsed: list[float | None]     # search seconds at each tell
    failed: int                     # failed evaluations
    seconds: float                  # the run's search seconds (its last tell)


def hv_curve(run: Path) -> Curve:
    """A run's hypervolume of (acc, forgetting) after each evaluation, and what goes with it."""
    from evocl.evolution.pareto import hypervolume
    from evocl.storage import read_run

    view = read_run(run)
    pts: list[list[float]] = []
    hv, best, elapsed = [], [], view.elapsed
    top = 0.0
    for cand, res in view.evaluations:
        o = res.objectives if res.ok else {}
        acc, forg = o.get("acc"), o.get("forgetting")
        if acc is not None and forg is not None and np.isfinite([acc, forg]).all():
            pts.append([-float(acc), float(forg)])
            top = max(top, float(acc))
        hv.append(hypervolume(np.array(pts), np.array([-REF[0], REF[1]])) if pts else 0.0)
        best.append(top)
    return Curve(hv, best, elapsed, sum(1 for _, r in view.evaluations if not r.ok),
                 max(e for e in elapsed if e is not None))


def at_time(hv: list[float], elapsed: list[float | None], t: float) -> float:
    """Hypervolume of the evaluations told by search time ``t``."""
    out = 0.0
    for h, e in zip(hv, elapsed):
        if e is not None and e <= t:
            out = h
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algorithms", default="sa-nsga2,optuna-tpe")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backbone", default="minilm", help="tiny: a smoke test of the script")
    ap.add_argument("--stream", default="default", help="a built-in stream (e.g. bbc-5)")
    ap.add_argument("--root", default="/tmp/confirm_cl")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "surrogate_search" / "results" / "confirm_real_cl.json"))
    ap.add_argument("--report-only", action="store_true", help="read the runs, run nothing")
    args = ap.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    algorithms = args.algorithms.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    uptimes = [os.getloadavg()]
    # interleaved, so that a changing load falls on both algorithms alike
    runs = {(a, s): root / f"{a}-s{s}" for s in seeds for a in algorithms}
    if not args.report_only:
        for (a, s) in runs:
            run_one(root, a, s, args.budget, args.workers, args.backbone, args.stream)
            uptimes.append(os.getloadavg())
    curves = {k: hv_curve(p) for k, p in runs.items() if (p / "run.yaml").exists()}
    horizon = min((c.seconds for c in curves.values()), default=0.0)
    times = [horizon * f for f in (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)]
    ks = sorted({k for k in (5, 10, 15, 20, 30, 40, args.budget) if k <= args.budget})
    per_run: dict[str, Any] = {}
    for (a, s), c in curves.items():
        per_run[f"{a}-s{s}"] = {
            "algorithm": a, "seed": s, "n": len(c.hv),
            "hv_at_evals": {str(k): c.hv[k - 1] for k in ks if k <= len(c.hv)},
            "best_acc_at_evals": {str(k): c.best[k - 1] for k in ks if k <= len(c.best)},
            "hv_at_seconds": {f"{t:.0f}": at_time(c.hv, c.elapsed, t) for t in times},
            "search_seconds": c.seconds,
            "failed": c.failed,
        }
    # equal wall time per seed: every algorithm's hypervolume when the seed's shortest run ended
    paired: dict[str, Any] = {}
    for s in seeds:
        rs = {a: curves[(a, s)] for a in algorithms if (a, s) in curves}
        if len(rs) == len(algorithms):
            t = min(c.seconds for c in rs.values())
            paired[str(s)] = {"seconds": t,
                              **{a: at_time(c.hv, c.elapsed, t) for a, c in rs.items()}}
    summary: dict[str, Any] = {}
    for a in algorithms:
        rs = [r for r in per_run.values() if r["algorithm"] == a]
        if not rs:
            continue
        summary[a] = {
            "seeds": [r["seed"] for r in rs],
            "median_hv_at_evals": {str(k): float(np.median([r["hv_at_evals"][str(k)] for r in rs
                                                            if str(k) in r["hv_at_evals"]]))
                                   for k in ks if all(str(k) in r["hv_at_evals"] for r in rs)},
            "median_hv_at_seconds": {f"{t:.0f}": float(np.median([r["hv_at_seconds"][f"{t:.0f}"]
                                                                  for r in rs])) for t in times},
            "min_hv_final": min(r["hv_at_evals"].get(str(args.budget), 0.0) for r in rs),
            "median_search_seconds": float(np.median([r["search_seconds"] for r in rs])),
            "median_hv_at_seed_horizon": float(np.median([p[a] for p in paired.values()]))
            if paired else None,
        }
    report = {"benchmark": "confirm_real_cl", "date": time.strftime("%Y-%m-%d %H:%M"),
              "command": "PYTHONPATH=. .venv/bin/python experiments/" + " ".join(
                  [Path(sys.argv[0]).name] + sys.argv[1:]),
              "settings": {"stream": args.stream, "backbone": args.backbone, "space": "cl_lora.yaml",
                           "flags": DEMO_FLAGS, "budget": args.budget, "workers": args.workers,
                           "hv_reference": {"acc": REF[0], "forgetting": REF[1]}},
              "loadavg": uptimes, "common_horizon_s": horizon,
              "equal_time_per_seed": paired, "summary": summary,
              "runs": per_run}
    from evocl.storage.atomic import atomic_write_text

    sys.path.insert(0, str(ROOT / "experiments"))
    from common import provenance

    report["provenance"] = provenance()

    atomic_write_text(Path(args.out), json.dumps(report, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
