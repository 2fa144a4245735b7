"""Benchmark problems, the Problem evaluation target, and termination criteria."""

from __future__ import annotations

import math

import moocore
import numpy as np
import pytest

from evocl.errors import UserError
from evocl.evolution import create, termination
from evocl.evolution.problems import (Problem, dtlz2, evaluate, problem_space,
                                      true_hypervolume, zdt1, zdt2)
from evocl.records import Candidate, Result


def test_true_front_hypervolume_matches_a_dense_front():
    f1 = np.linspace(0, 1, 20001)
    ref = [1.1, 1.1]
    assert true_hypervolume("zdt1") == pytest.approx(
        moocore.hypervolume(np.c_[f1, 1 - np.sqrt(f1)], ref=ref), abs=1e-4)
    assert true_hypervolume("zdt2") == pytest.approx(
        moocore.hypervolume(np.c_[f1, 1 - f1 ** 2], ref=ref), abs=1e-4)
    assert true_hypervolume("dtlz2") == pytest.approx(1.1 ** 3 - math.pi / 6)


def test_functions_on_the_front():
    x = np.zeros(30)
    x[0] = 0.25
    assert zdt1(x) == pytest.approx((0.25, 0.5))
    assert zdt2(x) == pytest.approx((0.25, 1 - 0.0625))
    y = np.full(12, 0.5)
    assert sum(v * v for v in dtlz2(y)) == pytest.approx(1.0)


def _cand(i: int, space) -> Candidate:
    config = space.sample(np.random.default_rng(i))
    return Candidate(id=i, config=config, config_hash=space.config_hash(config), seed=0)


def test_problem_target_injects_failures_by_id():
    space = problem_space("dtlz2")
    target = Problem("dtlz2", fail_every=3, nan_every=4)
    assert target(_cand(0, space)).objectives == evaluate("dtlz2", _cand(0, space).config)
    with pytest.raises(RuntimeError, match="candidate 2"):
        target(_cand(2, space))
    assert math.isnan(target(_cand(3, space)).objectives["f1"])
    with pytest.raises(UserError):
        Problem("zdt9")
    with pytest.raises(UserError):
        Problem("zdt1", fail_every=-1)


def test_termination_criteria():
    space = problem_space("zdt1", 3)
    engine = create("nsga2", space, population_size=4, seed=0)
    stop = termination.from_limits(budget=12, max_wall_time=100.0)
    while not stop.done(engine, 1.0):
        for c in engine.ask(4):
            engine.tell(c, Result(objectives=evaluate("zdt1", c.config)))
    assert engine.n_told == 12 and "budget" in stop.done(engine, 1.0)
    assert "wall time" in termination.WallTime(5).done(engine, 5.0)
    assert termination.Generations(3).done(engine, 0.0) and not termination.Generations(4).done(engine, 0.0)

    class Fake:
        hv_history = [(4, 0.1), (8, 0.5), (12, 0.5), (16, 0.5)]
    assert termination.Stagnation(2).done(Fake(), 0.0)
    assert not termination.Stagnation(3).done(Fake(), 0.0)
    with pytest.raises(UserError):
        termination.from_limits()
    with pytest.raises(UserError):
        termination.Budget(0)
