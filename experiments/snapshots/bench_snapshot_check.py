"""What it costs to check a snapshot against run.yaml and the journal on resume (issue 18).

A long run (sa-nsga2 on ZDT1 with 10 variables, 1,000 told results by default, the in-process
Recorded target) is resumed three ways, each timed from opening the run directory to the
engine ready to ask (``RunDir.open`` + ``runner._replay_resume``, what ``evocl resume`` does
before it starts evaluating):

- ``snapshot``: the newest snapshot, verified (SHA-256 named in the journal, static settings
  against run.yaml, candidates and told results against the journal), then the events after it;
- ``replay``: no snapshot, the whole journal replayed (what a rejected snapshot costs);
and the parts of the check alone: reading + hashing the snapshot (``load_snapshot`` with no
check), and the runner's comparison (``_snapshot_check``).

    PYTHONPATH=. .venv/bin/python experiments/snapshots/bench_snapshot_check.py \\
        --told 1000 --out experiments/snapshots/results/snapshot_check.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import yaml

from evocl.evolution.problems import problem_dict
from evocl.records import RunConfig
from evocl.runner import _replay_resume, _snapshot_check, run_search
from evocl.storage import RunDir
from evocl.storage.view import space_of


def _timed(fn, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_s": round(statistics.median(times), 4), "runs_s": [round(x, 4) for x in times]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--told", type=int, default=1000)
    ap.add_argument("--population", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="experiments/snapshots/results/snapshot_check.json")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-snapshot-"))
    (tmp / "zdt1.yaml").write_text(yaml.safe_dump(problem_dict("zdt1", n_var=10)))
    cfg = RunConfig(space=str(tmp / "zdt1.yaml"), run_dir=str(tmp / "run"),
                    objective="evocl.evolution.problems:Problem",
                    evaluator_options={"name": "zdt1", "n_var": 10}, algorithm="sa-nsga2",
                    population=args.population, budget=args.told, seed=0)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_search(cfg)
    search_s = time.perf_counter() - t

    def resume(use_snapshot: bool):
        def go():
            rd = RunDir.open(cfg.run_dir)
            try:
                space = space_of(rd.meta, cfg.run_dir)
                if not use_snapshot:
                    for p in (Path(cfg.run_dir) / "snapshots").iterdir():
                        p.rename(tmp / p.name)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("error")  # a snapshot ignored would warn
                        engine, _ = _replay_resume(space, rd.config, rd)
                finally:
                    for p in tmp.glob("engine-*.json"):
                        p.rename(Path(cfg.run_dir) / "snapshots" / p.name)
                assert engine.n_told == args.told
            finally:
                rd.close()
        return go

    rd = RunDir.open(cfg.run_dir)
    space = space_of(rd.meta, cfg.run_dir)
    check = _snapshot_check(space, rd.config, rd)
    state, start = rd.load_snapshot()
    snap = sorted((Path(cfg.run_dir) / "snapshots").iterdir())[-1]
    parts = {
        "read_hash_parse": _timed(lambda: rd.load_snapshot(), args.repeats),
        "runner_check": _timed(lambda: check(state, start), args.repeats),
        "runner_check_setup": _timed(lambda: _snapshot_check(space, rd.config, rd),
                                     args.repeats),
    }
    assert check(state, start) is None
    rd.close()
    out = {
        "command": "PYTHONPATH=. .venv/bin/python experiments/snapshots/bench_snapshot_check.py "
                   f"--told {args.told} --population {args.population} --repeats {args.repeats}",
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or
                    platform.machine()},
        "told": args.told, "population": args.population, "search_s": round(search_s, 1),
        "snapshot_bytes": snap.stat().st_size,
        "journal_bytes": (Path(cfg.run_dir) / "journal.jsonl").stat().st_size,
        "events_after_snapshot": len(rd.events) - start,
        "resume_from_snapshot": _timed(resume(True), args.repeats),
        "resume_replaying_the_journal": _timed(resume(False), args.repeats),
        "check_parts": parts,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
