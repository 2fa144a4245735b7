"""Early stopping replayed on real evaluations: hypervolume against time for full evaluation,
`asha`, and "every candidate 2 tasks, then the best third" (Egele et al. 2023's baseline).

The GPU journals in `/work/shared/data/gpu-runs/` (MiniLM, `cl_lora.yaml`, the 5-task `default`
stream, one H100 shared by 16 workers) hold every evaluated candidate's accuracy matrix R and
its per-task training seconds. Each candidate is replayed as it ran: task t takes its
recorded training time plus its share of the evaluation time; after each task but the last
its fidelity report is built from R with `evocl.cl.evaluation.task_report` (what the real
evaluator sends) and handed to the real scheduler (`evocl.evolution.early_stop`), in
simulated-time order over W workers (a discrete-event simulation of the asynchronous
search). Nothing is predicted: a continued candidate's later tasks are its recorded ones.

Candidates come in a random order drawn from the pool of all successful evaluations of the
stream (about 900; seeds = different orders), as a random search would propose them; each
arm sees the same order. Per seed: `t_full` = when full evaluation reached the hypervolume
it has after `--budget` candidates (HV of (acc, forgetting), reference (0, 1), as in the
issue's table), `t_arm` = when the arm first reached it; ratio = t_arm / t_full (target
<= 0.5).

The arms: `full` (every candidate to the last task); `asha` (the real scheduler, `--eta`,
`--rungs`, ranking on `--objectives`); "2 tasks, best third": candidates in batches of
`--batch` (default 3 x workers) are all trained 2 tasks, then the best third of each batch (the
same multi-objective ranking, `early_stop.promoted`) resumes to the end, ahead of new
candidates. Not modelled: the memory of candidates waiting between their rungs (assumed
free), and any change in per-task seconds from a different number of busy workers (the
recorded seconds are those of 16 workers sharing the H100).

    PYTHONPATH=. nice -n 10 .venv/bin/python experiments/early_stopping/bench_early_stop_replay.py \\
        --seeds 20 --workers 16 --out experiments/early_stopping/results/early_stop_replay.json

Variants: see docs/benchmarks/early-stopping.md.
"""

from __future__ import annotations

import argparse
import glob
import heapq
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path("/work/shared/data/gpu-runs")   # as experiments/gpu_journals/compare_gpu_runs.py


# ------------------------------------------------------------------------------ the pool
def load_pool(data: Path, pattern: str) -> list[dict[str, Any]]:
    """Successful, complete evaluations: R, baseline, per-task durations, objectives."""
    pool = []
    paths = sorted(glob.glob(str(data / pattern)))
    if not paths:
        raise SystemExit(f"no journals {pattern} in {data} (give --data)")
    for path in paths:
        configs: dict[int, dict[str, Any]] = {}
        for line in open(path):
            e = json.loads(line)
            if e.get("event") == "ask":
                configs.update({d["id"]: d["config"] for d in e["candidates"]})
            if e.get("event") != "tell" or e["result"]["status"] != "ok":
                continue
            r = e["result"]
            m, tm = r["metrics"], r["metrics"].get("timings") or {}
            R, per_task = m.get("accuracy_matrix"), tm.get("train_per_task")
            if not R or not per_task or len(per_task) != len(R):
                continue
            T = len(R)
            other = r["wall_time"] - tm["train"] - tm.get("fisher", 0.0) - tm["eval"] \
                - tm.get("test", 0.0)
            task_s = [per_task[t] + (tm.get("fisher", 0.0) + tm["eval"]) / T for t in range(T)]
            task_s[0] += max(0.0, other)            # start-up: model build, data
            pool.append({"R": R, "b": m["baseline_acc"], "task_s": task_s,
                         "test_s": tm.get("test", 0.0), "objectives": r["objectives"],
                         "source": Path(path).name, "config": configs.get(e["id"], {})})
    return pool


# ------------------------------------------------------------------------------ arms
def simulate(order: list[dict[str, Any]], workers: int, scheduler: Any,
             batch_sha: int | None = None) -> list[tuple[float, dict[str, float]]]:
    """(time, objectives) of each completed candidate, in time order.

    ``scheduler``: an early_stop scheduler (``none`` or ``asha``) deciding after every task,
    asynchronously. ``batch_sha``: instead, candidates in batches of this size are all
    trained 2 tasks, then the best third of the batch (the same MO ranking) to the end."""
    from evocl.cl.evaluation import task_report
    from evocl.evolution import pareto
    from evocl.evolution.early_stop import as_result, promoted
    from evocl.records import Result

    done: list[tuple[float, dict[str, float]]] = []
    seq = 0
    heap: list[tuple[float, int, int, int, int]] = []   # (time, seq, worker, cand, task)
    free = list(range(workers))
    nxt = 0
    elapsed: dict[int, float] = {}
    # batch SHA bookkeeping
    waiting: dict[int, list[tuple[int, Any, float]]] = {}  # batch -> (cand, vector, cv)
    go_on: list[tuple[int, int]] = []                       # (cand, task) ready to resume
    signs = pareto.objective_signs(scheduler.space)

    def start(worker: int, now: float) -> bool:
        nonlocal nxt, seq
        if go_on:
            cid, task = go_on.pop(0)
        elif nxt < len(order):
            cid, task = nxt, 0
            nxt += 1
            elapsed[cid] = 0.0
        else:
            return False
        d = order[cid]["task_s"][task]
        seq += 1
        heapq.heappush(heap, (now + d, seq, worker, cid, task))
        return True

    now = 0.0
    for w in list(free):
        if start(w, 0.0):
            free.remove(w)
    while heap:
        now, _, w, cid, task = heapq.heappop(heap)
        c = order[cid]
        elapsed[cid] += c["task_s"][task]
        T = len(c["R"])
        cont = True
        if task < T - 1:
            rep = task_report(task, T, [row for row in c["R"][:task + 1]], c["b"], elapsed[cid])
            rep.update(trainable_params=c["objectives"]["trainable_params"],
                       wall_time=rep["elapsed"])
            if batch_sha is not None:
                if task == 1:   # 2 tasks seen: wait for the rest of the batch
                    b = cid // batch_sha
                    res = as_result(rep)
                    waiting.setdefault(b, []).append(
                        (cid, pareto.min_vector(signs, res),
                         pareto.violation(scheduler.space.constraints, res)))
                    size = min(batch_sha, len(order) - b * batch_sha)
                    if len(waiting[b]) == size:
                        keep = promoted(waiting[b], 3)
                        go_on.extend((k, 2) for k in sorted(keep))
                    cont = None     # the worker moves on; kept ones resume later
            else:
                cont = scheduler.decide(cid, rep, c["config"])
        if cont is True and task < T - 1:
            d = c["task_s"][task + 1]
            seq += 1
            heapq.heappush(heap, (now + d, seq, w, cid, task + 1))
            continue
        if task == T - 1:
            done.append((now + c["test_s"], c["objectives"], cid))
            scheduler.observe(cid, c["config"], Result(objectives=c["objectives"]))
        free.append(w)
        for w2 in sorted(free):
            if start(w2, now):
                free.remove(w2)
            else:
                break
    done.sort(key=lambda x: x[0])
    return done


def hv_curve(done: list[tuple[float, dict[str, float]]]) -> list[tuple[float, float]]:
    from evocl.evolution import pareto
    pts, out = [], []
    for t, o, *_ in done:
        pts.append([-o["acc"], o["forgetting"]])
        out.append((t, pareto.hypervolume(np.array(pts), [0.0, 1.0])))
    return out


def front_of(done: list[tuple[float, dict[str, float], int]]) -> set[int]:
    """Ids of the non-dominated (max acc, min forgetting) results."""
    pts = {c: (o["acc"], o["forgetting"]) for _, o, c in done}
    return {c for c, (a, f) in pts.items()
            if not any(a2 >= a and f2 <= f and (a2 > a or f2 < f) for a2, f2 in pts.values())}


def first_time(curve: list[tuple[float, float]], level: float) -> float | None:
    return next((t for t, hv in curve if hv >= level - 1e-12), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DATA), help="folder of the GPU journals")
    ap.add_argument("--pool", default="def-*.jsonl")
    ap.add_argument("--exclude", default="def-joint.jsonl")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--budget", type=int, default=96, help="candidates of the full arm")
    ap.add_argument("--objectives", default="acc,forgetting",
                    help="what asha ranks on (cl_lora.yaml adds trainable_params)")
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument("--rungs", default=None, help="explicit task counts, e.g. 2,3,4")
    ap.add_argument("--model", default=None, metavar="KEY=VALUE;...",
                    help="add the arm `model` (model-based stopping) with these options, "
                         "e.g. 'rungs=[2];kappa=1' ('' for the defaults)")
    ap.add_argument("--batch", type=int, default=None,
                    help="batch of the '2 tasks, best third' arm (default 3 x workers)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from evocl.evolution.early_stop import create
    from evocl.space import SearchSpace

    pool = [c for c in load_pool(Path(args.data), args.pool)
            if c["source"] not in args.exclude.split(",")]
    directions = {"acc": "maximize", "forgetting": "minimize", "trainable_params": "minimize"}
    from evocl.space import load
    # the GPU runs' space (cl_lora.yaml) with the objectives ranked on: the model scheduler
    # reads the configurations' genes
    cl = load(str(Path(__file__).resolve().parents[1] / "search_spaces" / "cl_lora.yaml"))
    space = SearchSpace.from_dict({
        "parameters": cl.to_dict()["parameters"],
        "objectives": {k: directions[k] for k in args.objectives.split(",")}})
    rows = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        order = [pool[i] for i in rng.permutation(len(pool))[:4 * args.budget]]
        full_done = simulate(order, args.workers, create("none", space))
        full = hv_curve(full_done)
        front_ids = front_of(full_done[:args.budget])
        t_end = full[args.budget - 1][0]
        hv_star = full[args.budget - 1][1]
        t_full = first_time(full, hv_star)
        row = {"seed": seed, "hv_full": hv_star, "t_full": t_full, "t_budget": t_end,
               "full": {"hv_at_half_budget_time": max(
                   [hv for s, hv in full if s <= t_end / 2], default=0.0)}}
        rungs = None if not args.rungs else [int(x) for x in args.rungs.split(",")]
        arms = {"asha": simulate(order, args.workers,
                                 create("asha", space, eta=args.eta, rungs=rungs)),
                "2 tasks, best third": simulate(order, args.workers, create("none", space),
                                                batch_sha=args.batch or 3 * args.workers)}
        if args.model is not None:
            mopts = {k: json.loads(v) for k, _, v in
                     (p.partition("=") for p in args.model.split(";") if p)}
            arms["model"] = simulate(order, args.workers, create("model", space, **mopts))
        for name, done in arms.items():
            curve = hv_curve(done)
            t = first_time(curve, hv_star)
            row[name] = {"t": t, "ratio": None if t is None else t / t_full,
                         "ratio_to_budget_time": None if t is None else t / t_end,
                         "hv_at_half_budget_time": max([hv for s, hv in curve if s <= t_end / 2],
                                                       default=0.0),
                         "completed_by_budget_time": sum(1 for s, *_ in done if s <= t_end),
                         # full evaluation's final front members (its first budget results)
                         # that this arm pruned
                         "front_lost": sorted(front_ids - {c for *_, c in done})}
        rows.append(row)
        said = ["never" if row[n]["ratio"] is None else f"{row[n]['ratio']:.2f}" for n in arms]
        print(f"seed {seed}: full HV {hv_star:.4f} at {t_full:.0f}s (budget {t_end:.0f}s); "
              + "; ".join(f"{n} {r}" for n, r in zip(arms, said)), flush=True)
    summary = {}
    for name in ("asha", "2 tasks, best third") + (("model",) if args.model is not None else ()):
        ratios = [r[name]["ratio"] for r in rows]
        finite = [x if x is not None else float("inf") for x in ratios]
        med = statistics.median(finite)
        summary[name] = {"median_ratio": med if med != float("inf") else "never",
                         "share_at_most_half": sum(x <= 0.5 for x in finite) / len(finite),
                         "never": sum(x is None for x in ratios),
                         "median_hv_at_half_budget_time": statistics.median(
                             r[name]["hv_at_half_budget_time"] for r in rows),
                         "seeds_losing_a_front_point": sum(bool(r[name]["front_lost"])
                                                           for r in rows)}
    summary["median_hv_full"] = statistics.median(r["hv_full"] for r in rows)
    summary["full_median_hv_at_half_budget_time"] = statistics.median(
        r["full"]["hv_at_half_budget_time"] for r in rows)
    # what pruning can save at best: a candidate's seconds in its first 2 tasks, of its total
    first2 = statistics.median((c["task_s"][0] + c["task_s"][1]) / (sum(c["task_s"]) + c["test_s"])
                               for c in pool)
    summary["median_share_of_time_in_first_2_tasks"] = first2
    out = {"benchmark": "early_stop_replay", "date": time.strftime("%Y-%m-%d"),
           "command": "PYTHONPATH=. nice -n 10 .venv/bin/python " + " ".join(sys.argv),
           "pool": {"files": args.pool, "excluded": args.exclude, "candidates": len(pool)},
           "settings": vars(args), "summary": summary, "runs": rows}
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_early_stop import save
    save(args.out, out, summary)


if __name__ == "__main__":
    main()
