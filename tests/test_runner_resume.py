"""Kill -9 at random moments, resume, and compare with an uninterrupted run field by field."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from evocl.errors import RunDirError
from evocl.evolution.problems import problem_dict
from evocl.records import RunConfig
from evocl.registry import ENGINES
from evocl.runner import run_search
from evocl.storage import read_run

ROOT = Path(__file__).resolve().parents[1]


def make_cfg(tmp: Path, name: str, algorithm: str = "nsga2", delay: float = 0.0,
             **kw) -> RunConfig:
    space = tmp / "zdt1.yaml"
    if not space.exists():
        space.write_text(yaml.safe_dump(problem_dict("zdt1")))
    opts = {"name": "zdt1", "delay": delay, "log": str(tmp / f"{name}.calls"),
            "fail_every": 7, "nan_every": 11}
    base = dict(space=str(space), run_dir=str(tmp / name), algorithm=algorithm, population=6,
                generations=5, seed=3, objective="evocl.execution.testing:Recorded",
                evaluator_options=opts, snapshot_every=4)
    base.update(kw)
    return RunConfig(**base)


def comparable(run_dir: Path) -> dict:
    """What must be identical: configs, results (wall time excluded), tell order, front."""
    view = read_run(run_dir)
    rows = [(c.to_dict(), r.status, r.objectives, r.error,
             {k: v for k, v in r.metrics.items() if k not in ("traceback",)})
            for c, r in view.evaluations]
    return {"evaluations": rows, "front": sorted(c.id for c, _ in view.pareto_front()),
            "pending": [c.id for c in view.pending]}


def calls(tmp: Path, name: str) -> list[int]:
    p = tmp / f"{name}.calls"
    return [int(x) for x in p.read_text().split()] if p.exists() else []


def told_ids(run_dir: Path) -> set[int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {c.id for c, _ in read_run(run_dir).evaluations}


SCRIPT = """
import json, sys
from evocl.records import RunConfig
from evocl.registry import ENGINES
from evocl.runner import run_search
cfg = RunConfig.from_dict(json.loads(sys.argv[1]))
run_search(cfg, resume=sys.argv[2] == "1")
"""


def run_and_kill(cfg: RunConfig, resume: bool, after_lines: int, timeout: float = 60,
                 group: bool = False) -> bool:
    """Start run_search in a subprocess; SIGKILL it once the journal has ``after_lines`` lines
    (``group``: its whole process group, e.g. with the Ray processes it started). Returns
    False when the run finished before that."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(cfg.to_dict()),
                             "1" if resume else "0"], env=env, stderr=subprocess.DEVNULL,
                            start_new_session=group)
    journal = Path(cfg.run_dir) / "journal.jsonl"
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if journal.exists() and journal.read_bytes().count(b"\n") >= after_lines:
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    proc.wait(timeout=timeout)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["nsga2", "async-nsga2"])
def test_killed_and_resumed_equals_uninterrupted(tmp_path, algorithm):
    ref_cfg = make_cfg(tmp_path, "ref", algorithm)
    run_search(ref_cfg)
    ref = comparable(tmp_path / "ref")
    assert len(ref["evaluations"]) == 30 and ref["pending"] == []
    assert sorted(calls(tmp_path, "ref")) == list(range(30))   # each evaluated exactly once

    rng = np.random.default_rng(0 if algorithm == "nsga2" else 1)
    cfg = make_cfg(tmp_path, "killed", algorithm, delay=0.01)
    n_lines = (tmp_path / "ref" / "journal.jsonl").read_bytes().count(b"\n")
    lines = sorted(rng.choice(np.arange(2, n_lines - 1), size=3, replace=False))
    for k, at in enumerate(lines):
        before = told_ids(tmp_path / "killed") if k else set()
        n_calls = len(calls(tmp_path, "killed"))
        assert run_and_kill(cfg, resume=k > 0, after_lines=int(at))
        # nothing told before this session was evaluated again in it
        assert not before & set(calls(tmp_path, "killed")[n_calls:])
    # a torn last line, as a crash in the middle of a write leaves it
    with open(tmp_path / "killed" / "journal.jsonl", "ab") as f:
        f.write(b'{"event":"tell","id":')
    before = told_ids(tmp_path / "killed")
    n_calls = len(calls(tmp_path, "killed"))
    with pytest.warns(UserWarning, match="torn last line"):
        summary = run_search(cfg, resume=True)
    assert not before & set(calls(tmp_path, "killed")[n_calls:])
    assert summary.n_evaluated == 30 and summary.resumed
    assert comparable(tmp_path / "killed") == ref
    # every candidate evaluated at least once; repeats only for those in flight at a kill
    c = calls(tmp_path, "killed")
    assert set(c) == set(range(30)) and len(c) - 30 <= 3


def test_resume_after_corrupt_snapshot_and_refusals(tmp_path):
    ref_cfg = make_cfg(tmp_path, "ref", budget=14, generations=None)
    run_search(ref_cfg)
    ref = comparable(tmp_path / "ref")
    # a run stopped by its budget (12), snapshots corrupted, resumed with a larger budget
    cfg = make_cfg(tmp_path, "run", budget=8, generations=None)
    s = run_search(cfg)
    assert s.n_evaluated == 8 and s.stop_reason.startswith("budget")
    with pytest.raises(RunDirError, match="already holds a run; use `evocl resume"):
        run_search(cfg)
    with pytest.raises(RunDirError, match=r"changed run identity \(seed: 3 -> 4"):
        run_search(cfg.replace(seed=4), resume=True)
    snaps = sorted((tmp_path / "run" / "snapshots").iterdir())
    snaps[-1].write_text('{"format_version": 1, "journal_eve')
    with pytest.warns(UserWarning, match="snapshot ignored"):
        s = run_search(cfg, resume=True, extend_budget=6)
    assert s.n_evaluated == 14
    assert comparable(tmp_path / "run") == ref
    meta = yaml.safe_load((tmp_path / "run" / "run.yaml").read_text())
    assert meta["config"]["budget"] == 14
    assert meta["changes"][-1]["budget"] == {"old": 8, "new": 14}
    # resuming a finished run does nothing
    s = run_search(cfg.replace(budget=14), resume=True)
    assert s.n_evaluated == 14 and len(calls(tmp_path, "run")) == 14


def test_nondeterministic_replay_is_refused(tmp_path):
    cfg = make_cfg(tmp_path, "run", budget=6, generations=None, snapshot_every=0)
    run_search(cfg)
    journal = tmp_path / "run" / "journal.jsonl"
    lines = journal.read_text().splitlines()
    first = json.loads(lines[0])
    first["candidates"][0]["config_hash"] = "0" * 16
    journal.write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n")
    for p in (tmp_path / "run" / "snapshots").iterdir():
        p.unlink()
    with pytest.raises(RunDirError, match="nondeterministic"), pytest.warns(UserWarning):
        run_search(cfg, resume=True)


def test_progress_events_and_wall_time_stop(tmp_path):
    events = []

    class Recorder:
        def started(self, info):
            events.append(("started", info["total"]))

        def told(self, cand, res, stats):
            events.append(("told", stats["n_told"]))

        def finished(self, summary):
            events.append(("finished", summary.stop_reason))

    cfg = make_cfg(tmp_path, "run", budget=5, generations=None)
    run_search(cfg, progress=Recorder())
    assert events[0] == ("started", 5) and events[-1][0] == "finished"
    assert [e[1] for e in events if e[0] == "told"] == [1, 2, 3, 4, 5]
    # a wall-time limit stops at once; what was asked but not told stays pending
    cfg = make_cfg(tmp_path, "slow", delay=0.2, max_wall_time=0.5, generations=None)
    s = run_search(cfg)
    assert s.stop_reason.startswith("wall time") and 1 <= s.n_evaluated <= 4


def test_rich_progress_renders(tmp_path):
    import io

    from rich.console import Console

    from evocl.progress import RichProgress
    buf = io.StringIO()
    cfg = make_cfg(tmp_path, "run", budget=8, generations=None)
    run_search(cfg, progress=RichProgress(console=Console(file=buf, width=150)))
    out = buf.getvalue()
    assert "8/8" in out and "failed" in out and "stopped:" in out


@pytest.mark.parametrize("algorithm", [a for a in ENGINES.names()
                                       if a not in ("nsga2", "async-nsga2")])  # killed above
def test_stop_and_resume_equals_uninterrupted_for_every_engine(tmp_path, algorithm):
    """Stopped by its budget, resumed from a snapshot, then from a full journal replay."""
    run_search(make_cfg(tmp_path, "ref", algorithm, budget=16, generations=None))
    cfg = make_cfg(tmp_path, "run", algorithm, budget=6, generations=None)
    run_search(cfg)
    run_search(cfg, resume=True, extend_budget=5)
    for p in (tmp_path / "run" / "snapshots").iterdir():
        p.unlink()
    s = run_search(cfg.replace(budget=11), resume=True, extend_budget=5)
    assert s.n_evaluated == 16
    assert comparable(tmp_path / "run") == comparable(tmp_path / "ref")
    assert sorted(calls(tmp_path, "run")) == list(range(16))
