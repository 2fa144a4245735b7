"""The early-stopping schedulers (pure Python): rungs, MO-ASHA promotion, replay, state."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evocl.errors import UserError
from evocl.evolution import early_stop
from evocl.registry import SCHEDULERS
from evocl.space import SearchSpace

TWO = SearchSpace.from_dict({"parameters": {"x": {"type": "float", "low": 0, "high": 1}},
                             "objectives": {"acc": "maximize", "forgetting": "minimize"}})
ONE = SearchSpace.from_dict({"parameters": {"x": {"type": "float", "low": 0, "high": 1}},
                             "objectives": {"acc": "maximize"}})
CONSTRAINED = SearchSpace.from_dict({
    "parameters": {"x": {"type": "float", "low": 0, "high": 1}},
    "objectives": {"acc": "maximize", "forgetting": "minimize"},
    "constraints": {"trainable_params": {"max": 100}}})


def rep(tasks_seen: int, n_tasks: int = 5, **values: float) -> dict:
    return {"tasks_seen": tasks_seen, "n_tasks": n_tasks, "elapsed": 1.0, **values}


def test_registry_names_and_none_scheduler():
    assert SCHEDULERS.names() == ("none", "asha")
    for name in SCHEDULERS:
        assert SCHEDULERS.load(name).name == name
    none = early_stop.create("none", TWO)
    assert not none.active and none.rungs(5) == []
    assert all(none.decide(c, rep(2, acc=0.0, forgetting=1.0)) for c in range(10))


def test_rungs_geometric_or_given():
    asha = early_stop.create("asha", TWO)
    assert asha.rungs(2) == [] and asha.rungs(3) == [2] and asha.rungs(5) == [2]
    assert asha.rungs(20) == [2, 6, 18]
    assert early_stop.create("asha", TWO, eta=2, min_tasks=3).rungs(13) == [3, 6, 12]
    assert early_stop.create("asha", TWO, rungs=[2, 3, 4]).rungs(4) == [2, 3]


@pytest.mark.parametrize("options, field", [
    ({"eta": 1}, "eta"), ({"eta": 2.5}, "eta"), ({"min_tasks": 1}, "min_tasks"),
    ({"rungs": [3, 2]}, "rungs"), ({"rungs": [1, 2]}, "rungs"), ({"rungs": []}, "rungs"),
    ({"grace": 1}, "early_stop_options")])
def test_bad_options_are_one_line_errors(options, field):
    with pytest.raises(UserError) as e:
        early_stop.create("asha", TWO, **options)
    assert e.value.field == field and "\n" not in e.value.one_line()


def test_not_a_rung_continues_and_a_rung_keeps_the_best_third():
    asha = early_stop.create("asha", TWO)
    assert asha.decide(0, rep(1, acc=0.0, forgetting=0.0))          # task 1: no rung
    assert asha.decide(0, rep(2, acc=0.5, forgetting=0.5))          # first member: continues
    assert not asha.decide(1, rep(2, acc=0.4, forgetting=0.6))      # dominated, 1 of 2 kept
    assert asha.decide(2, rep(2, acc=0.9, forgetting=0.1))          # dominates both
    assert not asha.decide(3, rep(2, acc=0.6, forgetting=0.4))      # best 1 of 4: candidate 2
    assert not asha.decide(4, rep(2, acc=0.95))                     # an objective missing
    assert asha.decide(5, rep(2, acc=0.95, forgetting=0.0))         # 2 of 6 kept: front member
    assert asha.decision(1, 2) is False and asha.decision(9, 2) is None
    # asked again (a re-run after a crash): the same answer, no second membership
    assert asha.decide(2, rep(2, acc=0.0, forgetting=1.0))
    assert asha.summary()["rung_members"] == {2: 6}
    assert asha.summary()["stopped"] == 3


def test_constrained_domination_at_a_rung():
    asha = early_stop.create("asha", CONSTRAINED)
    assert asha.decide(0, rep(2, acc=0.2, forgetting=0.8, trainable_params=50))
    # far better objectives but infeasible: a feasible member beats it
    assert not asha.decide(1, rep(2, acc=0.9, forgetting=0.0, trainable_params=500))
    # no trainable_params in the report: infinitely infeasible
    assert not asha.decide(2, rep(2, acc=0.99, forgetting=0.0))


def test_a_non_finite_objective_stops():
    asha = early_stop.create("asha", TWO)
    assert not asha.decide(0, rep(2, acc=float("nan"), forgetting=0.0))
    assert asha.decide(1, rep(2, acc=0.1, forgetting=0.9))  # the NaN member does not compete


def _reports(seed: int, n: int, n_tasks: int = 7) -> list[tuple[int, dict]]:
    rng = np.random.default_rng(seed)
    out = []
    for cid in range(n):
        for t in range(1, n_tasks):
            out.append((cid, rep(t, n_tasks, acc=float(rng.random()),
                                 forgetting=float(rng.random()))))
    rng.shuffle(out)  # arrival order of several workers
    return sorted(out, key=lambda e: e[1]["tasks_seen"])


def test_promotes_about_one_in_eta():
    asha = early_stop.create("asha", TWO, rungs=[2, 4])
    alive = set(range(90))
    for cid, r in _reports(0, 90):
        if cid in alive and not asha.decide(cid, r):
            alive.discard(cid)
    members = asha.summary()["rung_members"]
    assert members[2] == 90
    reached4 = members[4]
    assert 90 // 3 - 5 <= reached4 <= 90 // 3 + 15  # asynchronous: early arrivals are lucky
    assert len(alive) < reached4


def test_state_is_json_and_continues_exactly():
    reports = _reports(1, 40)
    a = early_stop.create("asha", TWO, eta=2)
    first = [a.decide(c, r) for c, r in reports[:70]]
    state = json.loads(json.dumps(a.state()))
    b = early_stop.from_state(TWO, state)
    rest_a = [a.decide(c, r) for c, r in reports[70:]]
    rest_b = [b.decide(c, r) for c, r in reports[70:]]
    assert rest_a == rest_b and False in first + rest_a
    # a replay of the same reports in the same order gives the same decisions
    c = early_stop.create("asha", TWO, eta=2)
    assert [c.decide(cid, r) for cid, r in reports] == first + rest_a
    with pytest.raises(UserError, match="format"):
        early_stop.from_state(TWO, {"format": "x"})


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=40, unique=True),
       eta=st.integers(2, 4), maximize=st.booleans())
def test_single_objective_equals_optunas_successive_halving(values, eta, maximize):
    """One objective: the same decisions as Optuna's SuccessiveHalvingPruner at its first rung."""
    space = ONE if maximize else SearchSpace.from_dict(
        {"parameters": {"x": {"type": "float", "low": 0, "high": 1}},
         "objectives": {"acc": "minimize"}})
    asha = early_stop.create("asha", space, eta=eta)
    study = optuna.create_study(direction="maximize" if maximize else "minimize",
                                pruner=optuna.pruners.SuccessiveHalvingPruner(
                                    min_resource=2, reduction_factor=eta))
    for cid, v in enumerate(values):
        trial = study.ask()
        trial.report(v, step=2)
        assert asha.decide(cid, rep(2, 3, acc=v)) == (not trial.should_prune())
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
