"""`evocl search --pack 4` on every shipped space and every built-in backbone it fits, on Ray and
with `--early-stop asha` (issue 20's done-when): one small search per pair (6 candidates: the pack
refills; fitness on 3 tasks: asha has a rung at 2 below the last), its exit code,
statuses, attempts and wall time.

Every shipped space is run as shipped except where its steps per task would not fit this
machine's 2 CPU cores within minutes (``CAPS``: the capped spaces are written next to the run
and named in the result). Encoder spaces run on `tiny` (stream `synthetic`) and `minilm`
(`default`), `cl_lm.yaml` on `tiny-lm` and `smollm2` (`chat`).

    PYTHONPATH=. nice -n 10 .venv/bin/python experiments/packing/pack_every_space.py \\
        [--only tiny,tiny-lm] [--out experiments/packing/results/pack_every_space.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
from common import write_json  # noqa: E402

ENCODER = {"tiny": "synthetic", "minilm": "default"}
CAUSAL = {"tiny-lm": "chat", "smollm2": "chat"}
PAIRS = [(space, bb, stream) for space in ("tiny", "cl_lora", "cl_lora_gpu")
         for bb, stream in ENCODER.items()] + [("cl_lm", bb, s) for bb, s in CAUSAL.items()]
#: (space, backbone) -> steps_per_task choices used instead of the space's range
CAPS = {("cl_lora_gpu", "minilm"): [10, 20], ("cl_lm", "smollm2"): [8]}
OPTIONS = ["-o", "max_length=32", "-o", "max_eval_per_task=16", "-o", "max_test_per_task=16"]


def run_pair(space: str, backbone: str, stream: str, tmp: Path) -> dict:
    path = ROOT / "search_spaces" / f"{space}.yaml"
    row: dict = {"space": space, "backbone": backbone, "stream": stream}
    if (space, backbone) in CAPS:
        doc = yaml.safe_load(path.read_text())
        steps = CAPS[space, backbone]
        doc["parameters"]["steps_per_task"] = {"type": "categorical", "choices": steps,
                                               "default": steps[0]}
        path = tmp / f"{space}-{backbone}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        row["steps_per_task_capped_to"] = steps
    run = tmp / f"run-{space}-{backbone}"
    cmd = [sys.executable, "-m", "evocl.cli", "search", "--run-dir", str(run), "--space",
           str(path), "--backbone", backbone, "--stream", stream, "--pack", "4", "--executor",
           "ray", "--workers", "1", "--early-stop", "asha", "--population", "6", "--budget", "6",
           "--fitness-tasks", "3", "--seed", "0", "--quiet", *OPTIONS]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    row["rc"] = res.returncode
    row["command"] = " ".join(["evocl", *cmd[3:]]).replace(str(tmp), "$TMP")
    if res.returncode:
        row["stderr"] = res.stderr[-1500:]
        return row
    from evocl.storage import read_run

    view = read_run(run)
    row["statuses"] = [r.status for _, r in view.evaluations]
    row["errors"] = [r.error for _, r in view.evaluations if r.error]
    row["attempts"] = [r.metrics.get("attempts") for _, r in view.evaluations]
    row["pack"] = [r.metrics.get("pack") for _, r in view.evaluations]
    row["acc"] = [r.objectives.get("acc") for _, r in view.evaluations]
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None, help="backbones to run, comma-separated")
    ap.add_argument("--out", default=str(ROOT / "experiments/packing/results/pack_every_space.json"))
    a = ap.parse_args()
    only = set(a.only.split(",")) if a.only else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for space, bb, stream in PAIRS:
            if only and bb not in only:
                continue
            row = run_pair(space, bb, stream, Path(tmp))
            rows.append(row)
            print(json.dumps({k: row.get(k) for k in ("space", "backbone", "rc", "wall_s",
                                                      "statuses", "errors")}), flush=True)
    write_json(a.out, {"benchmark": "pack_every_space", "rows": rows,
                       "all_ok": all(r["rc"] == 0 and not r.get("errors") for r in rows)})


if __name__ == "__main__":
    main()
