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
    assert SCHEDULERS.names() == ("none", "asha", "model")
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


# ------------------------------------------------------------------------------ engines
ZDT = SearchSpace.from_dict({
    "parameters": {f"x{i}": {"type": "float", "low": 0, "high": 1} for i in range(3)},
    "objectives": {"f1": {"direction": "minimize", "ref": 11.0},
                   "f2": {"direction": "minimize", "ref": 11.0}}})


def _result(cand, pruned: bool, good: bool) -> "Result":
    from evocl.records import Result
    x = cand.config["x0"]
    base = (0.0 if good else 5.0)
    objs = {"f1": base + x, "f2": base + 1 - x}
    if pruned:
        return Result(objectives=objs, status="pruned",
                      metrics={"tasks_trained": 2, "tasks_planned": 5})
    return Result(objectives={k: v + 1.0 for k, v in objs.items()})


@pytest.mark.parametrize("algorithm", ["nsga2", "ga", "async-nsga2"])
def test_pruned_results_rank_below_every_full_evaluation(algorithm):
    """Pruned candidates with better partial objectives than any full evaluation still rank
    below all of them: the survivors are the full evaluations first; pruned ones fill up."""
    from evocl.evolution import create, from_state
    engine = create(algorithm, ZDT, population_size=4, seed=0)
    cands = engine.ask(4)
    full = set()
    for i, c in enumerate(cands):
        pruned = i % 2 == 0
        engine.tell(c, _result(c, pruned=pruned, good=pruned))   # pruned: the better values
        if not pruned:
            full.add(c.id)
    assert engine.n_pruned == 2 and engine.n_failed == 0
    assert {c.id for c, _ in engine.pareto_front()} <= full     # never on the front
    assert engine.reference_point() == [11.0, 11.0]
    hv_full = engine.hypervolume()
    # the population keeps the full evaluations first, then the pruned to fill it
    assert set(engine._population) == {c.id for c in cands}
    if algorithm in ("nsga2", "ga"):
        kept = engine.survival.survive(list(engine._population), 2, engine._fit)
        assert set(kept) == full
    else:  # a newcomer overflows the population: a pruned member leaves, not a full one
        more = engine.ask(1)[0]
        engine.tell(more, _result(more, pruned=False, good=False))
        assert set(engine._population) >= full | {more.id} and len(engine._population) == 4
    # state round trip keeps the pruned bookkeeping
    again = from_state(ZDT, json.loads(json.dumps(engine.state())))
    assert again.n_pruned == engine.n_pruned and again._pruned == engine._pruned
    assert again.hypervolume() == engine.hypervolume() and hv_full > 0


def test_derived_reference_ignores_pruned():
    from evocl.evolution import create
    space = SearchSpace.from_dict({
        "parameters": {"x0": {"type": "float", "low": 0, "high": 1}},
        "objectives": {"f1": "minimize", "f2": "minimize"}})
    engine = create("random", space, population_size=2, seed=0)
    a, b, c = engine.ask(3)
    from evocl.records import Result
    engine.tell(a, Result(objectives={"f1": 100.0, "f2": 100.0}, status="pruned",
                          metrics={"tasks_trained": 2, "tasks_planned": 4}))
    assert engine.reference_point() is None and engine.hypervolume() == 0.0
    engine.tell(b, Result(objectives={"f1": 1.0, "f2": 2.0}))
    engine.tell(c, Result(objectives={"f1": 2.0, "f2": 1.0}))
    assert max(engine.reference_point()) < 3.0   # from the two full results only


def test_optuna_tpe_prunes_with_optunas_own_pruner_and_replays():
    """optuna-tpe on one objective: Optuna's SuccessiveHalvingPruner decides; the pruned trial
    is PRUNED in the engine's study; a rebuilt engine decides on exactly as the original."""
    from evocl.evolution import create, from_state
    from evocl.records import Result
    engine = create("optuna-tpe", ONE, population_size=4, seed=0)
    assert not engine.prunes and engine.use_pruner(3, 2) and engine.prunes
    assert not create("optuna-tpe", TWO, population_size=4, seed=0).use_pruner(3, 2)
    decisions, twin = [], None
    for i in range(8):
        cand = engine.ask(1)[0]
        if twin is not None:
            assert twin.ask(1) == [cand]
        acc = [0.5, 0.4, 0.9, 0.3, 0.95, 0.1, 0.2, 0.97][i]
        assert engine.report(cand.id, rep(1, 4, acc=acc)) is True      # below the first rung
        if i == 5:  # rebuilt from a snapshot while a candidate runs between tasks
            twin = from_state(ONE, json.loads(json.dumps(engine.state())))
        ok = engine.report(cand.id, rep(2, 4, acc=acc))
        decisions.append(ok)
        res = (Result(objectives={"acc": acc}) if ok else
               Result(objectives={"acc": acc}, status="pruned",
                      metrics={"tasks_trained": 2, "tasks_planned": 4}))
        engine.tell(cand, res)
        if twin is not None:
            assert twin.report(cand.id, rep(2, 4, acc=acc)) == ok
            twin.tell(cand, res)
    # Optuna's rule: keep the best len // 3 (at least the best so far)
    assert decisions == [True, False, True, False, True, False, False, True]
    states = [t.state.name for t in engine.study.trials]
    assert states.count("PRUNED") == 4
    pruned = [t for t in engine.study.trials if t.state.name == "PRUNED"][0]
    assert pruned.intermediate_values == {1: 0.4, 2: 0.4} and pruned.values == [0.4]
    again = from_state(ONE, json.loads(json.dumps(engine.state())))
    assert [t.state for t in again.study.trials] == [t.state for t in engine.study.trials]
    assert again.ask(2) == engine.ask(2) == twin.ask(2)


def test_optuna_multi_objective_tells_pruned_trials_as_pruned():
    from evocl.evolution import create
    from evocl.records import Result
    engine = create("optuna-nsga2", TWO, population_size=4, seed=0)
    c = engine.ask(1)[0]
    assert engine.report(c.id, rep(2, 4, acc=0.5, forgetting=0.1)) is None   # no opinion
    engine.tell(c, Result(objectives={"acc": 0.5, "forgetting": 0.1}, status="pruned",
                          metrics={"tasks_trained": 2, "tasks_planned": 4}))
    assert engine.study.trials[0].state.name == "PRUNED"
    assert engine.pareto_front() == [] and engine.n_failed == 0


def test_rl_scores_a_pruned_result_as_a_failure():
    from evocl.evolution import create
    from evocl.records import Result
    engine = create("rl", ZDT, population_size=4, seed=0)
    a, b = engine.ask(2)
    engine.tell(a, Result(objectives={"f1": 0.0, "f2": 0.0}, status="pruned",
                          metrics={"tasks_trained": 2, "tasks_planned": 5}))
    assert engine._reward(a.id) == -2.0 and engine._lo is None   # partial values not used
    engine.tell(b, Result(objectives={"f1": 1.0, "f2": 2.0}))
    assert -1.0 <= engine._reward(b.id) <= 0.0


# ------------------------------------------------------------------ the cheap pass (issue 22)
def low(n_tasks: int = 5, f: float = 0.25, **values: float) -> dict:
    return {**rep(n_tasks, n_tasks, **values), "fidelity": f}


def test_low_fidelity_rung_keeps_the_best_third_and_task_rungs_are_optional():
    asha = early_stop.create("asha", TWO, low_fidelity=0.25, rungs=[])
    assert asha.rungs(5) == []
    assert asha.decide(0, low(acc=0.5, forgetting=0.5))
    assert not asha.decide(1, low(acc=0.4, forgetting=0.6))
    assert asha.decide(2, low(acc=0.9, forgetting=0.1))
    assert asha.decide(2, rep(2, acc=0.0, forgetting=1.0))   # no task rung: continues
    assert asha.summary()["rung_members"] == {early_stop.LOW_RUNG: 3}
    # with the default task rungs as well, a promoted candidate meets the 2-task rung too
    both = early_stop.create("asha", TWO, low_fidelity=0.5)
    assert both.decide(0, low(f=0.5, acc=0.5, forgetting=0.5)) and both.rungs(5) == [2]
    assert both.decide(0, rep(2, acc=0.5, forgetting=0.5))
    again = early_stop.from_state(TWO, json.loads(json.dumps(asha.state())))
    assert again.decide(3, low(acc=0.45, forgetting=0.55)) == asha.decide(
        3, low(acc=0.45, forgetting=0.55))


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, True, "0.5"])
def test_low_fidelity_must_be_a_fraction(value):
    with pytest.raises(UserError) as e:
        early_stop.create("asha", TWO, low_fidelity=value)
    assert e.value.field == "low_fidelity" and "(0, 1)" in e.value.one_line()


def test_seconds_saved_counts_the_cheap_pass():
    from evocl.records import Result
    pruned = Result(objectives={"acc": 0.1}, status="pruned", wall_time=3.0, metrics={
        "tasks_trained": 0, "tasks_planned": 5,
        "low_fidelity": {"fidelity": 0.25, "seconds": 3.0, "train_seconds": 2.0}})
    promoted = Result(objectives={"acc": 0.5}, wall_time=12.0, metrics={
        "tasks_trained": 5, "tasks_planned": 5,
        "low_fidelity": {"fidelity": 0.25, "seconds": 3.0, "train_seconds": 2.0}})
    assert early_stop.seconds_saved([pruned]) == pytest.approx(6.0)   # 2 / 0.25 - 2
    assert early_stop.seconds_saved([pruned, promoted]) == pytest.approx(3.0)
