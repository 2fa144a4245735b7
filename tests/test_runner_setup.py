"""run_search set-up: targets, failures before the first ask leave no run behind."""

from __future__ import annotations

import pytest
import yaml

from evocl.errors import UserError
from evocl.evolution.problems import problem_dict
from evocl.records import RunConfig
from evocl.runner import CL_TARGET, evaluation_target, run_search


def _cfg(tmp_path, **kw):
    space = tmp_path / "zdt1.yaml"
    space.write_text(yaml.safe_dump(problem_dict("zdt1")))
    base = dict(space=str(space), run_dir=str(tmp_path / "run"), budget=4,
                objective="evocl.evolution.problems:Problem", evaluator_options={"name": "zdt1"})
    base.update(kw)
    return RunConfig(**base)


def test_evaluation_target(tmp_path):
    cfg = _cfg(tmp_path, objective="cl", stream="synthetic", backbone="tiny", device="cpu",
               fitness_tasks=2, evaluator_options={"max_eval_per_task": 8})
    assert evaluation_target(cfg) == (CL_TARGET, {"stream": "synthetic", "backbone": "tiny",
                                                  "device": "cpu", "fitness_tasks": 2,
                                                  "max_eval_per_task": 8})
    assert evaluation_target(_cfg(tmp_path)) == ("evocl.evolution.problems:Problem",
                                                 {"name": "zdt1"})
    with pytest.raises(UserError, match="must be 'cl' or 'module:attr'"):
        evaluation_target(_cfg(tmp_path, objective="zdt1"))


def test_failed_setup_leaves_no_run(tmp_path):
    with pytest.raises(UserError, match="cannot find module"):
        run_search(_cfg(tmp_path, objective="no_such_mod_q:X"))
    assert not (tmp_path / "run").exists()
    with pytest.raises(UserError):  # the target refuses its kwargs when built
        run_search(_cfg(tmp_path, evaluator_options={"name": "nope"}))
    assert not (tmp_path / "run" / "run.yaml").exists()
    s = run_search(_cfg(tmp_path))
    assert s.n_evaluated == 4 and s.stop_reason.startswith("budget")
