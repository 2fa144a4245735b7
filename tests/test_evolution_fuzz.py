"""Property-based fuzzing of ask/tell: any interleaving of asks, out-of-order tells and
failures keeps every engine's invariants."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from evocl.evolution import ENGINES, create, from_state
from evocl.evolution.problems import evaluate, problem_space
from evocl.records import Result

SPACE = problem_space("zdt1", 3)

step = st.tuples(st.integers(0, 4), st.integers(0, 10 ** 6),
                 st.sampled_from(["ok", "ok", "ok", "failed", "nan"]))


@settings(max_examples=25, deadline=None)
@given(algorithm=st.sampled_from([a for a in ENGINES.names() if a != "optuna-tpe"]),
       steps=st.lists(step, min_size=1, max_size=25), seed=st.integers(0, 2 ** 31 - 2))
def test_any_interleaving_keeps_invariants(algorithm, steps, seed):
    engine = create(algorithm, SPACE, population_size=4, seed=seed)
    pending, failed = [], set()
    for n_ask, pick, outcome in steps:
        pending += engine.ask(n_ask)
        if not pending:
            continue
        cand = pending.pop(pick % len(pending))
        if outcome == "failed":
            result = Result.failed("fuzz")
        else:
            obj = evaluate("zdt1", cand.config)
            if outcome == "nan":
                obj["f2"] = math.nan
            result = Result(objectives=obj)
        if not result.ok or any(math.isnan(v) for v in result.objectives.values()):
            failed.add(cand.id)
        engine.tell(cand, result)
    assert engine.n_told + len(engine.in_flight) == engine.n_asked
    assert {c.id for c in engine.in_flight} == {c.id for c in pending}
    ids = [c.id for c, _ in engine.evaluations()] + [c.id for c in engine.in_flight]
    assert sorted(ids) == list(range(engine.n_asked))
    assert not any(set(c.parents) & failed for c, _ in engine.evaluations())
    assert not {c.id for c, _ in engine.pareto_front()} & failed
    if not engine.in_flight:              # nothing to wait for: never stalls
        got = engine.ask(2)
        assert len(got) == 2 or (algorithm in ("nsga2", "ga") and len(got) >= 1)
    clone = from_state(SPACE, engine.state())
    assert clone.state() == engine.state()
