"""Engine parts: sampling, selection, survival and variation, composed by the engines.

In pymoo's manner (``algorithms/moo/nsga2.py`` passes its selection, survival, crossover and
mutation into the algorithm), an engine is bookkeeping plus a few small parts:

    NSGA-II        BinaryTournament()      RankAndCrowding()         SBXPolynomial(...)
    GA             Tournament(size)        Elitist(elite)            SBXPolynomial(...)
    async-nsga2    BinaryTournament()      RankAndCrowding().reduce  SBXPolynomial(...)

A part holds static settings only; the data it works on (the population's ids, their
minimization vectors and constraint violations) is passed in as a ``Fitness``, and its
randomness comes from the numpy Generator it is given, so engines stay deterministic from
seed + state. Each part draws exactly what the engines drew before the split (the golden
tests pin this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator, Mapping, Protocol, Sequence

import numpy as np

from evocl.errors import UserError
from evocl.evolution import pareto
from evocl.space import operators

Chooser = Callable[[np.random.Generator], int]
Offspring = Iterator[tuple[dict[str, Any], tuple[int, ...]]]


@dataclass(frozen=True)
class Fitness:
    """Read-only view of the successful results: id -> minimization vector, id -> total
    constraint violation (0.0 when feasible). The engine's own dicts, shared, not copied."""

    fmin: Mapping[int, tuple[float, ...]]
    cv: Mapping[int, float]

    def dominates(self, a: int, b: int) -> bool:
        """Deb's constrained domination of a over b."""
        return pareto.dominates(self.fmin[a], self.cv[a], self.fmin[b], self.cv[b])

    def rank_and_crowding(self, ids: Sequence[int],
                          cache: dict[int, Any] | None = None) -> dict[int, tuple[int, float]]:
        return pareto.rank_and_crowding(ids, self.fmin, self.cv, cache)

    def first_objective_key(self, i: int) -> tuple[bool, float, float, int]:
        """Single-objective order: feasible first, smaller violation, smaller first objective,
        smaller id."""
        cv = self.cv[i]
        return (cv > 0.0, cv, self.fmin[i][0], i)


# ------------------------------------------------------------------------------ protocols
class Sampling(Protocol):
    def sample(self, space: Any, rng: np.random.Generator) -> dict[str, Any]: ...


class Selection(Protocol):
    def chooser(self, population: Sequence[int], fit: Fitness,
                ranks: Mapping[int, tuple[int, float]] | None = None) -> Chooser:
        """A function rng -> the id of one parent from ``population``."""
        ...


class Survival(Protocol):
    def survive(self, pool: Sequence[int], k: int, fit: Fitness,
                previous: Sequence[int] = ()) -> list[int]:
        """The k ids of ``pool`` that stay (``previous``: the population before the newcomers)."""
        ...


class Variation(Protocol):
    def offspring(self, space: Any, choose: Chooser, config_of: Callable[[int], Mapping[str, Any]],
                  rng: np.random.Generator) -> Offspring:
        """An endless stream of (child config, parent ids), drawn only as far as it is read."""
        ...


# ------------------------------------------------------------------------------ sampling
class RandomSampling:
    """Uniform sampling of the space (log-uniform on log scales)."""

    def sample(self, space: Any, rng: np.random.Generator) -> dict[str, Any]:
        return space.sample(rng)


# ------------------------------------------------------------------------------ selection
class BinaryTournament:
    """NSGA-II's binary tournament (Deb et al. 2002): two distinct members drawn; the one that
    constrained-dominates wins, else the larger crowding distance, else a coin flip."""

    def chooser(self, population: Sequence[int], fit: Fitness,
                ranks: Mapping[int, tuple[int, float]] | None = None) -> Chooser:
        pop = list(population)
        rc = fit.rank_and_crowding(pop) if ranks is None else ranks

        def choose(rng: np.random.Generator) -> int:
            i, j = rng.choice(len(pop), size=2, replace=False)
            a, b = pop[int(i)], pop[int(j)]
            if fit.dominates(a, b):
                return a
            if fit.dominates(b, a):
                return b
            ca, cb = rc[a][1], rc[b][1]
            if ca != cb:
                return a if ca > cb else b
            return a if rng.random() < 0.5 else b
        return choose


@dataclass(frozen=True)
class Tournament:
    """``size`` distinct members drawn; the best by the first objective (feasible first) wins."""

    size: int = 3

    def chooser(self, population: Sequence[int], fit: Fitness,
                ranks: Mapping[int, tuple[int, float]] | None = None) -> Chooser:
        pop = list(population)
        k = min(self.size, len(pop))

        def choose(rng: np.random.Generator) -> int:
            picks = rng.choice(len(pop), size=k, replace=False)
            return min((pop[int(p)] for p in picks), key=fit.first_objective_key)
        return choose


# ------------------------------------------------------------------------------ survival
class RankAndCrowding:
    """NSGA-II's (mu + lambda) survival: by non-dominated rank, then larger crowding distance,
    then smaller id (DEAP's sorting, constrained domination)."""

    def survive(self, pool: Sequence[int], k: int, fit: Fitness,
                previous: Sequence[int] = ()) -> list[int]:
        return pareto.survivors(pool, k, fit.rank_and_crowding(pool))

    def reduce(self, population: list[int], fit: Fitness,
               cache: dict[int, Any]) -> tuple[int, dict[int, tuple[int, float]]]:
        """Steady-state survival: the worst member of ``population`` (by rank, then crowding,
        the youngest on ties) and the rank and crowding of the others.

        Removing a member of the last front changes no rank, only that front's crowding, so
        only it is recomputed (the same result as a full sort, in id order). ``cache`` holds
        DEAP wrappers by id across calls; the caller drops the removed id from it.
        """
        rc = fit.rank_and_crowding(population, cache)
        worst = max(population, key=lambda i: (rc[i][0], -rc[i][1], i))
        del rc[worst]
        last = rc and max(r for r, _ in rc.values())
        front = [cache[i] for i in population if i != worst and rc[i][0] == last]
        for i, dist in pareto.crowding(front).items():
            rc[i] = (last, dist)
        return worst, rc


@dataclass(frozen=True)
class Elitist:
    """Single-objective survival with elitism: the ``elite`` best of parents and children, then
    the best children, then the best remaining parents."""

    elite: int = 2

    def survive(self, pool: Sequence[int], k: int, fit: Fitness,
                previous: Sequence[int] = ()) -> list[int]:
        old = set(previous)
        key = fit.first_objective_key
        elite = sorted(pool, key=key)[: self.elite]
        children = sorted((i for i in pool if i not in old and i not in elite), key=key)
        rest = sorted((i for i in pool if i in old and i not in elite), key=key)
        return (elite + children + rest)[:k]


# ------------------------------------------------------------------------------ variation
@dataclass(frozen=True)
class SBXPolynomial:
    """Two parents by the selection, recombined by bounded SBX with probability
    ``crossover_prob`` (else copied), then each child mutated by polynomial mutation when it
    is taken (the space's operators: categorical and bool genes swapped or flipped)."""

    crossover_prob: float = 0.9   # probability that a pair is recombined (else copied)
    eta_c: float = 15.0           # SBX distribution index
    prob_var: float = 0.5         # per-variable probability of recombination within SBX
    eta_m: float = 20.0           # polynomial mutation distribution index
    indpb: float | None = None    # per-variable mutation probability (None: 1 / n parameters)

    OPTIONS: ClassVar[dict[str, Any]] = {"crossover_prob": 0.9, "eta_c": 15.0, "prob_var": 0.5,
                                         "eta_m": 20.0, "indpb": None}

    @classmethod
    def from_options(cls, options: Mapping[str, Any], source: str) -> "SBXPolynomial":
        """Built from an engine's options; a UserError names the option and the rule broken."""
        for key in ("crossover_prob", "prob_var", "indpb"):
            v = options.get(key)
            if v is not None and not (_is_number(v) and 0.0 <= v <= 1.0):
                raise UserError(f"must be a probability in [0, 1], got {v!r}", source=source,
                                field=key)
        for key in ("eta_c", "eta_m"):
            v = options.get(key)
            if not (_is_number(v) and v >= 0.0):
                raise UserError(f"must be a number >= 0, got {v!r}", source=source, field=key)
        return cls(**{k: options[k] for k in cls.OPTIONS})

    def offspring(self, space: Any, choose: Chooser, config_of: Callable[[int], Mapping[str, Any]],
                  rng: np.random.Generator) -> Offspring:
        while True:
            a, b = choose(rng), choose(rng)
            ca, cb = config_of(a), config_of(b)
            if rng.random() < self.crossover_prob:
                ca, cb = operators.crossover(space, ca, cb, rng, eta=self.eta_c,
                                             prob_var=self.prob_var)
            for config in (ca, cb):
                yield operators.mutate(space, config, rng, eta=self.eta_m,
                                       indpb=self.indpb), (a, b)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
