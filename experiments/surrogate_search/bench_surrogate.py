"""Surrogate benchmark: every evocl engine against a model of real CL evaluations.

Each algorithm runs through its real ask/tell interface (``evocl.evolution.create``, with
sequential fine-tuning as candidate 0, as ``evocl search`` does) against ``surrogate.py``'s
model of 1,248 GPU evaluations of ``search_spaces/cl_lora.yaml``. A simulated evaluator
emits after each task the same report the real one does (``task_report``: the accuracy rows
so far, acc / forgetting over the tasks seen, the seconds spent), so an early-stopping
scheduler decides exactly as in a real run; a stopped candidate is told as a ``pruned``
Result, a simulated non-finite loss as a ``failed`` one.

Time is simulated with W workers, as the runner drives them: every free worker asks, the
evaluation finishing first is told first and the free slots are refilled before the next
one finishes; an engine that returns fewer candidates than asked (a generation barrier)
leaves workers idle until the next tell. Nothing sleeps: a run of 400 evaluations takes
seconds of CPU.

Two budgets per size N:
- ``evals``: N candidates asked, all told (equal number of evaluations);
- ``time``: the clock stops at N x (mean seconds of a real evaluation) / W, what W perfectly
  busy workers need for N average evaluations; results arriving later do not count (equal
  wall time: engines that idle workers, or pick slow configurations, pay for it).

Score: hypervolume of the successful, feasible results' (acc, forgetting), reference
(acc 0, forgetting 1), the README's figure of merit for the GPU runs.

    nice -n 10 .venv/bin/python experiments/surrogate_search/bench_surrogate.py --fit-quality
    nice -n 10 .venv/bin/python experiments/surrogate_search/bench_surrogate.py --seeds 10 --budgets 50,100,400
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import re
import sys
import time
from typing import Any, Mapping, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import surrogate as sg  # noqa: E402
from evocl.evolution import create, pareto  # noqa: E402
from evocl.records import Candidate, Result  # noqa: E402
from evocl.space import load  # noqa: E402

RESULTS = os.path.join(sg.ROOT, "results")
DEFAULT_ALGORITHMS = "nsga2,async-nsga2,random,optuna-tpe,optuna-nsga2,rl"
REF = (0.0, 1.0)   # (acc, forgetting): reference point of the hypervolume


def _task_report() -> Any:
    from evocl.cl.evaluation import task_report
    return task_report


# ------------------------------------------------------------------------------ evaluation
class SimulatedEvaluation:
    """One candidate's evaluation: per-task reports, then a Result (ok, pruned or failed)."""

    def __init__(self, sur: sg.Surrogate, cand: Candidate, n_tasks: int = sg.N_TASKS):
        self.cand, self.n_tasks = cand, n_tasks
        self.out = sur.outcome(cand.config, cand.seed)
        self.secs = self.out["task_seconds"][:n_tasks]

    def elapsed(self, t: int) -> float:
        """Seconds from the start to the end of task t (0-based)."""
        return float(sum(self.secs[:t + 1]))

    def fails_at(self) -> int | None:
        t = self.out["fail_task"]
        return t if t is not None and t < self.n_tasks else None

    def report(self, t: int) -> dict[str, Any]:
        rows = [list(r[:self.n_tasks]) for r in self.out["R"][:t + 1]]
        report = _task_report()(t, self.n_tasks, rows, self.out["baseline"][:self.n_tasks],
                                self.elapsed(t))
        # as evocl.cl.evaluation.evaluate adds them (peak memory is not modelled)
        report.update(trainable_params=float(self.out["trainable_params"]),
                      wall_time=report["elapsed"])
        return report

    def result(self, trained: int) -> Result:
        """The Result after ``trained`` tasks (== n_tasks: ok; fewer: pruned)."""
        R = [list(r[:trained]) for r in self.out["R"][:trained]]
        summary = sg.summary(R, self.out["baseline"][:trained])
        wall = self.elapsed(trained - 1)
        objectives = {**summary, "trainable_params": float(self.out["trainable_params"]),
                      "wall_time": wall}
        full = [list(r[:self.n_tasks]) for r in self.out["R"][:trained]]
        return Result(objectives=objectives, wall_time=wall,
                      status="ok" if trained == self.n_tasks else "pruned",
                      metrics={"accuracy_matrix": full, "baseline_acc": self.out["baseline"],
                               "tasks_planned": self.n_tasks, "tasks_trained": trained,
                               "simulated": True})

    def failure(self, t: int) -> Result:
        wall = self.elapsed(t - 1) + 0.5 * self.secs[t] if t > 0 else 0.5 * self.secs[0]
        return Result.failed(f"non-finite loss at task {t} (simulated)", wall_time=wall)


# ------------------------------------------------------------------------------ one run
def hv_acc_forgetting(results: Sequence[Result], space: Any) -> float:
    """Hypervolume of (acc, forgetting) of the ok, feasible results; reference (0, 1)."""
    arch = pareto.Archive()
    for i, r in enumerate(results):
        if not r.ok or pareto.violation(space.constraints, r) > 0.0:
            continue
        acc, fg = pareto.finite(r.objectives.get("acc")), pareto.finite(r.objectives.get("forgetting"))
        if acc is None or fg is None:
            continue
        arch.add(i, (-acc, fg))
    if not arch.ids:
        return 0.0
    return pareto.hypervolume(arch.points, [-REF[0], REF[1]])


def run_one(algorithm: str, sur: sg.Surrogate, space: Any, seed: int, workers: int,
            population: int, max_evals: int | None, max_time: float | None,
            early_stop: str = "none", early_stop_options: Mapping[str, Any] | None = None,
            algorithm_options: Mapping[str, Any] | None = None,
            n_tasks: int = sg.N_TASKS) -> dict[str, Any]:
    """One simulated search; returns its hypervolume and counts."""
    engine_name, _, variant = algorithm.partition("@")   # "sa-nsga2@cost": cost_aware on
    opts = dict(algorithm_options or {})
    if variant == "cost":
        opts["cost_aware"] = True
    elif variant:
        raise SystemExit(f"unknown variant {variant!r} of {engine_name} (known: cost)")
    engine = create(engine_name, space, population_size=population, seed=seed,
                    initial=[space.default_config()], **opts)
    # as evocl.runner: the scheduler beside the engine, or (asha at its default rungs) the
    # engine's own pruner where it has one; every report reaches the engine (engine.report)
    from evocl.evolution.early_stop import create as create_scheduler
    scheduler = create_scheduler(early_stop, space, **dict(early_stop_options or {}))
    if (scheduler.name == "asha" and scheduler.options["rungs"] is None
            and scheduler.options["low_fidelity"] is None):
        engine.use_pruner(int(scheduler.options["eta"]), int(scheduler.options["min_tasks"]))
    events: list[tuple[float, int, int, int]] = []   # (time, candidate id, task, seq)
    running: dict[int, SimulatedEvaluation] = {}
    told: list[tuple[float, Result]] = []
    clock, seq, need_ask, cpu = 0.0, 0, True, 0.0
    counts = {"ok": 0, "pruned": 0, "failed": 0}
    busy = 0.0

    def start(cand: Candidate, now: float) -> None:
        nonlocal seq
        ev = SimulatedEvaluation(sur, cand, n_tasks)
        running[cand.id] = ev
        fail = ev.fails_at()
        t = 0 if fail != 0 else -1
        when = now + (ev.elapsed(0) if t == 0 else ev.secs[0] * 0.5)
        heapq.heappush(events, (when, cand.id, t, seq))
        seq += 1

    def finish(cid: int, res: Result, now: float) -> None:
        nonlocal cpu, need_ask, busy
        ev = running.pop(cid)
        t0 = time.process_time()
        engine.tell(ev.cand, res)
        scheduler.observe(cid, ev.cand.config, res)
        cpu += time.process_time() - t0
        told.append((now, res))
        counts[res.status] += 1
        busy += res.wall_time
        need_ask = True

    while True:
        open_ = (max_evals is None or engine.n_asked < max_evals) and \
                (max_time is None or clock < max_time)
        room = workers - len(running)
        if max_evals is not None:
            room = min(room, max_evals - engine.n_asked)
        if open_ and need_ask and room > 0:
            t0 = time.process_time()
            cands = engine.ask(room)
            cpu += time.process_time() - t0
            for c in cands:
                start(c, clock)
            need_ask = len(cands) == room
        if not events:
            break
        when, cid, t, _ = heapq.heappop(events)
        if max_time is not None and when > max_time:
            clock = max_time
            break
        clock = when
        ev = running[cid]
        if t < 0:                                   # failed during this task
            finish(cid, ev.failure(-t - 1), clock)
            continue
        if t == n_tasks - 1:
            finish(cid, ev.result(n_tasks), clock)
            continue
        go = True
        if scheduler.active:
            report = ev.report(t)
            said = engine.report(cid, report)
            t0 = time.process_time()
            go = said if engine.prunes else scheduler.decide(cid, report, ev.cand.config)
            cpu += time.process_time() - t0
            go = True if go is None else go
        if not go:
            finish(cid, ev.result(t + 1), clock)
            continue
        nxt = t + 1
        fail = ev.fails_at()
        if fail == nxt:
            heapq.heappush(events, (clock + 0.5 * ev.secs[nxt], cid, -nxt - 1, seq))
        else:
            heapq.heappush(events, (clock + ev.secs[nxt], cid, nxt, seq))
        seq += 1
    results = [r for _, r in told]
    return {"hv": hv_acc_forgetting(results, space),
            "best_acc": max((r.objectives["acc"] for r in results if r.ok), default=0.0),
            "n_told": len(results), **counts, "sim_wall": clock,
            "utilization": busy / (workers * clock) if clock > 0 else 0.0,
            "engine_cpu_s": cpu}


# ------------------------------------------------------------------------------ fit quality
def fit_quality(space: Any, stream: str, models: Sequence[str], folds: int = 5,
                seed: int = 0) -> dict[str, Any]:
    """Held-out fit of each model: k-fold over evaluations and leave-runs-out (each run's
    journal held out in turn), R^2 and Spearman per target."""
    from scipy.stats import spearmanr
    from sklearn.metrics import r2_score
    from sklearn.model_selection import GroupKFold, KFold

    rows = sg.load_rows(stream)
    ok = [r for r in rows if r["status"] == "ok"]
    feats = sg.Features(space)
    X = feats([r["config"] for r in ok])
    Y, S = sg.targets(ok)
    truth = _derived(np.array([r["R"] for r in ok]), [r["baseline"] for r in ok])
    truth["wall_time"] = np.array([r["wall_time"] for r in ok])
    truth["task_seconds"] = np.array([r["task_seconds"] for r in ok]).ravel()
    truth["R_entries"] = Y[:, :25].ravel()
    truth["trainable_params"] = np.array([r["trainable_params"] for r in ok], dtype=float)
    out: dict[str, Any] = {"stream": stream, "n_ok": len(ok), "n_failed": len(rows) - len(ok),
                           "folds": folds, "models": {}}
    computed = np.array([sg.trainable_params(r["config"]) for r in ok], dtype=float)
    out["trainable_params_exact"] = bool(np.all(computed == truth["trainable_params"]))
    groups = [r["run"] for r in ok]
    splits = {"kfold": list(KFold(folds, shuffle=True, random_state=seed).split(X)),
              "leave_run_out": list(GroupKFold(len(set(groups))).split(X, groups=groups))}
    for model in models:
        out["models"][model] = {}
        for name, split in splits.items():
            P, Q = np.zeros_like(Y), np.zeros_like(S)
            t0 = time.process_time()
            for tr, te in split:
                P[te] = sg._regressor(model, seed).fit(X[tr], Y[tr]).predict(X[te])
                Q[te] = sg._regressor(model, seed).fit(X[tr], S[tr]).predict(X[te])
            pred = _derived(np.clip(P[:, :25], 0, 1).reshape(-1, 5, 5), [r["baseline"] for r in ok])
            secs = np.exp(Q)
            pred["wall_time"] = secs.sum(axis=1)
            pred["task_seconds"] = secs.ravel()
            pred["R_entries"] = np.clip(P[:, :25], 0, 1).ravel()
            scores = {}
            for key in ("acc", "forgetting", "bwt", "plasticity", "R_entries", "task_seconds",
                        "wall_time"):
                scores[key] = {"r2": float(r2_score(truth[key], pred[key])),
                               "spearman": float(spearmanr(truth[key], pred[key])[0])}
            scores["cpu_s"] = time.process_time() - t0
            out["models"][model][name] = scores
    return out


def _derived(Rs: np.ndarray, baselines: Sequence[Sequence[float]]) -> dict[str, np.ndarray]:
    keys = ("acc", "forgetting", "bwt", "plasticity")
    vals = [sg.summary(R.tolist(), b) for R, b in zip(Rs, baselines)]
    return {k: np.array([v[k] for v in vals]) for k in keys}


# ------------------------------------------------------------------------------ main
def _meta(args: argparse.Namespace) -> dict[str, Any]:
    import optuna
    import sklearn
    return {"python": platform.python_version(), "numpy": np.__version__,
            "sklearn": sklearn.__version__, "optuna": optuna.__version__,
            "command": "python experiments/surrogate_search/bench_surrogate.py " + " ".join(sys.argv[1:]),
            "args": vars(args)}


def _stats(values: Sequence[float]) -> dict[str, float]:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3),
            "min": float(min(values)), "max": float(max(values))}


def mean_eval_seconds(rows: Sequence[Mapping[str, Any]]) -> float:
    return float(np.mean([r["wall_time"] for r in rows if r["status"] == "ok"]))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit-quality", action="store_true",
                    help="held-out fit of the surrogate models, then exit")
    ap.add_argument("--algorithms", default=DEFAULT_ALGORITHMS)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--budgets", default="50,100,400")
    ap.add_argument("--modes", default="evals,time", help="evals, time or both")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--model", default="rf", choices=sg.MODELS)
    ap.add_argument("--stream", default="default", choices=("default", "other"))
    ap.add_argument("--noise", type=float, default=0.0)
    ap.add_argument("--early-stop", default="none",
                    help="comma-separated: none, asha, or NAME:KEY=VALUE;KEY=VALUE")
    ap.add_argument("--algorithm-option", action="append", default=[],
                    help="ALGORITHM:KEY=VALUE (JSON value)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--table", nargs="+", metavar="JSON",
                    help="print the Markdown table of these result files (merged), then exit")
    ap.add_argument("--parse-log", metavar="LOG",
                    help="rebuild a results JSON (--out) from the per-run lines a run printed, "
                         "for a run stopped before it wrote its JSON; --command names the "
                         "command that printed them")
    ap.add_argument("--command", default=None, help="with --parse-log")
    ap.add_argument("--pivot", action="store_true",
                    help="with --table: one row per algorithm, one column per budget")
    args = ap.parse_args(argv)
    if args.table:
        runs = []
        for path in args.table:
            with open(path) as f:
                runs += json.load(f)["runs"]
        (print_pivot if args.pivot else print_table)(table(runs))
        return
    if args.parse_log:
        runs = parse_log(args.parse_log)
        _write(args.out, {"meta": {"command": args.command, "parsed_from": args.parse_log,
                                   "note": "rebuilt from the printed per-run lines (best ACC, "
                                           "utilization and run seconds are not printed)"},
                          "runs": runs, "table": table(runs)})
        return
    space = load(sg.SPACE)
    if args.fit_quality:
        res = {"meta": _meta(args),
               **fit_quality(space, args.stream, [m for m in sg.MODELS])}
        out = args.out or os.path.join(RESULTS, f"surrogate_fit_{args.stream}.json")
        _write(out, res)
        print_fit(res)
        return
    rows = sg.load_rows(args.stream)
    t0 = time.perf_counter()
    sur = sg.Surrogate(space, rows, model=args.model, noise=args.noise)
    fit_s = time.perf_counter() - t0
    mean_s = mean_eval_seconds(rows)
    algo_opts: dict[str, dict[str, Any]] = {}
    for item in args.algorithm_option:
        name, _, kv = item.partition(":")
        k, _, v = kv.partition("=")
        algo_opts.setdefault(name, {})[k] = json.loads(v)
    meta = {**_meta(args), "fit_s": fit_s, "mean_eval_seconds": mean_s, "n_rows": len(rows)}
    out = args.out or os.path.join(RESULTS, f"surrogate_bench_{args.stream}_w{args.workers}.json")
    runs = []
    for es in args.early_stop.split(","):
        es_name, _, es_kv = es.partition(":")
        es_opts = {k: json.loads(v) for k, _, v in
                   (p.partition("=") for p in es_kv.split(";") if p)}
        for budget in [int(b) for b in args.budgets.split(",")]:
            for mode in args.modes.split(","):
                for algorithm in args.algorithms.split(","):
                    for seed in range(args.first_seed, args.first_seed + args.seeds):
                        kw = ({"max_evals": budget, "max_time": None} if mode == "evals" else
                              {"max_evals": None, "max_time": budget * mean_s / args.workers})
                        t1 = time.perf_counter()
                        r = run_one(algorithm, sur, space, seed, args.workers, args.population,
                                    early_stop=es_name, early_stop_options=es_opts,
                                    algorithm_options=algo_opts.get(algorithm), **kw)
                        r.update(algorithm=algorithm, seed=seed, budget=budget, mode=mode,
                                 early_stop=es, run_s=time.perf_counter() - t1)
                        runs.append(r)
                        print(f"{es:>6} {mode:>5} {budget:>4} {algorithm:>14} seed {seed:>2}: "
                              f"HV {r['hv']:.4f} told {r['n_told']:>3} "
                              f"(pruned {r['pruned']}, failed {r['failed']}) "
                              f"sim {r['sim_wall']:.0f}s cpu {r['engine_cpu_s']:.1f}s",
                              flush=True)
                        # after every run ("complete": false until the last), so a run
                        # stopped early keeps what it measured
                        _write(out, {"meta": {**meta, "complete": False}, "runs": runs,
                                     "table": table(runs)}, quiet=True)
    res = {"meta": {**meta, "complete": True}, "runs": runs, "table": table(runs)}
    _write(out, res)
    print_table(res["table"])


_LINE = re.compile(r"\s*(?P<early_stop>\S+)\s+(?P<mode>\S+)\s+(?P<budget>\d+)\s+(?P<algorithm>\S+) "
                   r"seed\s+(?P<seed>\d+): HV (?P<hv>\S+) told\s+(?P<n_told>\d+) \(pruned "
                   r"(?P<pruned>\d+), failed (?P<failed>\d+)\) sim (?P<sim_wall>\S+)s cpu "
                   r"(?P<engine_cpu_s>\S+)s$")


def parse_log(path: str) -> list[dict[str, Any]]:
    """The runs of the per-run lines ``main`` prints (other lines are skipped)."""
    runs = []
    with open(path) as f:
        for line in f:
            m = _LINE.match(line.rstrip("\n"))
            if m:
                g = m.groupdict()
                runs.append({**{k: int(g[k]) for k in ("budget", "seed", "n_told", "pruned",
                                                        "failed")},
                             **{k: float(g[k]) for k in ("hv", "sim_wall", "engine_cpu_s")},
                             "early_stop": g["early_stop"], "mode": g["mode"],
                             "algorithm": g["algorithm"]})
    return runs


def table(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple, list] = {}
    for r in runs:
        groups.setdefault((r["early_stop"], r["mode"], r["budget"], r["algorithm"]), []).append(r)
    out = []
    for (es, mode, budget, algorithm), rs in groups.items():
        row = {"early_stop": es, "mode": mode, "budget": budget, "algorithm": algorithm,
               "seeds": len(rs)}
        for key in ("hv", "best_acc", "n_told", "sim_wall", "engine_cpu_s"):
            if all(key in r for r in rs):
                row[key] = _stats([r[key] for r in rs])
        out.append(row)
    return out


def print_table(rows: Sequence[Mapping[str, Any]]) -> None:
    print("| early stop | budget | mode | algorithm | median HV | IQR | best acc | told | sim wall (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in rows:
        h = t["hv"]
        acc = f"{t['best_acc']['median']:.3f}" if "best_acc" in t else "-"
        print(f"| {t['early_stop']} | {t['budget']} | {t['mode']} | `{t['algorithm']}` | "
              f"{h['median']:.4f} | {h['q1']:.4f}-{h['q3']:.4f} | {acc} | "
              f"{t['n_told']['median']:.0f} | {t['sim_wall']['median']:.0f} |")


def print_pivot(rows: Sequence[Mapping[str, Any]]) -> None:
    """Median HV (IQR) per algorithm (rows) and budget (columns), one table per early-stop
    setting and mode; the best median of each column in bold."""
    keys = sorted({(t["early_stop"], t["mode"]) for t in rows})
    for es, mode in keys:
        sub = [t for t in rows if t["early_stop"] == es and t["mode"] == mode]
        budgets = sorted({t["budget"] for t in sub})
        algorithms = list(dict.fromkeys(t["algorithm"] for t in sub))
        cell = {(t["algorithm"], t["budget"]): t for t in sub}
        best = {b: max(t["hv"]["median"] for t in sub if t["budget"] == b) for b in budgets}
        print(f"\nearly stop {es}, budget mode {mode}: median HV (IQR) [seeds]\n")
        print("| algorithm | " + " | ".join(f"{b}" for b in budgets) + " |")
        print("|---|" + "---|" * len(budgets))
        for a in algorithms:
            cells = []
            for b in budgets:
                t = cell.get((a, b))
                if t is None:
                    cells.append("")
                    continue
                h, med = t["hv"], f"{t['hv']['median']:.3f}"
                med = f"**{med}**" if t["hv"]["median"] == best[b] else med
                cells.append(f"{med} ({h['q1']:.3f}-{h['q3']:.3f}) [{t['seeds']}]")
            print(f"| `{a}` | " + " | ".join(cells) + " |")


def print_fit(res: Mapping[str, Any]) -> None:
    print(f"stream {res['stream']}: {res['n_ok']} ok evaluations, trainable_params computed "
          f"exactly: {res['trainable_params_exact']}")
    print("| model | split | acc R^2 / rho | forgetting | BWT | plasticity | R entries | task seconds | wall time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model, by_split in res["models"].items():
        for split, s in by_split.items():
            cells = " | ".join(f"{s[k]['r2']:.3f} / {s[k]['spearman']:.3f}" for k in
                               ("acc", "forgetting", "bwt", "plasticity", "R_entries",
                                "task_seconds", "wall_time"))
            print(f"| {model} | {split} | {cells} |")


def _write(path: str, data: Any, quiet: bool = False) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    if not quiet:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
