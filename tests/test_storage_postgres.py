"""The Optuna mirror against a real PostgreSQL server on 127.0.0.1 (tests/_postgres.py).

Two searches write into one database at once, one is SIGKILLed and resumed; the server is
stopped and restarted under a running search. Each time the mirror must equal the journals:
one trial per told candidate with its state, values, intermediate values (per-task reports,
early stopping) and the objectives as metric names, read back with ``optuna.load_study``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

from evocl.evolution.problems import problem_dict
from evocl.records import RunConfig
from evocl.runner import run_search
from evocl.storage import read_run

import _postgres

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
from evocl.records import RunConfig
from evocl.runner import run_search
run_search(RunConfig.from_dict(json.loads(sys.argv[1])), resume=sys.argv[2] == "1")
"""


@pytest.fixture(scope="module")
def server():
    reason = _postgres.why_not()
    if reason:
        pytest.skip(reason)
    srv = _postgres.PostgresServer()
    srv.start()
    yield srv
    srv.close()


def make_cfg(tmp: Path, run_dir: Path, url: str | None, delay: float, generations: int,
             seed: int) -> RunConfig:
    space = tmp / "zdt1.yaml"
    if not space.exists():
        space.write_text(yaml.safe_dump(problem_dict("zdt1")))
    opts = {"name": "zdt1", "n_var": 4, "delay": delay, "tasks": 4, "fail_every": 9}
    return RunConfig(space=str(space), run_dir=str(run_dir), population=6,
                     generations=generations, seed=seed,
                     objective="evocl.evolution.problems:Problem", evaluator_options=opts,
                     early_stop="asha", early_stop_options={"rungs": [2]}, storage=url,
                     snapshot_every=4)


def start(cfg: RunConfig, resume: bool = False) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(cfg.to_dict()),
                             "1" if resume else "0"], env=env, stderr=subprocess.PIPE,
                            text=True)


def lines(run_dir: str) -> int:
    p = Path(run_dir) / "journal.jsonl"
    return p.read_bytes().count(b"\n") if p.exists() else 0


def wait_lines(proc: subprocess.Popen, run_dir: str, n: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while lines(run_dir) < n:
        assert proc.poll() is None, f"the search ended before {n} journal lines"
        assert time.monotonic() < end, "the search is too slow"
        time.sleep(0.01)


def study_of(url: str, run_dir: Path):
    """The study whose ``evocl_run_dir`` is this run directory (there must be one)."""
    import optuna
    found = [s for s in optuna.study.get_all_study_summaries(url)
             if s.user_attrs.get("evocl_run_dir") == str(run_dir.resolve())]
    assert len(found) == 1, [s.study_name for s in found]
    return optuna.load_study(study_name=found[0].study_name, storage=url)


def assert_mirror_equals_journal(url: str, run_dir: Path) -> int:
    from optuna.trial import TrialState
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        view = read_run(run_dir)
    study = study_of(url, run_dir)
    names = [o.name for o in view.space.objectives]
    assert study.metric_names == names
    trials = {t.user_attrs["candidate_id"]: t for t in study.get_trials()}
    told = {c.id: (c, r) for c, r in view.evaluations}
    assert sorted(trials) == sorted(told) and len(trials) == len(study.trials)  # no duplicates
    reports = view.reports
    for cid, (cand, res) in told.items():
        t = trials[cid]
        values = [res.objectives.get(n) for n in names]
        if res.ok and all(v is not None and math.isfinite(v) for v in values):
            assert t.state == TrialState.COMPLETE
            assert t.values == pytest.approx(values, rel=1e-12)
        else:
            assert t.state == (TrialState.PRUNED if res.status == "pruned" else TrialState.FAIL)
        want = {int(r["tasks_seen"]): r[names[0]] for r in reports.get(cid, [])}
        assert t.intermediate_values == pytest.approx(want, rel=1e-12)
        assert t.user_attrs["config_hash"] == cand.config_hash
        assert t.params == {k: v for k, v in cand.config.items() if k in t.distributions}
    return len(trials)


def told(run_dir: Path) -> list[tuple]:
    """What a disturbance must not change: each told candidate's config and result."""
    view = read_run(run_dir)
    return [(c.id, c.config_hash, r.status, r.objectives, r.error) for c, r in view.evaluations]


def test_two_searches_one_database_kill_and_resume(server, tmp_path):
    url = server.create_database("two_searches")
    a_dir, b_dir = tmp_path / "a" / "run", tmp_path / "b" / "run"   # one study name: "run"
    a = make_cfg(tmp_path, a_dir, url, delay=0.03, generations=4, seed=1)
    b = make_cfg(tmp_path, b_dir, url, delay=0.01, generations=4, seed=2)
    pa, pb = start(a), start(b)
    wait_lines(pa, a.run_dir, 25)
    pa.send_signal(signal.SIGKILL)
    pa.wait()
    run_search(a, resume=True)
    _, err = pb.communicate(timeout=120)
    assert pb.returncode == 0, err[-3000:]
    n_a = assert_mirror_equals_journal(url, a_dir)
    n_b = assert_mirror_equals_journal(url, b_dir)
    assert n_a == n_b == 24
    names = {study_of(url, d).study_name for d in (a_dir, b_dir)}
    assert "run" in names and len(names) == 2     # the second one: run-<hash of its folder>
    # the kill did not change what the resumed run told (the same seed, undisturbed, locally)
    ref = make_cfg(tmp_path, tmp_path / "ref" / "run", None, delay=0.0, generations=4, seed=1)
    run_search(ref)
    assert told(a_dir) == told(tmp_path / "ref" / "run")


def test_server_stopped_and_restarted_mid_search(server, tmp_path):
    url = server.create_database("restart")
    run_dir = tmp_path / "run"
    cfg = make_cfg(tmp_path, run_dir, url, delay=0.3, generations=8, seed=5)
    proc = start(cfg)
    wait_lines(proc, cfg.run_dir, 20)
    server.stop("immediate")          # no goodbye to the clients: a lost connection
    try:
        down_at = lines(cfg.run_dir)
        time.sleep(9)   # longer than Optuna's own retries of an insert (5 tries, < 2 s apart)
        assert proc.poll() is None and lines(cfg.run_dir) > down_at  # the search goes on
    finally:
        server.start()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "optuna mirror unavailable" in err and "caught up after an outage" in err, err[-3000:]
    assert "not mirrored" not in err
    assert assert_mirror_equals_journal(url, run_dir) == 48
    ref = make_cfg(tmp_path, tmp_path / "ref", None, delay=0.0, generations=8, seed=5)
    run_search(ref)
    assert told(run_dir) == told(tmp_path / "ref")   # the journal never saw the outage
