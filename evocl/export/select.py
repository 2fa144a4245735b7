"""Choosing configurations from a run: the knee of the Pareto front, the best by one objective,
the whole front, or one candidate by id. Pure functions over (Candidate, Result) pairs; what
counts as failed is ``evocl.evolution.pareto``'s rule (an objective missing or not finite)."""

from __future__ import annotations

import math
from typing import Sequence

from evocl.errors import UserError
from evocl.evolution.pareto import min_vector, objective_signs
from evocl.records import Candidate, Result

Evaluation = tuple[Candidate, Result]


def _minimized(result: Result, objectives: Sequence) -> list[float]:
    """Objective values turned into minimization (maximize -> negated)."""
    out = []
    for o in objectives:
        v = float(result.objectives[o.name])
        out.append(-v if o.direction == "maximize" else v)
    return out


def knee(front: Sequence[Evaluation], objectives: Sequence) -> Evaluation:
    """The Pareto point nearest the ideal point after normalizing each objective to [0, 1]
    over the front (Euclidean distance). Ties go to the lower candidate id."""
    if not front:
        raise UserError("no successful evaluation on the Pareto front yet", field="--select")
    points = [_minimized(r, objectives) for _, r in front]
    lo = [min(col) for col in zip(*points)]
    hi = [max(col) for col in zip(*points)]

    def dist(p: list[float]) -> float:
        return math.sqrt(sum(((v - l) / (h - l) if h > l else 0.0) ** 2 for v, l, h in zip(p, lo, hi)))

    order = sorted(range(len(front)), key=lambda i: (dist(points[i]), front[i][0].id))
    return front[order[0]]


def best(evaluations: Sequence[Evaluation], objectives: Sequence, name: str) -> Evaluation:
    """The successful evaluation best in objective ``name`` (ties: lower id)."""
    by_name = {o.name: o for o in objectives}
    if name not in by_name:
        raise UserError(f"unknown objective {name!r}; the run's objectives are {sorted(by_name)}",
                        field="--select")
    signs = objective_signs(objectives)
    ok = [(c, r) for c, r in evaluations if min_vector(signs, r) is not None]
    if not ok:
        raise UserError("no successful evaluation in this run yet", field="--select")
    sign = -1.0 if by_name[name].direction == "maximize" else 1.0
    return min(ok, key=lambda e: (sign * e[1].objectives[name], e[0].id))


def select(selector: str, evaluations: Sequence[Evaluation], front: Sequence[Evaluation],
           objectives: Sequence) -> list[Evaluation]:
    """Apply a ``--select`` expression: knee | best:OBJECTIVE | pareto | id:N."""
    kind, _, arg = selector.partition(":")
    if kind == "knee" and not arg:
        return [knee(front, objectives)]
    if kind == "best" and arg:
        return [best(evaluations, objectives, arg)]
    if kind == "pareto" and not arg:
        if not front:
            raise UserError("no successful evaluation on the Pareto front yet", field="--select")
        return sorted(front, key=lambda e: e[0].id)
    if kind == "id" and arg:
        try:
            cid = int(arg)
        except ValueError:
            raise UserError(f"id must be an integer, got {arg!r}", field="--select") from None
        for c, r in evaluations:
            if c.id == cid:
                if r.status == "pruned":
                    raise UserError(f"candidate {cid} was pruned after "
                                    f"{r.metrics.get('tasks_trained', '?')} tasks (stopped early, "
                                    "never fully evaluated); nothing to export", field="--select")
                if min_vector(objective_signs(objectives), r) is None:
                    why = r.error if not r.ok else "an objective is missing or not finite"
                    raise UserError(f"candidate {cid} failed ({why}); nothing to export",
                                    field="--select")
                return [(c, r)]
        raise UserError(f"no evaluated candidate with id {cid}", field="--select")
    raise UserError(f"expected knee, best:OBJECTIVE, pareto or id:N, got {selector!r}",
                    field="--select")
