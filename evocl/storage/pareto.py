"""Pareto front of told results: a small pure function over objective values and directions."""

from __future__ import annotations

import math
from typing import Any, Sequence

from evocl.records import Candidate, Result


def feasible(result: Result, constraints: Sequence[dict[str, Any]]) -> bool:
    """True when every constraint (value looked up in objectives, then metrics) holds.

    A constrained value that is missing makes the result infeasible (as in the engines).
    """
    for c in constraints:
        v = result.objectives.get(c["name"], result.metrics.get(c["name"]))
        if v is None:
            return False
        try:
            v = float(v)
        except (TypeError, ValueError):
            return False
        if math.isnan(v) or (c.get("max") is not None and v > c["max"]) or \
                (c.get("min") is not None and v < c["min"]):
            return False
    return True


def _vector(result: Result, objectives: Sequence[dict[str, Any]]) -> list[float] | None:
    """Objective values turned to minimisation; None when one is missing or not finite."""
    out = []
    for o in objectives:
        v = result.objectives.get(o["name"])
        if v is None or not math.isfinite(v):
            return None
        out.append(-v if o["direction"] == "maximize" else v)
    return out


def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_front(evaluations: Sequence[tuple[Candidate, Result]],
                 objectives: Sequence[dict[str, Any]],
                 constraints: Sequence[dict[str, Any]] = ()) -> list[tuple[Candidate, Result]]:
    """Non-dominated, feasible, ok evaluations, in the given (tell) order.

    ``objectives``: [{"name", "direction"}]; duplicates of the same objective vector are all
    kept (they are equally good).
    """
    pts = []
    for cand, res in evaluations:
        if not res.ok or not feasible(res, constraints):
            continue
        vec = _vector(res, objectives)
        if vec is not None:
            pts.append((cand, res, vec))
    return [(c, r) for c, r, v in pts if not any(_dominates(w, v) for _, _, w in pts)]
