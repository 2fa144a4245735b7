"""Generation barrier vs steady state, replayed on measured evaluation times.

    .venv/bin/python experiments/throughput/throughput_schedule.py experiments/throughput/results/throughput_cpu_after.json \
        --workers 2,4,8,16 --population 8,16

Takes the per-candidate evaluation times of a `bench_throughput.py` result (its first worker
count), or of a search journal (``*.jsonl``: each told result's ``wall_time``, in id order; e.g.
the H100 journals of ``../shared/data/gpu-runs/``), and schedules the same evaluations, in
candidate order, on W simulated workers:

    steady     every worker takes the next evaluation as soon as it is free (async-nsga2,
               random, the Optuna samplers)
    generational  evaluations in generations of P (nsga2, ga): a generation starts when the
               previous one has finished (the barrier); inside it, as steady

and reports the makespan, evaluations per hour and utilization of each (no start-up, no
engine time: the scheduling loss alone). Times are what the benchmark measured, so the
comparison holds for that machine and those candidates; it says nothing of the quality of
the configurations each engine would propose.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path


def steady(times: list[float], workers: int) -> float:
    """Makespan of list scheduling in order on ``workers`` identical workers."""
    free = [0.0] * workers
    end = 0.0
    for t in times:
        start = heapq.heappop(free)
        heapq.heappush(free, start + t)
        end = max(end, start + t)
    return end


def generational(times: list[float], workers: int, population: int) -> float:
    return sum(steady(times[k:k + population], workers) for k in range(0, len(times), population))


def _times(path: Path, measure: str) -> list[float]:
    """Per-candidate seconds in id order: a benchmark result's ``measure``, or a journal's
    ``wall_time`` (its ``measure`` is ignored: journals hold wall times only)."""
    if path.suffix == ".jsonl":
        told: dict[int, float] = {}
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event.get("event") == "tell":
                told[int(event["id"])] = float(event["result"].get("wall_time") or 0.0)
        return [told[k] for k in sorted(told)]
    per = json.loads(path.read_text())["runs"][0]["per_candidate"]
    return [per[k][measure] for k in sorted(per, key=int)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("result")
    ap.add_argument("--workers", default="2")
    ap.add_argument("--population", default="8")
    ap.add_argument("--measure", choices=("wall_s", "cpu_s"), default="cpu_s",
                    help="per-candidate time to schedule (cpu_s: robust to shared cores)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    times = _times(Path(args.result), args.measure)
    rows = []
    for w in [int(x) for x in args.workers.split(",")]:
        s = steady(times, w)
        row = {"workers": w, "steady_makespan_s": round(s, 1),
               "steady_evals_per_hour": round(3600 * len(times) / s, 1),
               "steady_utilization": round(sum(times) / (w * s), 4)}
        for p in [int(x) for x in args.population.split(",")]:
            g = generational(times, w, p)
            row[f"generational_p{p}_makespan_s"] = round(g, 1)
            row[f"generational_p{p}_evals_per_hour"] = round(3600 * len(times) / g, 1)
            row[f"generational_p{p}_utilization"] = round(sum(times) / (w * g), 4)
            row[f"steady_over_generational_p{p}"] = round(g / s, 3)
        rows.append(row)
        print(row)
    measure = "wall_time" if args.result.endswith(".jsonl") else args.measure
    out = {"source": args.result, "measure": measure, "n": len(times),
           "command": "python experiments/" + " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
           "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
