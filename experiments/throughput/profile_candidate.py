"""Where a candidate's CPU time goes, operator by operator (torch.profiler), at the demo's
settings: the throughput benchmark's candidates (`bench_throughput.candidates`, seed 0), one
thread, in one evaluator after a warm-up candidate (as in a worker).

    PYTHONPATH=. .venv/bin/python experiments/throughput/profile_candidate.py --ids 0
        # -> experiments/throughput/results/profile_candidate_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", default="0", help="candidate ids of bench_throughput's set")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--out", default=str(ROOT / "experiments" / "throughput" / "results" /
                                         "profile_candidate_cpu.json"))
    args = ap.parse_args()
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)
    from bench_throughput import candidates

    from evocl.cl import CLEvaluator
    from evocl.demo import DEMO_FITNESS_TASKS, DEMO_OPTIONS
    from evocl.storage.atomic import atomic_write_text

    cands = candidates(ROOT / "search_spaces" / "cl_lora.yaml", 32, 0, 1)
    ev = CLEvaluator(stream="default", backbone="minilm", device="cpu",
                     fitness_tasks=DEMO_FITNESS_TASKS, **DEMO_OPTIONS)
    ev(cands[1])  # warm-up: the worker's evaluation cache and kernels, as after a first candidate
    rows = []
    for i in [int(x) for x in args.ids.split(",")]:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            res = ev(cands[i])
        ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in ops)
        top = [{"op": e.key, "self_cpu_s": e.self_cpu_time_total / 1e6,
                "share": e.self_cpu_time_total / total, "calls": e.count}
               for e in ops[:args.top]]
        matmul = sum(e.self_cpu_time_total for e in ops if e.key in ("aten::addmm", "aten::mm",
                                                                      "aten::bmm"))
        rows.append({"id": i, "config": cands[i].config, "self_cpu_s": total / 1e6,
                     "matmul_share": matmul / total, "timings": res.metrics.get("timings"),
                     "top": top})
        print(i, f"matmul {matmul / total:.1%}",
              ", ".join(f"{t['op']} {t['share']:.1%}" for t in top[:8]), flush=True)
    atomic_write_text(args.out, json.dumps(
        {"benchmark": "profile_candidate", "date": time.strftime("%Y-%m-%d %H:%M"),
         "command": "PYTHONPATH=. .venv/bin/python experiments/" + " ".join(
             [Path(sys.argv[0]).name] + sys.argv[1:]),
         "torch": torch.__version__, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
