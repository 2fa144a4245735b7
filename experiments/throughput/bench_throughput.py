"""Evaluation throughput: evaluations per second, worker utilization, start-up, time per phase.

    flock /work/cpu.lock nice -n 5 env PYTHONPATH=. .venv/bin/python \
        experiments/throughput/bench_throughput.py --workers 2 --label after \
        --out experiments/throughput/results/throughput_cpu_after.json [--limit N]
    # on a GPU machine, unchanged:
    PYTHONPATH=. .venv/bin/python experiments/throughput/bench_throughput.py --workers 1,4,8,16 --gpus-per-eval auto

The candidates: sequential fine-tuning (the space's defaults) plus 32 configurations sampled
from ``search_spaces/cl_lora.yaml`` with seed 0; candidate i trains with seed i (``--rounds
R`` evaluates the set R times, round r with seeds i + 1000 r; ``--limit N`` keeps the first N
of them). For each worker count a fresh
Ray executor (``evocl.execution``) is started, every candidate is submitted at once (the
executor keeps its workers busy: no generation barrier), and the benchmark reports

    startup_s            executor creation (Ray start + actors building the evaluator: imports,
                         backbone, tokenised stream) until every actor is ready
    evals_per_s          evaluations / wall time after start-up (``_e2e``: start-up included)
    utilization          sum of evaluation seconds / (wall x workers evaluating) (``_e2e``
                         likewise; with ``--gpus-per-eval auto`` the workers the packing kept)
    phases               seconds summed over the candidates from ``Result.metrics["timings"]``:
                         train (the training loop), strategies (end-of-task work: Fisher,
                         teacher, buffers), eval (accuracy-matrix rounds), test, other
                         (model build, metrics; wall_time minus the rest)
    cpu_s                CPU seconds of the evaluating thread per candidate (robust to other
                         processes sharing the cores, unlike wall times)

and, per candidate, the measured quantities (accuracy matrix, baseline, test accuracy, final
losses, drift, objectives but wall time and memory), so that ``--compare OTHER.json`` checks
that two runs (before / after a speed-up) measured every candidate identically.

Presets (``--preset auto``: gpu when CUDA is available): ``cpu`` = the demo's settings
(`evocl.demo`: fitness on 3 tasks, max_length 32, 32 validation and 40 test rows per task);
``gpu`` = the evaluator's defaults on all 5 tasks (the H100 runs of issue 13).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: what every candidate must measure identically before and after a speed-up
MEASURED = ("accuracy_matrix", "baseline_acc", "test_acc", "final_task_loss",
            "drift_from_task0", "strategy_counters")
VOLATILE_OBJECTIVES = ("wall_time", "peak_memory_mb")
ROUND_SEED_STRIDE = 1000


class TimedCL:
    """The Ray target: `evocl.cl.CLEvaluator` plus the CPU seconds of each call (the
    evaluating thread's, ``time.thread_time``) and of the build, in ``metrics["bench"]``."""

    def __init__(self, **kwargs: Any):
        w0, c0 = time.perf_counter(), time.thread_time()
        from evocl.cl import CLEvaluator

        self.inner = CLEvaluator(**kwargs)
        self.build = {"build_wall_s": time.perf_counter() - w0,
                      "build_cpu_s": time.thread_time() - c0, "pid": os.getpid()}
        self.first = True

    def __call__(self, candidate: Any, on_task_end: Any = None) -> Any:
        from evocl.records import Result

        c0 = time.thread_time()
        res = self.inner(candidate) if on_task_end is None else self.inner(candidate, on_task_end)
        bench = {"cpu_s": time.thread_time() - c0, "pid": os.getpid()}
        if self.first:
            bench.update(self.build)
            self.first = False
        return Result(res.objectives, {**res.metrics, "bench": bench}, res.status, res.error,
                      res.wall_time)


def candidates(space_path: Path, n: int, seed: int, rounds: int) -> list[Any]:
    import numpy as np

    from evocl.records import Candidate
    from evocl.space import load

    space = load(space_path)
    rng = np.random.default_rng(seed)
    configs = [space.canonical(space.default_config())]
    configs += [space.canonical(space.sample(rng)) for _ in range(n)]
    out = []
    for r in range(rounds):
        for i, cfg in enumerate(configs):
            out.append(Candidate(id=r * len(configs) + i, config=cfg,
                                 config_hash=space.config_hash(cfg),
                                 seed=i + ROUND_SEED_STRIDE * r,
                                 origin="initial" if i == 0 else "sample"))
    return out


def measured(res: Any) -> dict[str, Any]:
    """What must not change: the metrics of MEASURED and the objectives but wall time and
    memory (failures: the reason)."""
    if not res.ok:
        return {"error": res.error}
    return {"objectives": {k: v for k, v in res.objectives.items()
                           if k not in VOLATILE_OBJECTIVES},
            **{k: res.metrics.get(k) for k in MEASURED}}


def _phases(results: list[Any]) -> dict[str, float]:
    out = {"train": 0.0, "strategies": 0.0, "eval": 0.0, "test": 0.0, "other": 0.0}
    for res in results:
        t = res.metrics.get("timings") or {}
        strat = sum((t.get("strategies") or {}).values())
        parts = {"train": float(t.get("train", 0.0)), "strategies": float(strat),
                 "eval": float(t.get("eval", 0.0)), "test": float(t.get("test", 0.0))}
        for k, v in parts.items():
            out[k] += v
        out["other"] += max(0.0, float(res.wall_time or 0.0) - sum(parts.values()))
    total = sum(out.values()) or 1.0
    return {**{k: round(v, 2) for k, v in out.items()},
            **{f"{k}_share": round(v / total, 4) for k, v in out.items()}}


def run_workers(workers: int, cands: list[Any], kwargs: dict[str, Any], cpus: float,
                gpus: Any, timeout: float) -> dict[str, Any]:
    from evocl.execution import create_executor

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    ex = create_executor("ray", target="experiments.bench_throughput:TimedCL",
                         target_kwargs=kwargs, workers=workers, cpus_per_eval=cpus,
                         gpus_per_eval=gpus)
    created = time.perf_counter() - t0
    try:
        ex.wait_ready(timeout)  # type: ignore[attr-defined]
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        for c in cands:
            ex.submit(c)
        got: dict[int, tuple[Any, float]] = {}
        for cand, res in ex.results(timeout=timeout):
            got[cand.id] = (res, time.perf_counter() - t1)
            print(f"  [{workers}w] {len(got):3d}/{len(cands)} id {cand.id:3d} "
                  f"{res.status:6s} {res.wall_time:7.1f}s "
                  f"cpu {res.metrics.get('bench', {}).get('cpu_s', float('nan')):7.1f}s "
                  f"at {got[cand.id][1]:7.1f}s", flush=True)
            if len(got) == len(cands):
                break
        wall = time.perf_counter() - t1
        packing = getattr(ex, "packing_report", lambda: None)()
        evaluating = packing["actors_evaluating"] if packing else workers
    finally:
        ex.shutdown()
    results = [got[c.id][0] for c in cands if c.id in got]
    sum_eval = sum(float(r.wall_time or 0.0) for r in results)
    cpu = [float(r.metrics.get("bench", {}).get("cpu_s", 0.0)) for r in results]
    builds = [r.metrics["bench"] for r in results if "build_wall_s" in r.metrics.get("bench", {})]
    n = len(results)
    return {
        "workers": workers, "workers_evaluating": evaluating, "n": n,
        "failed": {str(c.id): got[c.id][0].error for c in cands
                   if c.id in got and not got[c.id][0].ok},
        "missing": [c.id for c in cands if c.id not in got],
        "ray_and_actors_created_s": round(created, 2), "startup_s": round(startup, 2),
        "actor_build_wall_s": sorted(round(b["build_wall_s"], 2) for b in builds),
        "actor_build_cpu_s": sorted(round(b["build_cpu_s"], 2) for b in builds),
        "wall_s": round(wall, 2),
        "evals_per_s": round(n / wall, 4) if wall else None,
        "evals_per_hour": round(3600 * n / wall, 1) if wall else None,
        "evals_per_s_e2e": round(n / (wall + startup), 4),
        "utilization": round(sum_eval / (evaluating * wall), 4) if wall else None,
        "utilization_e2e": round(sum_eval / (evaluating * (wall + startup)), 4),
        "sum_eval_s": round(sum_eval, 2), "sum_cpu_s": round(sum(cpu), 2),
        "median_eval_s": round(sorted(float(r.wall_time or 0.0) for r in results)[n // 2], 2)
        if n else None,
        "phases": _phases(results), "packing": packing,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "per_candidate": {str(c.id): {"wall_s": round(float(got[c.id][0].wall_time or 0.0), 3),
                                      "cpu_s": round(float(got[c.id][0].metrics.get("bench", {})
                                                           .get("cpu_s", 0.0)), 3),
                                      "finished_at_s": round(got[c.id][1], 2),
                                      "peak_memory_mb": got[c.id][0].objectives.get(
                                          "peak_memory_mb"),
                                      "timings": got[c.id][0].metrics.get("timings"),
                                      "measured": measured(got[c.id][0])}
                          for c in cands if c.id in got},
    }


def compare(mine: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Candidates measured identically in both runs (first worker count of each)."""
    a = mine["runs"][0]["per_candidate"]
    b = other["runs"][0]["per_candidate"]
    common = sorted(set(a) & set(b), key=int)
    differ = [k for k in common if a[k]["measured"] != b[k]["measured"]]
    wall_a = sum(a[k]["wall_s"] for k in common)
    wall_b = sum(b[k]["wall_s"] for k in common)
    cpu_a = sum(a[k]["cpu_s"] for k in common)
    cpu_b = sum(b[k]["cpu_s"] for k in common)
    return {"other": other.get("label"), "other_commit": other.get("commit"),
            "candidates_compared": len(common), "identical": len(common) - len(differ),
            "differ": differ,
            "sum_eval_s": [round(wall_b, 1), round(wall_a, 1)],
            "sum_cpu_s": [round(cpu_b, 1), round(cpu_a, 1)],
            "speedup_eval_s": round(wall_b / wall_a, 3) if wall_a else None,
            "speedup_cpu_s": round(cpu_b / cpu_a, 3) if cpu_a else None,
            "speedup_evals_per_s": round(mine["runs"][0]["evals_per_s"]
                                         / other["runs"][0]["evals_per_s"], 3)}


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "evocl"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _uptime() -> str:
    """``uptime``'s line: the machine's load (other processes may share the cores)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _gpus(value: str) -> Any:
    return value if value == "auto" else float(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="2", help="comma-separated worker counts")
    ap.add_argument("--gpus-per-eval", type=_gpus, default=0.0,
                    help="GPUs per evaluation: a fraction, or auto (pack by measured memory)")
    ap.add_argument("--cpus-per-eval", type=float, default=1.0)
    ap.add_argument("--preset", choices=("auto", "cpu", "gpu"), default="auto")
    ap.add_argument("--backbone", default="minilm")
    ap.add_argument("--stream", default="default")
    ap.add_argument("--space", default=str(ROOT / "search_spaces" / "cl_lora.yaml"))
    ap.add_argument("--n-configs", type=int, default=32)
    ap.add_argument("--limit", type=int, default=None,
                    help="evaluate only the first N candidates (a documented subset)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="evaluate the set this many times (default: 1 on cpu, 3 on gpu)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sampled configurations")
    ap.add_argument("-o", "--option", action="append", default=[],
                    help="evaluator option KEY=VALUE (JSON value), over the preset's")
    ap.add_argument("--fitness-tasks", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=4 * 3600)
    ap.add_argument("--label", default="")
    ap.add_argument("--note", default="", help="free text kept in the JSON (how it was run)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--compare", default=None, help="a result JSON of the same candidates")
    args = ap.parse_args()

    import torch

    from evocl.demo import DEMO_FITNESS_TASKS, DEMO_OPTIONS

    preset = args.preset
    if preset == "auto":
        preset = "gpu" if torch.cuda.is_available() else "cpu"
    options: dict[str, Any] = dict(DEMO_OPTIONS) if preset == "cpu" else {}
    fitness = args.fitness_tasks or (DEMO_FITNESS_TASKS if preset == "cpu" else None)
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    rounds = args.rounds or (1 if preset == "cpu" else 3)
    kwargs = {"stream": args.stream, "backbone": args.backbone, "device": "auto",
              "fitness_tasks": fitness, **options}
    cands = candidates(Path(args.space), args.n_configs, args.seed, rounds)[:args.limit]
    out = Path(args.out) if args.out else (
        ROOT / "experiments" / "throughput" / "results" / f"throughput_{preset}{'_' + args.label if args.label else ''}.json")
    report: dict[str, Any] = {
        "benchmark": "throughput", "label": args.label, "note": args.note, "commit": _commit(),
        "date": time.strftime("%Y-%m-%d %H:%M"), "uptime_before": _uptime(),
        "command": "PYTHONPATH=. .venv/bin/python experiments/throughput/" + " ".join(
            [Path(sys.argv[0]).name] + sys.argv[1:]),
        "preset": preset, "target_kwargs": kwargs, "rounds": rounds,
        "n_candidates": len(cands), "limit": args.limit, "cpus_per_eval": args.cpus_per_eval,
        "gpus_per_eval": args.gpus_per_eval,
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "torch": torch.__version__,
                 "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                 "platform": platform.platform()},
        "runs": []}
    for w in [int(x) for x in args.workers.split(",")]:
        print(f"{w} workers, {len(cands)} candidates, preset {preset}", flush=True)
        row = run_workers(w, cands, kwargs, args.cpus_per_eval, args.gpus_per_eval, args.timeout)
        report["runs"].append(row)
        print({k: v for k, v in row.items() if k != "per_candidate"}, flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
    report["uptime_after"] = _uptime()
    if args.compare:
        report["compare"] = compare(report, json.loads(Path(args.compare).read_text()))
        print("compare", report["compare"], flush=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
