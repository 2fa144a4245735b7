"""Run directory: creation, refusal, lock, journal repair, snapshots, read-only view."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import yaml

from evocl.errors import RunDirError
from evocl.records import Candidate, Result, RunConfig
from evocl.space import load
from evocl.storage import FORMAT_VERSION, RunDir, read_run
from evocl.storage.journal import scan_journal

from _evocl_run_helpers import write_space


def _cfg(tmp_path, **kw):
    return RunConfig(space=str(write_space(tmp_path)), run_dir=str(tmp_path / "run"),
                     objective="evocl.execution.testing:Toy", budget=10, **kw)


def _cand(i, x=0.5):
    return Candidate(id=i, config={"x1": x, "x2": x, "mode": "a"}, config_hash=f"h{i}", seed=i)


def _create(tmp_path):
    cfg = _cfg(tmp_path)
    return RunDir.create(cfg.run_dir, cfg, load(cfg.space)), cfg


def test_create_writes_run_yaml_and_refuses_second_create(tmp_path):
    rd, cfg = _create(tmp_path)
    rd.close()
    meta = yaml.safe_load((tmp_path / "run" / "run.yaml").read_text())
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["config"]["budget"] == 10
    assert meta["objectives"] == [{"name": "f1", "direction": "minimize", "ref": None},
                                  {"name": "f2", "direction": "minimize", "ref": None}]
    assert meta["fingerprints"]["space"] == load(cfg.space).fingerprint
    with pytest.raises(RunDirError, match="already holds a run; use `evocl resume"):
        RunDir.create(cfg.run_dir, cfg, load(cfg.space))


def test_not_a_run_and_wrong_format_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="is not an evocl run directory"):
        RunDir.open(tmp_path / "empty")
    with pytest.raises(RunDirError, match="is not an evocl run directory"):
        read_run(tmp_path / "empty")
    rd, _ = _create(tmp_path)
    rd.close()
    run_file = tmp_path / "run" / "run.yaml"
    meta = yaml.safe_load(run_file.read_text())
    meta["format_version"] = 99
    run_file.write_text(yaml.safe_dump(meta))
    with pytest.raises(RunDirError, match="format_version 99 is not supported") as e:
        RunDir.open(tmp_path / "run")
    assert "\n" not in str(e.value)


def test_journal_events_and_view(tmp_path):
    rd, _ = _create(tmp_path)
    rd.append_ask(2, [_cand(0, 0.0), _cand(1, 1.0)])
    rd.append_tell(1, Result(objectives={"f1": 2.0, "f2": 0.0}))
    view = read_run(tmp_path / "run")  # works while the run is live (no lock)
    assert [c.id for c, _ in view.evaluations] == [1]
    assert [c.id for c in view.pending] == [0]
    with open(tmp_path / "run" / "journal.jsonl", "ab") as f:
        f.write(b'{"event":"tell","id":0,')   # a line being written by the live run
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # expected on a live run: dropped silently
        assert read_run(tmp_path / "run").live_pid == os.getpid()
    rd.close()
    with pytest.warns(UserWarning, match="torn last line"):
        rd = RunDir.open(tmp_path / "run")
    rd.append_tell(0, Result(objectives={"f1": 0.0, "f2": 2.0}))
    rd.close()
    view = read_run(tmp_path / "run")
    assert view.live_pid is None
    assert [c.id for c, _ in view.evaluations] == [1, 0]
    assert view.pending == []
    assert sorted(c.id for c, _ in view.pareto_front()) == [0, 1]
    assert view.space.fingerprint == load(view.config.space).fingerprint
    assert set(view.candidates_by_id) == {0, 1}


def test_torn_last_line_dropped_and_truncated(tmp_path):
    rd, _ = _create(tmp_path)
    rd.append_ask(1, [_cand(0)])
    rd.close()
    journal = tmp_path / "run" / "journal.jsonl"
    good = journal.read_bytes()
    with open(journal, "ab") as f:
        f.write(b'{"event":"tell","id":0,"res')
    with pytest.warns(UserWarning, match="torn last line"):
        assert len(read_run(tmp_path / "run").events) == 1
    with pytest.warns(UserWarning, match="torn last line"):
        rd = RunDir.open(tmp_path / "run")
    assert journal.read_bytes() == good
    rd.append_tell(0, Result(objectives={"f1": 1.0, "f2": 1.0}))
    rd.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_run(tmp_path / "run").evaluations) == 1


def test_scan_keeps_every_good_event_around_a_bad_line():
    scan = scan_journal(b'{"event":"a"}\nxx\n{"event":"b"}\n')
    assert scan.events == [{"event": "a"}, {"event": "b"}] and scan.slots == [0, 2]
    assert [(b.offset, b.line) for b in scan.bad] == [(14, 2)] and "not JSON" in scan.bad[0].reason
    assert not scan.tail_only


def test_snapshots_keep_three_and_fall_back_when_corrupt(tmp_path):
    rd, _ = _create(tmp_path)
    for i in range(5):
        rd.append_ask(1, [_cand(i)])
        rd.save_snapshot(i, {"i": i})
    snaps = sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir())
    assert snaps == ["engine-2.json", "engine-3.json", "engine-4.json"]
    # each snapshot is named by the journal event right after the events it covers
    assert [e["file"] for e in rd.events if e["event"] == "snapshot"] == [
        f"engine-{i}.json" for i in range(5)]
    assert rd.load_snapshot() == ({"i": 4}, 9)
    (tmp_path / "run" / "snapshots" / "engine-4.json").write_text('{"format_vers')
    with pytest.warns(UserWarning, match="engine-4.json: snapshot ignored"):
        assert rd.load_snapshot() == ({"i": 3}, 7)
    # well-formed, but not the bytes the journal names: ignored all the same
    snap3 = tmp_path / "run" / "snapshots" / "engine-3.json"
    snap3.write_text(snap3.read_text().replace('"i": 3', '"i": 30'))
    with pytest.warns(UserWarning, match="journal does not name these bytes"):
        assert rd.load_snapshot() == ({"i": 2}, 5)
    with pytest.warns(UserWarning, match="fault found"):  # the caller's check has the last word
        assert rd.load_snapshot(lambda state, start: "fault found") == (None, 0)
    for p in (tmp_path / "run" / "snapshots").iterdir():
        p.write_text("garbage")
    with pytest.warns(UserWarning):
        assert rd.load_snapshot() == (None, 0)
    rd.close()


def test_lock_refuses_second_process_and_stale_lock_is_taken_over(tmp_path):
    rd, _ = _create(tmp_path)
    code = ("import sys; from evocl.storage import RunDir\n"
            "try:\n RunDir.open(sys.argv[1]); print('opened')\n"
            "except Exception as e: print(e)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], env=env,
                         capture_output=True, text=True, timeout=60).stdout.strip()
    assert out == f"run directory {tmp_path / 'run'} is locked by pid {os.getpid()}"
    rd.close()
    # a process that dies holding the lock leaves a lock file with its pid: taken over
    code2 = ("import os, sys; from evocl.storage import RunDir\n"
             "RunDir.open(sys.argv[1]); os._exit(9)")
    subprocess.run([sys.executable, "-c", code2, str(tmp_path / "run")], env=env, timeout=60)
    assert (tmp_path / "run" / "lock").read_text().strip() != ""
    RunDir.open(tmp_path / "run").close()


def test_nan_metrics_are_journaled_as_strings(tmp_path):
    rd, _ = _create(tmp_path)
    rd.append_ask(1, [_cand(0)])
    rd.append_tell(0, Result(objectives={"f1": 1.0, "f2": 1.0}, metrics={"bwt": float("nan")}))
    rd.close()
    line = (tmp_path / "run" / "journal.jsonl").read_text().splitlines()[-1]
    assert json.loads(line)["result"]["metrics"]["bwt"] == "nan"
