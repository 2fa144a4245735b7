"""Selection of configurations from a run: knee, best:OBJECTIVE, pareto, id:N."""

from dataclasses import dataclass

import pytest

from evocl.errors import UserError
from evocl.export.select import best, knee, select
from evocl.records import Candidate, Result


@dataclass(frozen=True)
class Obj:
    name: str
    direction: str
    ref: float | None = None


OBJS = [Obj("acc", "maximize"), Obj("forgetting", "minimize")]


def ev(i, acc, forg, ok=True):
    c = Candidate(id=i, config={"x": i}, config_hash=f"h{i}", seed=i)
    r = Result(objectives={"acc": acc, "forgetting": forg}) if ok else Result.failed("boom")
    return c, r


FRONT = [ev(0, 0.9, 0.5), ev(1, 0.8, 0.1), ev(2, 0.5, 0.0)]


def test_knee_is_nearest_to_ideal_after_normalization():
    # normalized (min form): id0 (0, 1), id1 (0.25, 0.2), id2 (1, 0) -> id1 is nearest to (0, 0)
    assert knee(FRONT, OBJS)[0].id == 1


def test_knee_of_single_point_and_empty_front():
    assert knee(FRONT[:1], OBJS)[0].id == 0
    with pytest.raises(UserError, match="Pareto front"):
        knee([], OBJS)


def test_best_respects_direction_and_skips_failures():
    evals = FRONT + [ev(3, 0.99, 0.9, ok=False)]
    assert best(evals, OBJS, "acc")[0].id == 0
    assert best(evals, OBJS, "forgetting")[0].id == 2
    with pytest.raises(UserError, match="unknown objective 'bwt'"):
        best(evals, OBJS, "bwt")


def test_select_expressions():
    evals = FRONT + [ev(3, 0.1, 0.9), ev(4, 0.0, 0.0, ok=False)]
    assert [c.id for c, _ in select("pareto", evals, FRONT, OBJS)] == [0, 1, 2]
    assert [c.id for c, _ in select("id:3", evals, FRONT, OBJS)] == [3]
    assert [c.id for c, _ in select("best:acc", evals, FRONT, OBJS)] == [0]
    with pytest.raises(UserError, match="candidate 4 failed"):
        select("id:4", evals, FRONT, OBJS)
    with pytest.raises(UserError, match="no evaluated candidate with id 9"):
        select("id:9", evals, FRONT, OBJS)
    for bad in ("kne", "best", "id:x", "pareto:1"):
        with pytest.raises(UserError, match="--select"):
            select(bad, evals, FRONT, OBJS)
