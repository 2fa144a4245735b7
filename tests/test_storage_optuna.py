"""Optuna mirror: trials readable by optuna.load_study, torn journal tail repaired, no duplicates."""

from __future__ import annotations

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from evocl.records import Candidate, Result
from evocl.space import load
from evocl.storage import OptunaMirror, repair_optuna_journal

from _evocl_run_helpers import write_space


def _cand(i, **cfg):
    return Candidate(id=i, config=cfg, config_hash=f"h{i}", seed=i, generation=1)


def _load(path):
    return optuna.load_study(study_name="run",
                             storage=JournalStorage(JournalFileBackend(str(path))))


def test_mirror_trials_params_states_and_attrs(tmp_path):
    space = load(write_space(tmp_path))
    m = OptunaMirror(tmp_path, "run", space)
    assert m.ok
    m.add(_cand(0, x1=0.25, x2=0.5, mode="a"), Result(objectives={"f1": 1.0, "f2": 2.0},
                                                       metrics={"attempts": 1}))
    m.add(_cand(1, x1=0.5, x2=0.5, mode="b", x3=0.75), Result.failed("boom"))
    m.add(_cand(1, x1=0.5, x2=0.5, mode="b", x3=0.75), Result.failed("boom"))  # skipped
    study = _load(tmp_path / "optuna.journal")
    t0, t1 = study.get_trials()
    assert [d.value for d in study.directions] == [optuna.study.StudyDirection.MINIMIZE] * 2
    assert t0.state == TrialState.COMPLETE and t0.values == [1.0, 2.0]
    assert t0.params == {"x1": 0.25, "x2": 0.5, "mode": "a"}   # inactive x3 absent
    assert t0.user_attrs["candidate_id"] == 0 and t0.user_attrs["attempts"] == 1
    assert t0.user_attrs["config_hash"] == "h0" and t0.user_attrs["generation"] == 1
    assert t1.state == TrialState.FAIL and t1.params["x3"] == 0.75
    assert t1.user_attrs["error"] == "boom"
    # a reopened mirror knows what it holds (resume syncs without duplicates)
    m2 = OptunaMirror(tmp_path, "run", space)
    m2.sync([(_cand(0, x1=0.25, x2=0.5, mode="a"), Result(objectives={"f1": 1.0, "f2": 2.0}))])
    assert len(_load(tmp_path / "optuna.journal").get_trials()) == 2


def test_torn_optuna_journal_is_repaired_before_reopening(tmp_path):
    space = load(write_space(tmp_path))
    m = OptunaMirror(tmp_path, "run", space)
    m.add(_cand(0, x1=0.25, x2=0.5, mode="a"), Result(objectives={"f1": 1.0, "f2": 2.0}))
    path = tmp_path / "optuna.journal"
    with open(path, "ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "x", "study_id": 0, "datetime_sta')
    # what Optuna alone does: the next writer appends onto the torn line and reading fails
    broken = tmp_path / "copy.journal"
    broken.write_bytes(path.read_bytes())
    with pytest.raises(Exception):
        st = JournalStorage(JournalFileBackend(str(broken)))
        optuna.load_study(study_name="run", storage=st).add_trial(
            optuna.trial.create_trial(values=[1.0, 1.0]))
        _load(broken).get_trials()
    # evocl repairs on open and goes on
    with pytest.warns(UserWarning, match="torn last line"):
        m2 = OptunaMirror(tmp_path, "run", space)
    m2.add(_cand(1, x1=0.5, x2=0.5, mode="a"), Result(objectives={"f1": 0.5, "f2": 0.5}))
    assert [t.user_attrs["candidate_id"] for t in _load(path).get_trials()] == [0, 1]
    assert repair_optuna_journal(path) is False


def test_mirror_failure_is_a_warning(tmp_path):
    space = load(write_space(tmp_path))
    with pytest.warns(UserWarning, match="optuna mirror disabled"):
        m = OptunaMirror(tmp_path, "run", space, storage="notascheme://x")
    assert not m.ok
    m.add(_cand(0, x1=0.1, x2=0.1, mode="a"), Result(objectives={"f1": 1.0, "f2": 1.0}))


def test_shared_storage_keeps_runs_apart(tmp_path):
    space = load(write_space(tmp_path))
    url = f"sqlite:///{tmp_path / 'all.db'}"
    (tmp_path / "a" / "run").mkdir(parents=True)
    (tmp_path / "b" / "run").mkdir(parents=True)
    m1 = OptunaMirror(tmp_path / "a" / "run", "run", space, storage=url)
    m2 = OptunaMirror(tmp_path / "b" / "run", "run", space, storage=url)
    assert m1.ok and m2.ok and m1.study_name == "run" and m2.study_name.startswith("run-")
    assert OptunaMirror(tmp_path / "a" / "run", "run", space, storage=url).study_name == "run"
