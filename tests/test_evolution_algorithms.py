"""Algorithm-specific behaviour: generation barrier and arrival-order independence,
steady-state asking, GA on the first objective, constrained domination, reference point."""

from __future__ import annotations

import math

import pytest

from evocl.evolution import create
from evocl.evolution import pareto
from evocl.evolution.problems import evaluate, problem_dict, problem_space
from evocl.records import Candidate, Result
from evocl.space import SearchSpace


def zdt(c: Candidate) -> Result:
    return Result(objectives=evaluate("zdt1", c.config))


@pytest.mark.parametrize("algorithm", ["nsga2", "ga"])
def test_generation_barrier_and_arrival_order(algorithm):
    space = problem_space("zdt1", 5)
    bred = []
    for order in (lambda cs: cs, lambda cs: list(reversed(cs)), lambda cs: cs[1::2] + cs[::2]):
        engine = create(algorithm, space, population_size=6, seed=3)
        gen0 = engine.ask(10)
        assert len(gen0) == 6 and engine.ask(1) == []       # barrier: waits on tells
        for c in order(gen0)[:-1]:
            engine.tell(c, zdt(c))
        assert engine.ask(1) == [] and engine.generation == 0
        engine.tell(order(gen0)[-1], zdt(order(gen0)[-1]))
        assert engine.generation == 1
        gen1 = engine.ask(6)
        assert all(c.generation == 1 and c.origin == "offspring" for c in gen1)
        bred.append([c.to_dict() for c in gen1])
    assert bred[0] == bred[1] == bred[2]


def test_async_always_asks_n_and_replaces_worst():
    space = problem_space("zdt1", 5)
    engine = create("async-nsga2", space, population_size=4, seed=0)
    first = engine.ask(6)
    assert len(first) == 6 and all(c.origin == "sample" for c in first)
    for c in first:
        engine.tell(c, zdt(c))
    assert len(engine._population) == 4
    kids = engine.ask(3)
    assert len(kids) == 3 and all(c.origin == "offspring" for c in kids)
    assert all(set(c.parents) <= {c.id for c in first} for c in kids)


def test_ga_optimizes_the_first_objective_with_elitism():
    space = problem_space("zdt1", 5)
    engine = create("ga", space, population_size=8, seed=0)
    best = []
    while engine.n_told < 80:
        for c in engine.ask(8):
            engine.tell(c, zdt(c))
        best.append(min(engine._fmin[i][0] for i in engine._population))
    assert best == sorted(best, reverse=True)    # elitism: the best never gets worse
    assert best[-1] < 0.05


def test_constrained_domination_prefers_feasible():
    d = problem_dict("zdt1", 4)
    d["constraints"] = {"f1": {"min": 0.5}}
    space = SearchSpace.from_dict(d)
    engine = create("nsga2", space, population_size=10, seed=1)
    while engine.n_told < 100:
        for c in engine.ask(10):
            engine.tell(c, zdt(c))
    front = engine.pareto_front()
    assert front and all(r.objectives["f1"] >= 0.5 for _, r in front)
    assert all(engine._cv[i] == 0.0 for i in engine._population)


def test_deb_rules():
    assert pareto.dominates((5.0, 5.0), 0.0, (0.0, 0.0), 1.0)      # feasible beats infeasible
    assert pareto.dominates((5.0, 5.0), 0.5, (0.0, 0.0), 1.0)      # smaller violation wins
    assert not pareto.dominates((1.0, 2.0), 0.0, (2.0, 1.0), 0.0)
    assert pareto.dominates((1.0, 1.0), 0.0, (1.0, 2.0), 0.0)


def test_constraint_read_from_metrics_and_missing_is_infeasible():
    d = problem_dict("zdt1", 3)
    d["constraints"] = {"memory": {"max": 10.0}}
    space = SearchSpace.from_dict(d)
    assert pareto.violation(space.constraints, Result(metrics={"memory": 12.0})) == 2.0
    assert pareto.violation(space.constraints, Result(objectives={"memory": 3.0})) == 0.0
    assert pareto.violation(space.constraints, Result()) == math.inf


def test_reference_point_from_space_or_frozen_after_first_population():
    engine = create("random", problem_space("zdt1", 4), population_size=4, seed=0)
    assert engine.reference_point() == [1.1, 1.1]
    d = problem_dict("zdt1", 4)
    d["objectives"] = {"f1": {"direction": "minimize"}, "f2": {"direction": "maximize"}}
    engine = create("random", SearchSpace.from_dict(d), population_size=4, seed=0)
    assert engine.reference_point() is None and engine.hypervolume() == 0.0
    for c in engine.ask(4):
        engine.tell(c, zdt(c))
    ref = engine.reference_point()
    vals = [(r.objectives["f1"], -r.objectives["f2"]) for _, r in engine.evaluations()]
    for j in range(2):
        lo, hi = min(v[j] for v in vals), max(v[j] for v in vals)
        assert ref[j] == pytest.approx(hi + 0.1 * (hi - lo))
    for c in engine.ask(8):
        engine.tell(c, zdt(c))
    assert engine.reference_point() == ref                     # frozen
    assert engine.hypervolume() > 0.0


def test_archive_keeps_only_non_dominated():
    a = pareto.Archive()
    assert a.add(0, (1.0, 3.0)) and a.add(1, (3.0, 1.0))
    assert not a.add(2, (2.0, 3.5))
    assert a.add(3, (1.0, 3.0)) and a.ids == [0, 1, 3]        # a tie: neither dominates
    assert a.add(4, (0.5, 0.5))
    assert a.ids == [4]
    assert pareto.hypervolume(a.points, [1.0, 1.0]) == pytest.approx(0.25)


def test_unknown_options_and_bad_arguments_are_user_errors():
    from evocl.errors import UserError

    space = problem_space("zdt1", 3)
    with pytest.raises(UserError, match="options"):
        create("nsga2", space, etaa=3)
    with pytest.raises(UserError, match="population_size"):
        create("nsga2", space, population_size=1)
    with pytest.raises(UserError, match="algorithm"):
        create("cmaes", space)
    with pytest.raises(UserError, match="crossover_prob"):
        create("async-nsga2", space, crossover_prob=1.5)
    with pytest.raises(UserError, match="tournament_size"):
        create("ga", space, tournament_size=0)
    with pytest.raises(UserError, match="initial"):
        create("nsga2", space, initial=[{"x0": 7.0}])


def test_docstring_example_runs():
    import contextlib
    import io
    import re
    import textwrap

    import evocl.evolution as evo

    code = re.search(r"::\n\n(.*?)\n\nA result", evo.__doc__, re.S).group(1)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(textwrap.dedent(code), {})
    hv, n_front = buf.getvalue().split()
    assert float(hv) > 0.0 and int(n_front) > 0

