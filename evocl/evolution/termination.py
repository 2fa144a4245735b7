"""When to stop a search: pure, stateless criteria read from the engine.

Each criterion has ``done(engine, elapsed_s) -> str | None``: None to go on, else the reason
(one line, for logs and the run summary). Combine with ``AnyOf`` (stop at the first reached)
or ``from_limits``. Stagnation reads ``engine.hv_history`` (one (n_told, hypervolume) point per
generation, or per ``population_size`` results for steady-state engines and baselines), so
criteria hold no state of their own and survive a resume unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from evocl.errors import UserError


class Termination(Protocol):
    def done(self, engine: Any, elapsed_s: float) -> str | None: ...


def _positive(value: float, field: str) -> None:
    if value is None or value <= 0:
        raise UserError(f"must be > 0, got {value!r}", source="termination", field=field)


@dataclass(frozen=True)
class Budget:
    """Stop once ``evaluations`` results were told (failed ones count: they cost time too)."""

    evaluations: int

    def __post_init__(self) -> None:
        _positive(self.evaluations, "budget")

    def done(self, engine: Any, elapsed_s: float) -> str | None:
        if engine.n_told >= self.evaluations:
            return f"budget of {self.evaluations} evaluations reached"
        return None


@dataclass(frozen=True)
class Generations:
    """Stop once ``generations`` generations were completed."""

    generations: int

    def __post_init__(self) -> None:
        _positive(self.generations, "generations")

    def done(self, engine: Any, elapsed_s: float) -> str | None:
        if engine.generation >= self.generations:
            return f"{self.generations} generations completed"
        return None


@dataclass(frozen=True)
class WallTime:
    """Stop once ``seconds`` of wall time elapsed (the caller measures, resumes included)."""

    seconds: float

    def __post_init__(self) -> None:
        _positive(self.seconds, "max_wall_time")

    def done(self, engine: Any, elapsed_s: float) -> str | None:
        if elapsed_s >= self.seconds:
            return f"wall time of {self.seconds:g} s reached"
        return None


@dataclass(frozen=True)
class Stagnation:
    """Stop when the hypervolume did not improve (by more than ``tol``, relative) over the
    last ``generations`` history points (generations, or blocks of population_size results)."""

    generations: int
    tol: float = 1e-9

    def __post_init__(self) -> None:
        _positive(self.generations, "stagnation")

    def done(self, engine: Any, elapsed_s: float) -> str | None:
        hist = engine.hv_history
        k = self.generations
        if len(hist) <= k:
            return None
        before = hist[-k - 1][1]
        best_recent = max(h for _, h in hist[-k:])
        if best_recent <= before + self.tol * max(abs(before), 1e-12):
            return f"no hypervolume improvement in {k} generations"
        return None


@dataclass(frozen=True)
class AnyOf:
    """Stop at the first criterion that says so (its reason is returned)."""

    criteria: tuple[Any, ...]

    def done(self, engine: Any, elapsed_s: float) -> str | None:
        for c in self.criteria:
            reason = c.done(engine, elapsed_s)
            if reason:
                return reason
        return None


def from_limits(*, budget: int | None = None, generations: int | None = None,
                max_wall_time: float | None = None, stagnation: int | None = None) -> AnyOf:
    """The any-of combination of the limits given (the RunConfig fields of the same names)."""
    criteria: list[Any] = []
    if budget is not None:
        criteria.append(Budget(budget))
    if generations is not None:
        criteria.append(Generations(generations))
    if max_wall_time is not None:
        criteria.append(WallTime(max_wall_time))
    if stagnation is not None:
        criteria.append(Stagnation(stagnation))
    if not criteria:
        raise UserError("give at least one of budget, generations, max_wall_time",
                        source="termination", field="budget")
    return AnyOf(tuple(criteria))
