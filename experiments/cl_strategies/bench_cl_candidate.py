"""Wall time of whole candidates through CLEvaluator at demo-sized budgets (real MiniLM).

Each setting builds `CLEvaluator(stream="default", backbone="minilm", ...)` once (as a worker
does) and evaluates sequential fine-tuning and a replay+EWC+distillation candidate; one torch
thread (a worker's share of 2 cores).

    PYTHONPATH=. nice -n 10 .venv/bin/python experiments/cl_strategies/bench_cl_candidate.py
"""

from __future__ import annotations

import os
import platform
import sys
import time

import torch

from bench_cl_cost import write_json  # noqa: E402 (same folder)

SETTINGS = {
    "5 tasks, len 48, eval 48, test 80 (lead's draft DEMO_OPTIONS)":
        ({"max_length": 48, "max_eval_per_task": 48, "max_test_per_task": 80}, None),
    "3 tasks (fitness_tasks=3), len 32, eval 32, test 40":
        ({"max_length": 32, "max_eval_per_task": 32, "max_test_per_task": 40}, 3),
}
CONFIGS = {
    "sequential (space defaults)": {"lr": 5e-4, "steps_per_task": 30, "batch_size": 16,
                                    "lora_dropout": 0.1},
    "sequential, 15 steps": {"lr": 1e-3, "steps_per_task": 15, "batch_size": 16},
    "replay+ewc+distill, 15 steps": {"lr": 1e-3, "steps_per_task": 15, "batch_size": 16,
                                     "replay": True, "replay_ratio": 0.25, "ewc": True,
                                     "distill": True},
}


def main() -> None:
    torch.set_num_threads(1)
    from evocl.cl import CLEvaluator
    from evocl.records import Candidate

    rows = []
    for setting, (opts, k) in SETTINGS.items():
        t0 = time.perf_counter()
        ev = CLEvaluator(stream="default", backbone="minilm", device="cpu", fitness_tasks=k,
                         **opts)
        build = time.perf_counter() - t0
        for i, (name, cfg) in enumerate(CONFIGS.items()):
            r = ev(Candidate(i, cfg, f"h{i}", seed=0))
            o = r.objectives
            rows.append({"setting": setting, "options": opts, "fitness_tasks": k,
                         "config_name": name, "config": cfg, "build_s": build,
                         "wall_s": r.wall_time, "acc": o.get("acc"),
                         "forgetting": o.get("forgetting"), "timings": r.metrics.get("timings")})
            print(f"{setting[:40]:40s} {name:30s} {r.wall_time:6.1f}s acc {o.get('acc', 0):.3f} "
                  f"forgetting {o.get('forgetting', 0):.3f}", flush=True)
    write_json(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "cl_candidate.json"),
               {"benchmark": "cl_candidate", "date": time.strftime("%Y-%m-%d"),
                "command": "PYTHONPATH=. nice -n 10 .venv/bin/python " + " ".join(sys.argv),
                "machine": {"cpus": os.cpu_count(), "torch_threads": 1,
                            "platform": platform.platform(), "loadavg_at_end": os.getloadavg()},
                "rows": rows})


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
