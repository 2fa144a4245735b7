"""Where a worker's start-up goes: what `CLEvaluator(...)` costs in a fresh process, step by
step (issue 13: is sharing the tokenised stream through Ray's object store worth building?).

Each repeat is a fresh Python process (as a new Ray actor is) that times, wall and CPU
seconds of its main thread: the imports (torch, transformers, peft, evocl's evaluator), the
backbone load, the stream load (reading the data package's files, the seeded split) and its
tokenisation into tensors (`evocl.cl.evaluator.prepare`), one thread, the demo's settings.

    PYTHONPATH=. .venv/bin/python experiments/throughput/bench_worker_build.py --repeats 3
        # -> experiments/throughput/results/worker_build.json
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

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys, time
steps = {}
def mark(name, w, c):
    steps[name] = {"wall_s": time.perf_counter() - w, "cpu_s": time.thread_time() - c}
    return time.perf_counter(), time.thread_time()
w, c = time.perf_counter(), time.thread_time()
import torch
torch.set_num_threads(1)
import transformers, peft
from evocl.cl.evaluator import prepare
from evocl.cl.backbone import load_backbone
from evocl.streams import load_stream
w, c = mark("imports", w, c)
backbone = load_backbone(sys.argv[1])
w, c = mark("backbone", w, c)
stream = load_stream(sys.argv[2], seed=0)
w, c = mark("stream_load", w, c)
data = prepare(stream, backbone, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
w, c = mark("tokenise", w, c)
tensors = [t for split in (data.train, data.val, data.test) for t in (split.ids, split.mask)]
steps["tokenised_mb"] = sum(t.numel() * t.element_size() for t in tensors) / 2**20
print(json.dumps(steps))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="minilm")
    ap.add_argument("--stream", default="default")
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--max-eval", type=int, default=32)
    ap.add_argument("--max-test", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "experiments" / "throughput" / "results" / "worker_build.json"))
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    rows = []
    for r in range(args.repeats):
        out = subprocess.run([sys.executable, "-W", "ignore", "-c", CHILD, args.backbone,
                              args.stream, str(args.max_length), str(args.max_eval),
                              str(args.max_test)], env=env, capture_output=True, text=True,
                             check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(r, {k: (round(v["cpu_s"], 2) if isinstance(v, dict) else round(v, 1))
                  for k, v in row.items()}, flush=True)
    steps = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    median = {k: {m: sorted(row[k][m] for row in rows)[len(rows) // 2]
                  for m in ("wall_s", "cpu_s")} for k in steps}
    report = {"benchmark": "worker_build", "date": time.strftime("%Y-%m-%d %H:%M"),
              "command": "PYTHONPATH=. .venv/bin/python experiments/throughput/" + " ".join(
                  [Path(sys.argv[0]).name] + sys.argv[1:]),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "loadavg": os.getloadavg()},
              "settings": vars(args), "median": median, "rows": rows}
    sys.path.insert(0, str(ROOT))
    from evocl.storage.atomic import atomic_write_text

    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    print(json.dumps(median, indent=1))


if __name__ == "__main__":
    main()
