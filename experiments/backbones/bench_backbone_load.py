"""Backbone load time and peak memory: SmolLM2 from its GGUF file (cold: converted into an
empty cache) and from the cache (warm), tiny-lm, minilm. Each load runs in a fresh process, so
peak RSS (ru_maxrss) is that load's own; import time (torch, transformers) is reported apart.

    PYTHONPATH=. nice -n 10 .venv/bin/python experiments/backbones/bench_backbone_load.py
        # -> experiments/backbones/results/backbone_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import torch, transformers
from evocl.cl.backbone import load_backbone
t1 = time.perf_counter()
b = load_backbone(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "params": sum(p.numel() for p in b.model.parameters()),
                  "class": type(b.model).__name__, "kind": b.kind}))
"""


def measure(name: str, cache: str) -> dict:
    env = {**os.environ, "EVOCL_CACHE": cache, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, name], env=env, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="experiments/backbones/results/backbone_load.json")
    args = ap.parse_args()
    rows = []
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            for name, state in (("smollm2", "cold"), ("smollm2", "warm"), ("tiny-lm", "warm"),
                                ("minilm", "-")):
                row = {"backbone": name, "cache": state, "repeat": r, **measure(name, cache)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    load = os.getloadavg()
    Path(args.out).write_text(json.dumps({"rows": rows, "loadavg_at_end": load,
                                          "cpus": os.cpu_count()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
