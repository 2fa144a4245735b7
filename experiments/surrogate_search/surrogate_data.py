"""Extract the compact data of the surrogate benchmark from the GPU-run journals.

Reads the journals of the fifteen `evocl search` runs on one H100 (``../shared/data/gpu-runs``,
see its README: MiniLM, 16 Ray workers, commit 5871e6d) and writes one JSON object per told
candidate of the ``cl_lora.yaml`` runs to ``experiments/surrogate_search/data/gpu_runs_cl_lora.jsonl``:

    {"run": "def-nsga2", "stream": "default", "id": 2, "config": {...canonical...},
     "status": "ok" | "failed", "error": null | "non-finite loss at task 1 step 5",
     "fail_task": null | 1, "R": [[...5 x 5...]], "baseline": [...5...],
     "task_seconds": [...5...], "wall_time": 7.92, "trainable_params": 1552138,
     "peak_memory_mb": 479.4, "test_acc": 0.11}

``task_seconds[t]`` is task t's share of the evaluation's wall time: its training seconds
plus an equal share of everything else (model build, Fisher, evaluation after each task), so
``sum(task_seconds) == wall_time``. The two joint-training runs (one task, another space) are
left out. The output is committed: the benchmark runs from a clone without the journals.

    .venv/bin/python experiments/surrogate_search/surrogate_data.py --src ../shared/data/gpu-runs
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "data", "gpu_runs_cl_lora.jsonl")
_FAIL = re.compile(r"non-finite loss at task (\d+) step (\d+)")


def _r(x: float, nd: int = 6) -> float:
    return round(float(x), nd)


def records(path: str) -> list[dict]:
    run = os.path.basename(path)[:-len(".jsonl")]
    stream = "default" if run.startswith("def-") else "other"
    configs: dict[int, dict] = {}
    out = []
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            if e["event"] == "ask":
                for c in e["candidates"]:
                    configs[int(c["id"])] = c["config"]
            elif e["event"] == "tell":
                cid, res = int(e["id"]), e["result"]
                rec = {"run": run, "stream": stream, "id": cid, "config": configs[cid],
                       "status": res["status"], "error": res["error"], "fail_task": None,
                       "wall_time": _r(res["wall_time"], 4)}
                if res["status"] == "ok":
                    m, obj = res["metrics"], res["objectives"]
                    R = m["accuracy_matrix"]
                    per_task = m["timings"]["train_per_task"]
                    rest = (float(res["wall_time"]) - sum(per_task)) / len(per_task)
                    rec.update(R=[[_r(v) for v in row] for row in R],
                               baseline=[_r(v) for v in m["baseline_acc"]],
                               task_seconds=[_r(s + rest, 4) for s in per_task],
                               trainable_params=int(obj["trainable_params"]),
                               peak_memory_mb=_r(obj["peak_memory_mb"], 2),
                               test_acc=_r(m["test_acc"]["mean"]))
                else:
                    hit = _FAIL.search(res["error"] or "")
                    rec["fail_task"] = int(hit.group(1)) if hit else None
                out.append(rec)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True, help="folder of the GPU-run journals (*.jsonl)")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    paths = sorted(p for p in glob.glob(os.path.join(args.src, "*.jsonl"))
                   if not p.endswith("-joint.jsonl"))
    if not paths:
        raise SystemExit(f"{args.src}: no journals (*.jsonl) found")
    rows = [r for p in paths for r in records(p)]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
    os.replace(tmp, args.out)
    n_ok = sum(r["status"] == "ok" for r in rows)
    print(f"{args.out}: {len(rows)} evaluations from {len(paths)} journals "
          f"({n_ok} ok, {len(rows) - n_ok} failed)")


if __name__ == "__main__":
    main()
