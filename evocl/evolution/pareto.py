"""The one Pareto and feasibility module: objective vectors, constraint violation, constrained
domination, non-dominated sorting, the Pareto front and archive, hypervolume.

Engines, storage (``RunView.pareto_front``), the report and the exports all use it, so a run's
front is the same wherever it is read.

The rule for values (one rule, everywhere): a value counts only when it is a finite real
number.
- An objective that is missing, not a number, NaN or +-inf makes the result FAILED for
  search purposes: never a parent, never on a front, not in a hypervolume (the executors
  already record such a result as failed; this holds for engines driven by hand too).
- A constrained value that is missing, not a number, NaN or +-inf is an infinite violation:
  the result is infeasible (it may parent, behind every feasible one, but is never on a
  front).
- Ties: points with equal objective vectors do not dominate each other, so all of them are
  on the front.

Everything is minimized internally: a ``maximize`` objective is negated on the way in, so the
archive and the hypervolume work on one convention. DEAP's sorting and crowding are used on
plain objects of our own (no ``creator`` classes, which break pickling across workers).
"""

from __future__ import annotations

import math
import random
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np
from deap import base, tools

from evocl.records import Candidate, Result


def objective_signs(space: Any) -> list[tuple[str, float]]:
    """(name, sign) per objective of a space (or of a sequence of objectives): sign +1 for
    minimize, -1 for maximize."""
    objectives = getattr(space, "objectives", space)
    return [(o.name, -1.0 if o.direction == "maximize" else 1.0) for o in objectives]


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite real number, else None (the module's rule)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _lookup(result: Result, name: str) -> float | None:
    if name in result.objectives:
        return finite(result.objectives[name])
    if name in result.metrics:
        return finite(result.metrics[name])
    return None


def min_vector(signs: Sequence[tuple[str, float]], result: Result) -> tuple[float, ...] | None:
    """The result's objectives as a minimization vector, or None when the result failed.

    A result counts as failed when its status is ``failed`` or an objective is missing, not a
    number, NaN or +-inf.
    """
    if not result.ok:
        return None
    out = []
    for name, sign in signs:
        value = finite(result.objectives.get(name))
        if value is None:
            return None
        out.append(sign * value)
    return tuple(out)


def violation(constraints: Sequence[Any], result: Result) -> float:
    """Total constraint violation (0.0 when feasible).

    Each constraint's value is read by name from ``result.objectives``, then ``result.metrics``;
    violation = max(0, value - max) + max(0, min - value), summed over constraints; a value
    that is missing, not a number, NaN or +-inf is an infinite violation (infeasible).
    """
    total = 0.0
    for c in constraints:
        value = _lookup(result, c.name)
        if value is None:
            return math.inf
        if c.max is not None and value > c.max:
            total += value - c.max
        if c.min is not None and value < c.min:
            total += c.min - value
    return total


class _Fitness(base.Fitness):
    """A DEAP fitness without ``creator``: minimized values, plus a constraint violation.

    ``dominates`` follows Deb's constrained domination: feasible beats infeasible; between two
    infeasible points the smaller total violation wins; otherwise Pareto domination.
    """

    weights = (-1.0,)

    def __init__(self, fmin: Sequence[float], cv: float = 0.0):  # noqa: D107 (no super: weights vary)
        self.weights = (-1.0,) * len(fmin)
        self.wvalues = tuple(-v for v in fmin)
        self.cv = cv

    def dominates(self, other: "_Fitness", obj: slice = slice(None)) -> bool:
        if self.cv != other.cv:
            if self.cv == 0.0:
                return True
            if other.cv == 0.0:
                return False
            return self.cv < other.cv
        return super().dominates(other, obj)

    def __hash__(self) -> int:
        return hash((self.wvalues, self.cv))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Fitness) and (self.wvalues, self.cv) == (other.wvalues, other.cv)


class _Ind:
    __slots__ = ("id", "fitness")

    def __init__(self, id: int, fmin: Sequence[float], cv: float):
        self.id = id
        self.fitness = _Fitness(fmin, cv)


@contextmanager
def seeded_random(seed: int) -> Iterator[None]:
    """Run DEAP code that draws from the global ``random`` module reproducibly, then restore it."""
    saved = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved)


def rank_and_crowding(ids: Sequence[int], fmin: dict[int, tuple[float, ...]],
                      cv: dict[int, float],
                      cache: dict[int, _Ind] | None = None) -> dict[int, tuple[int, float]]:
    """Front index (0 = best) and crowding distance of each id, by DEAP's NSGA-II routines.

    Uses ``sortLogNondominated`` (fast) when there are several objectives and no constraint
    violation, else ``sortNondominated`` (which honours the constrained ``dominates``).
    Crowding is computed on each front in id order, so the result depends only on the set
    of ids. ``cache`` (id -> DEAP individual) saves rebuilding the wrappers.
    """
    if not ids:
        return {}
    inds = [_individual(i, fmin, cv, cache) for i in ids]
    n_obj = len(inds[0].fitness.wvalues)
    constrained = any(ind.fitness.cv > 0.0 for ind in inds)
    with seeded_random(0):
        if n_obj > 1 and not constrained:
            fronts = tools.sortLogNondominated(inds, len(inds))
        else:
            fronts = tools.sortNondominated(inds, len(inds))
    out: dict[int, tuple[int, float]] = {}
    for rank, front in enumerate(fronts):
        for ind_id, dist in crowding(front).items():
            out[ind_id] = (rank, dist)
    return out


def crowding(front: Sequence[_Ind]) -> dict[int, float]:
    """Crowding distance (DEAP's ``assignCrowdingDist``) of one front, computed in id order."""
    front = sorted(front, key=lambda ind: ind.id)
    tools.emo.assignCrowdingDist(front)
    return {ind.id: float(ind.fitness.crowding_dist) for ind in front}


def _individual(i: int, fmin: dict[int, tuple[float, ...]], cv: dict[int, float],
                cache: dict[int, _Ind] | None) -> _Ind:
    if cache is None:
        return _Ind(i, fmin[i], cv.get(i, 0.0))
    ind = cache.get(i)
    if ind is None:
        ind = cache[i] = _Ind(i, fmin[i], cv.get(i, 0.0))
    return ind


def survivors(ids: Sequence[int], k: int, rc: dict[int, tuple[int, float]]) -> list[int]:
    """The k best ids by rank, then larger crowding distance, then smaller id (deterministic)."""
    return sorted(ids, key=lambda i: (rc[i][0], -rc[i][1], i))[:k]


def dominates(a: Sequence[float], cva: float, b: Sequence[float], cvb: float) -> bool:
    """Deb's constrained domination of a over b (minimization)."""
    if cva != cvb:
        if cva == 0.0:
            return True
        if cvb == 0.0:
            return False
        return cva < cvb
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


class Archive:
    """Every non-dominated, successful and feasible point seen (minimization vectors); points
    with equal vectors are all kept (neither dominates the other)."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.points = np.empty((0, 0))

    def add(self, id: int, fmin: Sequence[float]) -> bool:
        """Insert a point; returns True when it entered the archive."""
        p = np.asarray(fmin, dtype=float)
        if self.ids:
            weakly = np.all(self.points <= p, axis=1)
            if np.any(weakly & np.any(self.points < p, axis=1)):
                return False  # dominated by a point already kept
            keep = ~(np.all(p <= self.points, axis=1) & np.any(p < self.points, axis=1))
            self.ids = [i for i, k in zip(self.ids, keep) if k]
            self.points = np.vstack([self.points[keep], p])
        else:
            self.points = p.reshape(1, -1)
        self.ids.append(id)
        return True


def scored(evaluations: Sequence[tuple[Candidate, Result]], space: Any,
           ) -> list[tuple[Candidate, Result, tuple[float, ...], float]]:
    """(candidate, result, minimization vector, violation) of each evaluation that did not
    fail under the module's rule, in the given order."""
    signs = objective_signs(space)
    constraints = getattr(space, "constraints", ())
    out = []
    for cand, res in evaluations:
        fmin = min_vector(signs, res)
        if fmin is not None:
            out.append((cand, res, fmin, violation(constraints, res)))
    return out


def front(evaluations: Sequence[tuple[Candidate, Result]],
          space: Any) -> list[tuple[Candidate, Result]]:
    """The Pareto front of told evaluations: successful, feasible and non-dominated, in the
    given order (equal objective vectors all kept). What an engine's ``pareto_front()``
    holds for the same evaluations, in tell order instead of id order."""
    archive = Archive()
    kept: dict[int, tuple[Candidate, Result]] = {}
    for k, (cand, res, fmin, cv) in enumerate(scored(evaluations, space)):
        if cv == 0.0 and archive.add(k, fmin):
            kept[k] = (cand, res)
    return [kept[k] for k in sorted(archive.ids)]


def hypervolume(points: np.ndarray, ref: Sequence[float]) -> float:
    """Hypervolume (minimization) of the points that strictly dominate ref, via moocore."""
    ref_arr = np.asarray(ref, dtype=float)
    if len(points) == 0:
        return 0.0
    pts = points[np.all(points < ref_arr, axis=1)]
    if len(pts) == 0:
        return 0.0
    if pts.shape[1] == 1:
        return float(ref_arr[0] - pts[:, 0].min())
    import moocore

    return float(moocore.hypervolume(pts, ref=ref_arr))


def derived_reference(points: np.ndarray) -> list[float]:
    """Reference point when the space gives none: the worst value seen + 10% of the range seen
    (or + 10% of max(1, |worst|) when every value is equal), per objective."""
    worst = points.max(axis=0)
    span = worst - points.min(axis=0)
    pad = np.where(span > 0, 0.1 * span, 0.1 * np.maximum(1.0, np.abs(worst)))
    return [float(v) for v in worst + pad]
