"""Issue 22 on real CL searches: hypervolume against wall time for full evaluation, `asha`,
the cheap lowest fidelity, model-based stopping and cost-aware proposals.

For each seed, one `evocl search` process per arm starts at the same moment (one worker, one
torch thread, the same `--max-wall-time`), so every arm sees the same load on the machine:

- `full`:  `--early-stop none`
- `asha`:  `--early-stop asha` (eta 3, rung at 2 tasks)
- `low`:   `--early-stop asha --low-fidelity F --early-stop-option rungs=[]` (the cheap pass
           only: every task at F of its steps, the best third promoted)
- `model`: `--early-stop model --low-fidelity F` (stop only a predicted loser, at the cheap pass)
- `cost`:  `--cost-aware` (sa-nsga2's EI per predicted second), no early stopping
- `tpe`:   `--algorithm optuna-tpe --early-stop none` (the baseline of issue 22's third target)

Every arm but `tpe` runs `sa-nsga2`, the default engine; `full` is the default search.

Scores as `bench_early_stop.py` (its `curve`): hypervolume of (acc, forgetting), reference
(0, 1), after every result, against the search's elapsed seconds; per arm the first time it
reached the `full` arm's final hypervolume (ratio to `full`'s own time; target <= 0.5).

    flock /work/wt/heavy.lock nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=. \\
        /work/main/.venv/bin/python experiments/early_stopping/bench_fidelity_real.py --backbone tiny \\
        --stream synthetic --seeds 0,1 --wall 150 --out experiments/early_stopping/results/fidelity_real_tiny.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_early_stop import (REF, SETUP, at, common_args, curve, first_time, run_arms,  # noqa: E402
                              save)

def arms(low: float) -> dict[str, list[str]]:
    f, sa = str(low), ["--algorithm", "sa-nsga2"]
    return {"full": [*sa, "--early-stop", "none"],
            "asha": [*sa, "--early-stop", "asha"],
            "low": [*sa, "--early-stop", "asha", "--low-fidelity", f, "--early-stop-option", "rungs=[]"],
            "model": [*sa, "--early-stop", "model", "--low-fidelity", f],
            "cost": [*sa, "--early-stop", "none", "--cost-aware"],
            "tpe": ["--algorithm", "optuna-tpe", "--early-stop", "none"]}

def run_seed(args: argparse.Namespace, seed: int, work: Path) -> dict[str, Path]:
    chosen = {a: x for a, x in arms(args.low_fidelity).items() if a in args.arms.split(",")}
    return run_arms(args, seed, work, chosen)

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common_args(ap, "0,1", 150.0)
    ap.add_argument("--low-fidelity", type=float, default=0.25)
    ap.add_argument("--arms", default="full,asha,low,model,cost",
                    help="any of full,asha,low,model,cost,tpe")
    args = ap.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="evocl-fid-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        load = os.getloadavg()[0]
        dirs = run_seed(args, seed, work)
        curves = {arm: curve(d) for arm, d in dirs.items()}
        full = curves["full"]["curve"]
        hv_full = full[-1][1] if full else 0.0
        t_full = first_time(full, hv_full)
        row = {"seed": seed, "hv_full": hv_full, "t_full": t_full,
               "load_avg_1min_at_start": load}
        for arm, c in curves.items():
            t = first_time(c["curve"], hv_full)
            row[arm] = {"t": t, "ratio": None if t is None or not t_full else t / t_full,
                        "hv_final": c["curve"][-1][1] if c["curve"] else 0.0,
                        "hv_at_half_wall": at(c["curve"], args.wall / 2),
                        **{k: c[k] for k in ("counts", "eval_seconds", "seconds_saved")},
                        "curve": c["curve"]}
        rows.append(row)
        print(f"seed {seed}: full HV {hv_full:.4f} at {t_full}s; " + "; ".join(
            f"{a} final {row[a]['hv_final']:.4f} ratio "
            f"{'never' if row[a]['ratio'] is None else round(row[a]['ratio'], 2)} "
            f"{row[a]['counts']}" for a in curves), flush=True)
    summary = {}
    for arm in args.arms.split(","):
        ratios = [r[arm]["ratio"] for r in rows]
        finite = sorted(float("inf") if x is None else x for x in ratios)
        med = statistics.median(finite) if finite else None
        summary[arm] = {"ratios": ratios, "median_ratio": med if med != float("inf") else "never",
                        "median_hv_final": statistics.median(r[arm]["hv_final"] for r in rows),
                        "median_hv_at_half_wall": statistics.median(r[arm]["hv_at_half_wall"]
                                                                    for r in rows)}
    out = {"benchmark": "fidelity_real", "date": time.strftime("%Y-%m-%d %H:%M"),
           "reference_point": REF, "setup": SETUP,
           "settings": vars(args), "summary": summary, "runs": rows}
    save(args.out, out, summary)

if __name__ == "__main__":
    main()
