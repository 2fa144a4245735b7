"""How well cheap fidelities rank continual-learning candidates against their full evaluation
(issue 22, item 1): the measurement the lowest rung of early stopping is chosen from.

Real evaluations on this machine: all-MiniLM-L6-v2 (or ``--backbone tiny``), a built-in
stream, ``N`` configurations of ``cl_lora.yaml`` (candidate 0: the space's defaults, the
others a scrambled Sobol design, as ``sa-nsga2`` starts), each evaluated

- fully (every task at its steps; the per-task reports give the existing rung "2 tasks at
  full steps" for free), and
- at each ``--fractions`` f: every task at ``max(1, round(f * steps_per_task))`` steps, the
  real evaluator's cheap pass (`evocl.cl.evaluation.evaluate(low_fidelity=f)`), stopped at
  its report (forgetting over the whole stream).

Per fidelity: Spearman's rank correlation of ACC and of forgetting with the full evaluation;
its cost as a share of a full evaluation's seconds; and how often a point of the full
evaluations' Pareto front of (acc, forgetting) would be pruned: (a) all N at once, the best
``N // eta`` promoted (MO-ASHA's rule, `early_stop.promoted`); (b) asynchronously in 200
random arrival orders, each candidate promoted iff among the best ``n // eta`` of the ``n``
that reached the rung so far (the real `asha` scheduler).

One line of JSON per evaluated candidate goes to ``--out``.jsonl as it finishes (a stopped run
keeps them; ``--summarize`` rebuilds the summary from it).

    flock /work/wt/heavy.lock nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=. \\
        /work/main/.venv/bin/python experiments/early_stopping/measure_low_fidelity.py --n 36 \\
        --out experiments/early_stopping/results/low_fidelity_ranking.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def configs(space_path: str, n: int, seed: int) -> list[dict[str, Any]]:
    from evocl.evolution.surrogate_assisted import _sobol
    from evocl.space import load

    space = load(space_path)
    out = [space.default_config()]
    pts = _sobol(len(space.encode(out[0], rng=np.random.default_rng(0))), n, seed)
    for x in pts[: n - 1]:
        out.append(space.decode(list(x)))
    return out


def run(args: argparse.Namespace) -> None:
    from evocl.cl import CLEvaluator
    from evocl.records import Candidate, derive_seed

    fractions = [float(f) for f in args.fractions.split(",")]
    jsonl = Path(args.out).with_suffix(".jsonl")
    done = set()
    if jsonl.exists():
        done = {json.loads(line)["id"] for line in jsonl.read_text().splitlines() if line}
    opts = {"max_length": args.max_length, "max_eval_per_task": args.max_eval,
            "max_test_per_task": 8}
    ev = {f: CLEvaluator(stream=args.stream, backbone=args.backbone, device="cpu",
                         low_fidelity=f, **opts) for f in fractions}
    full_ev = CLEvaluator(stream=args.stream, backbone=args.backbone, device="cpu", **opts)
    for cid, cfg in enumerate(configs(args.space, args.n, args.seed)):
        if cid in done:
            continue
        cand = Candidate(id=cid, config=cfg, config_hash=str(cid),
                         seed=derive_seed(args.seed, "candidate", cid))
        reports: list[dict[str, Any]] = []
        full = full_ev(cand, on_task_end=lambda r: reports.append(r) or True)
        row: dict[str, Any] = {"id": cid, "config": cfg, "status": full.status,
                               "full": {k: full.objectives.get(k) for k in
                                        ("acc", "forgetting", "trainable_params", "wall_time")},
                               "rung2": next(({k: r[k] for k in ("acc", "forgetting", "elapsed")}
                                              for r in reports if r["tasks_seen"] == 2), None)}
        for f in fractions:
            got: list[dict[str, Any]] = []
            res = ev[f](cand, on_task_end=lambda r: got.append(r) and False)
            row[f"f{f:g}"] = ({"acc": got[0]["acc"], "forgetting": got[0]["forgetting"],
                               "seconds": res.wall_time, "steps": got[0]["steps_per_task"]}
                              if got else None)
        with jsonl.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps({k: row[k] for k in row if k != "config"}), flush=True)


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr
    return float(spearmanr(a, b).statistic)


def front(points: dict[int, tuple[float, float]]) -> set[int]:
    """Ids of the non-dominated (max acc, min forgetting) points."""
    out = set()
    for i, (a, f) in points.items():
        if not any((a2 >= a and f2 <= f) and (a2 > a or f2 < f) for j, (a2, f2) in points.items()
                   if j != i):
            out.add(i)
    return out


def summarize(rows: list[dict[str, Any]], fractions: list[float], eta: int) -> dict[str, Any]:
    from evocl.evolution.early_stop import promoted

    ok = [r for r in rows if r["status"] == "ok" and r["rung2"] is not None
          and all(r.get(f"f{f:g}") for f in fractions)]
    full_pts = {r["id"]: (r["full"]["acc"], r["full"]["forgetting"]) for r in ok}
    pf = front(full_pts)
    out: dict[str, Any] = {"candidates": len(ok), "full_front": sorted(pf), "eta": eta,
                           "median_full_seconds": statistics.median(r["full"]["wall_time"]
                                                                    for r in ok)}
    levels = {"2 tasks, full steps": "rung2", **{f"every task, {f:g} of its steps": f"f{f:g}"
                                                 for f in fractions}}
    rng = np.random.default_rng(0)
    orders = [rng.permutation(len(ok)) for _ in range(200)]
    for name, key in levels.items():
        acc_c = [r[key]["acc"] for r in ok]
        fg_c = [r[key]["forgetting"] for r in ok]
        secs = [(r[key]["elapsed"] if key == "rung2" else r[key]["seconds"]) / r["full"]["wall_time"]
                for r in ok]
        members = [(r["id"], (-r[key]["acc"], r[key]["forgetting"]), 0.0) for r in ok]
        kept = set(promoted(members, eta))
        lost_batch = sorted(pf - kept)
        lost_async, any_lost = [], 0
        for order in orders:
            seen: list[tuple[int, tuple[float, float], float]] = []
            lost = 0
            for i in order:
                seen.append(members[i])
                if members[i][0] in pf and members[i][0] not in promoted(seen, eta,
                                                                         newcomer=members[i][0]):
                    lost += 1
            lost_async.append(lost / max(1, len(pf)))
            any_lost += lost > 0
        out[name] = {
            "spearman_acc": spearman(acc_c, [r["full"]["acc"] for r in ok]),
            "spearman_forgetting": spearman(fg_c, [r["full"]["forgetting"] for r in ok]),
            "median_cost_share": statistics.median(secs),
            "front_points_pruned_batch": lost_batch,
            "front_share_pruned_async_mean": float(np.mean(lost_async)),
            "orders_with_a_front_point_pruned": any_lost / len(orders)}
    return out


def gpu_cost_shares(data: str, fractions: list[float]) -> dict[str, float]:
    """What the cheap pass would cost on the GPU runs (`/work/shared/data/gpu-runs`, def-*,
    joint training excluded), estimated from each successful evaluation's timings: f of its
    training and Fisher seconds, half of its evaluation rounds (only the tasks trained so far
    are scored), all of the rest (model build, data), no test round; medians of the share of
    its wall time. The 2-task rung's share is in `bench_early_stop_replay.py`'s output."""
    import glob
    shares: dict[float, list[float]] = {f: [] for f in fractions}
    for path in sorted(glob.glob(f"{data}/def-*.jsonl")):
        if path.endswith("def-joint.jsonl"):
            continue
        for line in open(path):
            e = json.loads(line)
            if e.get("event") != "tell" or e["result"]["status"] != "ok":
                continue
            r, tm = e["result"], e["result"]["metrics"].get("timings") or {}
            if "train" not in tm:
                continue
            w, fi = r["wall_time"], tm.get("fisher", 0.0)
            other = w - tm["train"] - tm["eval"] - tm.get("test", 0.0) - fi
            for f in fractions:
                shares[f].append((f * (tm["train"] + fi) + 0.5 * tm["eval"] + other) / w)
    return {f"{f:g}": statistics.median(v) for f, v in shares.items()}


def print_table(summary: dict[str, Any]) -> None:
    """The summary as the Markdown table of docs/early-stopping.md."""
    print(f"{summary['candidates']} candidates, full evaluation's front {summary['full_front']}, "
          f"median full evaluation {summary['median_full_seconds']:.0f} s\n")
    print("| rung | Spearman ACC | Spearman forgetting | median cost share | front points "
          "pruned, all at once | orders pruning a front point (async) | mean share of the "
          "front pruned (async) |\n|---|---|---|---|---|---|---|")
    for name, v in summary.items():
        if isinstance(v, dict) and "spearman_acc" in v:
            print(f"| {name} | {v['spearman_acc']:.2f} | {v['spearman_forgetting']:.2f} | "
                  f"{v['median_cost_share']:.2f} | {len(v['front_points_pruned_batch'])} of "
                  f"{len(summary['full_front'])} | {v['orders_with_a_front_point_pruned']:.2f} | "
                  f"{v['front_share_pruned_async_mean']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=36)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--space", default="search_spaces/cl_lora.yaml")
    ap.add_argument("--stream", default="default")
    ap.add_argument("--backbone", default="minilm")
    ap.add_argument("--fractions", default="0.25,0.5")
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--max-eval", type=int, default=32)
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument("--summarize", action="store_true", help="only rebuild the summary")
    ap.add_argument("--jsonl", default=None,
                    help="the per-candidate lines (default: --out with .jsonl)")
    ap.add_argument("--gpu-data", default="/work/shared/data/gpu-runs",
                    help="GPU journals for the cheap pass's estimated cost share there")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    t0 = time.time()
    if not args.summarize:
        run(args)
    rows = [json.loads(line) for line in Path(args.jsonl or Path(args.out).with_suffix(".jsonl"))
            .read_text().splitlines() if line]
    fractions = [float(f) for f in args.fractions.split(",")]
    summary = summarize(rows, fractions, args.eta)
    if Path(args.gpu_data).is_dir():
        summary["gpu_runs_estimated_cost_share"] = gpu_cost_shares(args.gpu_data,
                                                                   [0.1, 0.25, 0.5])
    result = {"benchmark": "low_fidelity_ranking", "date": time.strftime("%Y-%m-%d %H:%M"),
              "command": " ".join(sys.argv), "settings": vars(args),
              "complete": len(rows) >= args.n, "seconds": time.time() - t0, "summary": summary}
    Path(args.out).write_text(json.dumps(result, indent=1, default=str).replace("NaN", "null"))
    print_table(summary)


if __name__ == "__main__":
    main()
