"""The cheap lowest fidelity replayed on its measurement: hypervolume against time for full
evaluation, `asha` at 2 tasks, and `asha` / `model` at the cheap pass (every task at a
fraction of its steps), from the real MiniLM evaluations of `measure_low_fidelity.py`.

The GPU journals hold no evaluation at a fraction of its steps, so the cheap pass cannot be
replayed from them; `measure_low_fidelity.py` evaluated each of its candidates fully (with the
2-task report) and at the cheap pass on this machine. Each candidate is replayed in stages
with its measured seconds: `full` one stage (its wall time); `asha` (2 tasks) the first two
tasks (the 2-task report's elapsed seconds), then the rest; the cheap-pass arms the cheap
pass (its seconds), then, if promoted, a whole full evaluation (the candidate is retrained
from the start). The real schedulers decide (`evocl.evolution.early_stop.create`, with the
candidate's configuration and every finished result, as the runner gives them), in simulated
time over W workers. A seed is a random order of the measured candidates; the `full` arm's
hypervolume (acc, forgetting; reference (0, 1)) after `--budget` candidates is the level to
reach; ratio = an arm's time to reach it / full evaluation's time to reach it.

    PYTHONPATH=. /work/main/.venv/bin/python experiments/early_stopping/bench_low_fidelity_replay.py \\
        --data experiments/early_stopping/results/low_fidelity_ranking.jsonl --seeds 20 --budget 10 \\
        --out experiments/early_stopping/results/low_fidelity_replay.json
"""

from __future__ import annotations

import argparse
import heapq
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_early_stop import save  # noqa: E402
from bench_early_stop_replay import first_time, front_of, hv_curve  # noqa: E402


def stages(c: dict[str, Any], arm: str, key: str) -> list[tuple[float, dict[str, Any] | None]]:
    """(seconds, report after the stage or None for the last) of one candidate in an arm."""
    full = c["full"]
    if arm == "full":
        return [(full["wall_time"], None)]
    if arm == "asha":
        r2 = c["rung2"]
        return [(r2["elapsed"], {"tasks_seen": 2, "n_tasks": 5, "acc": r2["acc"],
                                 "forgetting": r2["forgetting"], "elapsed": r2["elapsed"]}),
                (full["wall_time"] - r2["elapsed"], None)]
    cheap = c[key]
    return [(cheap["seconds"], {"tasks_seen": 5, "n_tasks": 5, "fidelity": float(key[1:]),
                                "acc": cheap["acc"], "forgetting": cheap["forgetting"],
                                "elapsed": cheap["seconds"]}),
            (full["wall_time"], None)]


def simulate(order: list[dict[str, Any]], arm: str, scheduler: Any, workers: int,
             key: str) -> list[tuple[float, dict[str, float], int]]:
    from evocl.records import Result

    heap: list[tuple[float, int, int, int]] = []   # (time, seq, candidate, stage)
    seq, nxt, done = 0, 0, []
    plans = [stages(c, arm, key) for c in order]

    def start(now: float) -> None:
        nonlocal nxt, seq
        if nxt < len(order):
            heapq.heappush(heap, (now + plans[nxt][0][0], seq, nxt, 0))
            seq, nxt = seq + 1, nxt + 1

    for _ in range(workers):
        start(0.0)
    while heap:
        now, _, cid, k = heapq.heappop(heap)
        secs, report = plans[cid][k]
        c = order[cid]
        if report is None:
            objectives = {"acc": c["full"]["acc"], "forgetting": c["full"]["forgetting"]}
            done.append((now, objectives, cid))
            scheduler.observe(cid, c["config"], Result(objectives=objectives))
        elif scheduler.decide(cid, report, c["config"]):
            heapq.heappush(heap, (now + plans[cid][k + 1][0], seq, cid, k + 1))
            seq += 1
            continue
        start(now)
    return sorted(done, key=lambda x: x[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="experiments/early_stopping/results/low_fidelity_ranking.jsonl")
    ap.add_argument("--fraction", default="0.25")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument("--min-results", type=int, default=4)
    ap.add_argument("--kappa", type=float, default=1.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from evocl.evolution.early_stop import create
    from evocl.space import SearchSpace, load

    key = f"f{float(args.fraction):g}"
    pool = [r for line in Path(args.data).read_text().splitlines() if line
            for r in [json.loads(line)] if r["status"] == "ok" and r.get("rung2") and r.get(key)]
    cl = load(str(Path(__file__).resolve().parents[2] / "search_spaces" / "cl_lora.yaml"))
    space = SearchSpace.from_dict({"parameters": cl.to_dict()["parameters"],
                                   "objectives": {"acc": "maximize", "forgetting": "minimize"}})
    f = float(args.fraction)
    arms = {"full": lambda: create("none", space),
            "asha": lambda: create("asha", space, eta=args.eta),
            "asha at the cheap pass": lambda: create("asha", space, eta=args.eta,
                                                     low_fidelity=f, rungs=[]),
            "model at the cheap pass": lambda: create("model", space, low_fidelity=f,
                                                      min_results=args.min_results,
                                                      kappa=args.kappa),
            "model at 2 tasks": lambda: create("model", space, min_results=args.min_results,
                                               kappa=args.kappa)}
    stage_of = {"asha at the cheap pass": "low", "model at the cheap pass": "low",
                "model at 2 tasks": "asha"}
    rows = []
    for seed in range(args.seeds):
        order = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
        full_done = simulate(order, "full", arms["full"](), args.workers, key)
        full = hv_curve(full_done)
        hv_star, t_end = full[args.budget - 1][1], full[args.budget - 1][0]
        t_full = first_time(full, hv_star)
        front = front_of(full_done[:args.budget])
        row = {"seed": seed, "hv_full": hv_star, "t_full": t_full}
        for name, make in arms.items():
            if name == "full":
                continue
            done = simulate(order, stage_of.get(name, name), make(), args.workers, key)
            curve = hv_curve(done)
            t = first_time(curve, hv_star)
            row[name] = {"ratio": None if t is None else t / t_full,
                         "hv_at_half_budget_time": max([h for s, h in curve if s <= t_end / 2],
                                                       default=0.0),
                         "started": len(order), "completed": len(done),
                         "front_lost": sorted(front - {c for *_, c in done})}
        rows.append(row)
        print(f"seed {seed}: " + "; ".join(
            f"{n} {'never' if row[n]['ratio'] is None else round(row[n]['ratio'], 2)}"
            for n in arms if n != "full"), flush=True)
    summary: dict[str, Any] = {"candidates_in_pool": len(pool)}
    for name in arms:
        if name == "full":
            continue
        ratios = [float("inf") if r[name]["ratio"] is None else r[name]["ratio"] for r in rows]
        med = statistics.median(ratios)
        summary[name] = {"median_ratio": med if med != float("inf") else "never",
                         "seeds_at_most_half": sum(x <= 0.5 for x in ratios),
                         "never": sum(x == float("inf") for x in ratios),
                         "seeds_losing_a_front_point": sum(bool(r[name]["front_lost"])
                                                           for r in rows),
                         "median_completed": statistics.median(r[name]["completed"]
                                                               for r in rows)}
    out = {"benchmark": "low_fidelity_replay", "date": time.strftime("%Y-%m-%d %H:%M"),
           "command": "PYTHONPATH=. /work/main/.venv/bin/python " + " ".join(sys.argv),
           "settings": vars(args), "summary": summary, "runs": rows}
    save(args.out, out, summary)


if __name__ == "__main__":
    main()
