"""Early stopping on real CL searches: `--early-stop asha` against full evaluation at equal
wall time, measured as hypervolume (acc, forgetting) over wall-clock seconds.

For each seed, two `evocl search` processes start at the same moment, identical but for
`--early-stop none|asha`, each with one worker and the same `--max-wall-time`, so both see the
same load on the machine. From each journal: the hypervolume of the successful evaluations
after every result (fixed reference point: acc 0, forgetting 1; other objectives of the space
are ignored here), against the search's elapsed seconds. Reported per seed:

- `hv_full`: the full-evaluation arm's final hypervolume, `t_full` the first time it reached it;
- `t_asha`: the first time the asha arm reached `hv_full` (null when it never did);
- `ratio = t_asha / t_full` (target <= 0.5), and each arm's hypervolume at a grid of times.

    PYTHONPATH=. nice -n 10 .venv/bin/python experiments/early_stopping/bench_early_stop.py \\
        --backbone tiny --stream synthetic --space cl_lora --seeds 0,1,2 --wall 300 \\
        --out experiments/early_stopping/results/early_stop_tiny.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REF = {"acc": 0.0, "forgetting": 1.0}   # reference point (as measured, not negated)
# what makes the arms comparable; the command, commit and machine are the provenance that
# common.write_json records, and each seed's row has the load average at its start
SETUP = "every arm of a seed started at once, one worker and one thread each: the same load"


def run_pair(args: argparse.Namespace, seed: int, work: Path) -> dict[str, Path]:
    """Start both arms at once; wait for both; return their run directories."""
    extra = ["--algorithm", args.algorithm]
    arms = {"none": [*extra, "--early-stop", "none"],
            "asha": [*extra, "--early-stop", "asha",
                     *[x for opt in args.early_stop_option for x in ("--early-stop-option", opt)]]}
    return run_arms(args, seed, work, arms)


def run_arms(args: argparse.Namespace, seed: int, work: Path,
             arms: dict[str, list[str]]) -> dict[str, Path]:
    """One `evocl search` per arm (its extra flags), all started at once with one worker and
    the same wall time; wait for all; return their run directories."""
    procs, dirs = {}, {}
    for arm, extra in arms.items():
        run_dir = work / f"seed{seed}-{arm}"
        dirs[arm] = run_dir
        cmd = [sys.executable, "-m", "evocl.cli", "search", "--run-dir", str(run_dir),
               "--space", args.space, "--stream", args.stream, "--backbone", args.backbone,
               "--population", str(args.population),
               "--max-wall-time", str(args.wall), "--workers", "1", "--seed", str(seed),
               "--device", "cpu", "--quiet", *extra]
        if args.fitness_tasks:
            cmd += ["--fitness-tasks", str(args.fitness_tasks)]
        for opt in args.option:
            cmd += ["-o", opt]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        procs[arm] = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                      stderr=open(work / f"seed{seed}-{arm}.log", "w"))
    for arm, p in procs.items():
        if p.wait() != 0:
            raise SystemExit(f"{arm} arm of seed {seed} failed: see {work}/seed{seed}-{arm}.log")
    return dirs


def curve(run_dir: Path) -> dict:
    """(elapsed, hypervolume) after each result, plus counts."""
    import numpy as np

    from evocl.evolution import pareto
    from evocl.records import Result

    events = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
    points, out = [], []
    n = {"ok": 0, "pruned": 0, "failed": 0}
    walls = []
    for e in events:
        if e["event"] != "tell":
            continue
        r = Result.from_dict(e["result"])
        n[r.status] += 1
        walls.append(r.wall_time)
        if r.ok:
            points.append([-r.objectives["acc"], r.objectives["forgetting"]])
        hv = pareto.hypervolume(np.array(points), [-REF["acc"], REF["forgetting"]]) \
            if points else 0.0
        out.append((float(e["elapsed"]), hv))
    from evocl.evolution.early_stop import seconds_saved
    results = [Result.from_dict(e["result"]) for e in events if e["event"] == "tell"]
    return {"curve": out, "counts": n, "eval_seconds": sum(walls),
            "seconds_saved": seconds_saved(results)}


def first_time(points: list[tuple[float, float]], level: float) -> float | None:
    for t, hv in points:
        if hv >= level - 1e-12:
            return t
    return None


def at(points: list[tuple[float, float]], t: float) -> float:
    best = 0.0
    for s, hv in points:
        if s <= t:
            best = hv
    return best


def common_args(ap: argparse.ArgumentParser, seeds: str, wall: float) -> None:
    """The options every real-search benchmark of early stopping takes."""
    ap.add_argument("--backbone", default="tiny")
    ap.add_argument("--stream", default="synthetic")
    ap.add_argument("--space", default="cl_lora")
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--seeds", default=seeds)
    ap.add_argument("--wall", type=float, default=wall)
    ap.add_argument("-o", "--option", action="append", default=[])
    ap.add_argument("--fitness-tasks", type=int, default=None,
                    help="score on the first N tasks (default: every task of the stream)")
    ap.add_argument("--work", default=None, help="keep the run directories here")
    ap.add_argument("--out", required=True)


def save(path: str, out: dict, summary: dict) -> None:
    """Write a benchmark's JSON (atomic, folders made, provenance added) and print its summary."""
    sys.path.insert(0, str(ROOT / "experiments"))
    from common import write_json

    write_json(path, out)
    print(json.dumps(summary, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common_args(ap, "0,1,2", 300.0)
    ap.add_argument("--algorithm", default="nsga2")
    ap.add_argument("--early-stop-option", action="append", default=[])
    args = ap.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="evocl-es-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        t0 = time.time()
        load = os.getloadavg()[0]
        dirs = run_pair(args, seed, work)
        full, asha = curve(dirs["none"]), curve(dirs["asha"])
        hv_full = full["curve"][-1][1] if full["curve"] else 0.0
        t_full = first_time(full["curve"], hv_full)
        t_asha = first_time(asha["curve"], hv_full)
        grid = [args.wall * f for f in (0.25, 0.5, 0.75, 1.0)]
        row = {"seed": seed, "hv_full": hv_full, "t_full": t_full, "t_asha": t_asha,
               "ratio": None if t_asha is None or not t_full else t_asha / t_full,
               "hv_asha_final": asha["curve"][-1][1] if asha["curve"] else 0.0,
               "hv_at": {f"{g:.0f}s": {"none": at(full["curve"], g), "asha": at(asha["curve"], g)}
                         for g in grid},
               "none": {k: full[k] for k in ("counts", "eval_seconds", "seconds_saved")},
               "asha": {k: asha[k] for k in ("counts", "eval_seconds", "seconds_saved")},
               "curves": {"none": full["curve"], "asha": asha["curve"]},
               "load_avg_1min_at_start": load, "wall_clock_s": time.time() - t0}
        rows.append(row)
        ratio = "never" if row["ratio"] is None else f"{row['ratio']:.2f}"
        print(f"seed {seed}: full HV {hv_full:.4f} reached at {t_full}s; asha reached it at "
              f"{t_asha}s (ratio {ratio}); asha final HV {row['hv_asha_final']:.4f}; "
              f"evaluations none {full['counts']} asha {asha['counts']}", flush=True)
    ratios = [r["ratio"] for r in rows]
    ordered = sorted(math.inf if r is None else r for r in ratios)   # never reached: inf
    k = len(ordered)
    median = ordered[k // 2] if k % 2 else (ordered[k // 2 - 1] + ordered[k // 2]) / 2
    summary = {"seeds": k, "reached": sum(r is not None for r in ratios),
               "median_ratio": median if math.isfinite(median) else "never",
               "ratios": ratios}
    out = {"benchmark": "early_stop", "date": time.strftime("%Y-%m-%d"), "setup": SETUP,
           "reference_point": REF, "settings": vars(args), "summary": summary, "runs": rows}
    save(args.out, out, summary)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
