"""run_search set-up: targets, failures before the first ask leave no run behind."""

from __future__ import annotations

import json

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


def test_algorithm_options_reach_the_engine_and_are_part_of_the_run(tmp_path):
    from evocl.errors import RunDirError
    from evocl.storage import read_run

    cfg = _cfg(tmp_path, algorithm="nsga2", population=4, budget=8,
               algorithm_options={"eta_m": 5.0, "indpb": 0.5})
    run_search(cfg)
    view = read_run(cfg.run_dir)
    assert view.config.algorithm_options == {"eta_m": 5.0, "indpb": 0.5}   # frozen in run.yaml
    from evocl.storage.rundir import snapshot_files
    state = json.loads(snapshot_files(tmp_path / "run")[-1].read_text())["engine"]
    assert state["options"]["eta_m"] == 5.0 and state["options"]["indpb"] == 0.5
    # the options change the candidates: a run without them differs
    other = run_search(_cfg(tmp_path, run_dir=str(tmp_path / "plain"), population=4, budget=8))
    assert other.n_evaluated == 8
    offspring = [c.config for c, _ in view.evaluations if c.origin == "offspring"]
    plain = [c.config for c, _ in read_run(tmp_path / "plain").evaluations
             if c.origin == "offspring"]
    assert offspring and offspring != plain
    with pytest.raises(RunDirError, match="algorithm_options"):   # identity: no silent reuse
        run_search(cfg.replace(algorithm_options={"eta_m": 6.0}, budget=12), resume=True)
    s = run_search(cfg.replace(budget=12), resume=True)
    assert s.n_evaluated == 12


def test_unknown_algorithm_option_fails_before_the_run_exists(tmp_path):
    with pytest.raises(UserError, match="algorithm_options: unknown option 'etaa'"):
        run_search(_cfg(tmp_path, algorithm_options={"etaa": 3}))
    with pytest.raises(UserError, match="eta_m: must be a number >= 0"):
        run_search(_cfg(tmp_path, algorithm_options={"eta_m": "fast"}))
    assert not (tmp_path / "run").exists()
