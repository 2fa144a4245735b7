"""The one Pareto and feasibility module (``evocl.evolution.pareto``) and its rule for values:
only finite numbers count. Engines, the run view, the report and the exports agree."""

from __future__ import annotations

import math

import pytest

from evocl.errors import UserError
from evocl.evolution import create, pareto
from evocl.records import Candidate, Result
from evocl.space import SearchSpace

SPACE = SearchSpace.from_dict({
    "parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    "objectives": {"acc": "maximize", "cost": "minimize"},
})
CONSTRAINED = SearchSpace.from_dict({
    "parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    "objectives": {"acc": "maximize", "cost": "minimize"},
    "constraints": {"memory": {"max": 10.0}},
})
INF, NAN = float("inf"), float("nan")


def _cand(i):
    return Candidate(id=i, config={"x": i / 10}, config_hash=f"h{i}", seed=i)


def _ev(*results):
    return [(_cand(i), r) for i, r in enumerate(results)]


def test_non_finite_objectives_fail_and_non_finite_constraints_are_infeasible():
    signs = pareto.objective_signs(SPACE)
    assert pareto.min_vector(signs, Result(objectives={"acc": 0.5, "cost": 2.0})) == (-0.5, 2.0)
    for bad in (INF, -INF, NAN, "high", None):
        assert pareto.min_vector(signs, Result(objectives={"acc": bad, "cost": 1.0})) is None
    assert pareto.min_vector(signs, Result(objectives={"acc": 0.5})) is None
    assert pareto.min_vector(signs, Result.failed("boom")) is None
    (con,) = CONSTRAINED.constraints
    assert pareto.violation([con], Result(metrics={"memory": 12.0})) == 2.0
    for bad in (INF, -INF, NAN, "big"):
        assert pareto.violation([con], Result(metrics={"memory": bad})) == math.inf
    assert pareto.violation([con], Result()) == math.inf


def test_front_directions_failures_constraints_and_ties():
    ev = _ev(Result(objectives={"acc": 0.9, "cost": 5.0}),
             Result(objectives={"acc": 0.8, "cost": 6.0}),        # dominated by 0
             Result(objectives={"acc": 0.5, "cost": 1.0}),
             Result.failed("boom"),
             Result(objectives={"acc": 0.99, "cost": NAN}),       # failed: NaN
             Result(objectives={"acc": INF, "cost": 0.0}),        # failed: +inf
             Result(objectives={"acc": 0.9, "cost": 5.0}))        # tie with 0: kept
    assert [c.id for c, _ in pareto.front(ev, SPACE)] == [0, 2, 6]
    mem = [(c, Result(r.objectives, {"memory": 5.0 if c.id == 2 else INF}, r.status))
           for c, r in ev]
    assert [c.id for c, _ in pareto.front(mem, CONSTRAINED)] == [2]
    assert pareto.front(ev, CONSTRAINED) == []                   # memory missing: infeasible


def test_engine_front_equals_the_module_front_with_the_same_rule():
    engine = create("random", SPACE, population_size=4, seed=0)
    values = [(0.9, 5.0), (0.5, 1.0), (INF, 0.0), (0.9, 5.0), (0.7, -INF), (0.95, 7.0)]
    told = []
    for acc, cost in values:
        (c,) = engine.ask(1)
        r = Result(objectives={"acc": acc, "cost": cost})
        engine.tell(c, r)
        told.append((c, r))
    assert engine.n_failed == 2                                  # +inf and -inf
    assert [c.id for c, _ in engine.pareto_front()] == [c.id for c, _ in pareto.front(told, SPACE)]
    assert [c.id for c, _ in engine.pareto_front()] == [0, 1, 3, 5]
    assert math.isfinite(engine.hypervolume())


def test_run_view_report_and_export_use_the_module(tmp_path):
    """A journal holding +-inf (a hand-written or foreign journal) is read with the rule."""
    from evocl.export.select import select
    from evocl.records import RunConfig
    from evocl.report.plots import hypervolume_history
    from evocl.storage import RunDir, read_run

    path = tmp_path / "s.yaml"
    path.write_text("parameters:\n  x: {type: float, low: 0, high: 1}\n"
                    "objectives: {acc: maximize, cost: {direction: minimize, ref: 10}}\n")
    cfg = RunConfig(space=str(path), run_dir=str(tmp_path / "run"), budget=4,
                    objective="evocl.execution.testing:Toy")
    rd = RunDir.create(cfg.run_dir, cfg, SearchSpace.from_dict(
        {"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
         "objectives": {"acc": "maximize", "cost": {"direction": "minimize", "ref": 10}}}))
    cands = [_cand(i) for i in range(4)]
    rd.append_ask(4, cands)
    for c, (acc, cost) in zip(cands, [(0.5, 2.0), (INF, 1.0), (0.8, 3.0), (0.6, -INF)]):
        rd.append_tell(c.id, Result(objectives={"acc": acc, "cost": cost}))
    rd.close()
    view = read_run(cfg.run_dir)
    front = view.pareto_front()
    assert [c.id for c, _ in front] == [0, 2]
    picked = select("pareto", view.evaluations, front, list(view.space.objectives))
    assert [c.id for c, _ in picked] == [0, 2]
    with pytest.raises(UserError, match="candidate 1 failed .an objective is missing or not finite"):
        select("id:1", view.evaluations, front, list(view.space.objectives))
    assert select("best:acc", view.evaluations, front, list(view.space.objectives))[0][0].id == 2
    xs, hv = hypervolume_history(view.evaluations, list(view.space.objectives))
    assert xs == [1, 3] and all(math.isfinite(h) for h in hv)
