"""Print the Markdown tables of docs/benchmarks/engines.md from the JSON results.

    .venv/bin/python experiments/engines/bench_engine_table.py
"""

from __future__ import annotations

import json
import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _load(name: str) -> dict | None:
    path = os.path.join(RESULTS, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def quality(name: str = "engine_quality.json") -> None:
    data = _load(name)
    if not data:
        return
    problems = list(data["problems"])
    methods = list(next(iter(data["problems"].values()))["methods"])
    print(f"\n`results/{name}`:\n")
    print("| method | " + " | ".join(f"{p.upper()}: median (IQR) [min, max]" for p in problems)
          + " |")
    print("|---|" + "---|" * len(problems))
    for m in methods:
        cells = []
        for p in problems:
            r = data["problems"][p]["methods"].get(m)
            if r is None:
                cells.append("-")
                continue
            s = r["hv_fraction"]
            note = "" if r["evaluations"] == data["evaluations"] else f" ({r['evaluations']} ev.)"
            cells.append(f"**{s['median']:.3f}** ({s['q1']:.3f}-{s['q3']:.3f}) "
                         f"[{s['min']:.3f}, {s['max']:.3f}]{note}")
        print(f"| {m} | " + " | ".join(cells) + " |")
    print(f"\n{data['seeds']} seeds, population {data['population']}, "
          f"{data['evaluations']} evaluations; seconds per run (median): " + "; ".join(
              f"{m} {data['problems'][problems[0]]['methods'][m]['seconds_per_run']:.1f}"
              for m in methods if m in data['problems'][problems[0]]['methods']))


def overhead() -> None:
    data = _load("engine_overhead.json")
    if not data:
        return
    print("\n| engine | CPU ms / evaluation (median) | wall ms / evaluation (median) | evaluations |")
    print("|---|---|---|---|")
    for alg, s in data["cpu_ms_per_evaluation"].items():
        w = data["wall_ms_per_evaluation"][alg]
        print(f"| {alg} | {s['median']:.3f} | {w['median']:.3f} | {s['evaluations']} |")


def utilization() -> None:
    data = _load("engine_utilization.json")
    if not data:
        return
    print("\n| engine | worker utilization median [min, max] | makespan (median, mean eval = 1) |")
    print("|---|---|---|")
    for alg, s in data["utilization"].items():
        print(f"| {alg} | {s['median']:.3f} [{s['min']:.3f}, {s['max']:.3f}] | "
              f"{data['makespan'][alg]['median']:.0f} |")


def cl_search() -> None:
    data = _load("engine_cl.json")
    if not data:
        return
    print(f"\n| engine | hypervolume (-ACC, forgetting; ref 0, 1): median [min, max] | "
          f"best ACC: median [min, max] | per seed (hv) | s / run |")
    print("|---|---|---|---|---|")
    for m, r in data["methods"].items():
        h, b = r["hv"], r["best_acc"]
        print(f"| {m} | **{h['median']:.3f}** [{h['min']:.3f}, {h['max']:.3f}] | "
              f"{b['median']:.3f} [{b['min']:.3f}, {b['max']:.3f}] | "
              f"{', '.join(f'{v:.3f}' for v in r['hv_per_seed'])} | {r['seconds_per_run']:.0f} |")
    print(f"\n{data['seeds']} seeds, population {data['population']}, "
          f"{data['evaluations']} evaluations per run")


if __name__ == "__main__":
    quality()
    quality("engine_quality_11seeds.json")
    quality("engine_quality_rl.json")
    overhead()
    utilization()
    cl_search()
