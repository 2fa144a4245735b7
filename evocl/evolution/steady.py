"""Asynchronous steady-state NSGA-II (``async-nsga2``) and random search (``random``).

No generation barrier: ``ask(n)`` always returns n candidates. async-nsga2 hands out the
initial configurations, then random samples until the population holds ``population_size``
successful members, then children of the current population. Each successful result joins
the population at once; when it overflows, the member worst by non-dominated rank, then
crowding distance, is removed (the youngest on ties). Each child draws from a generator
seeded by (seed, child id), so the state is plain data.
"""

from __future__ import annotations

from typing import Any, Mapping

from evocl.evolution import pareto
from evocl.evolution.base import Engine, Proto
from evocl.evolution.generational import NSGA2, GenerationalEngine, check_variation_options

_CHILD = 2
_RANDOM = 3


class AsyncNSGA2(Engine):
    """Steady-state NSGA-II for parallel workers: a newcomer replaces the worst member."""

    algorithm = "async-nsga2"
    DEFAULTS = dict(GenerationalEngine.DEFAULTS)

    def __init__(self, space: Any, **kwargs: Any):
        super().__init__(space, **kwargs)
        check_variation_options(self.algorithm, self.options)
        self._population: list[int] = []
        self._rc: dict[int, tuple[int, float]] | None = None
        self._inds: dict[int, Any] = {}   # id -> DEAP wrapper, reused across sorts

    def _next_proto(self) -> Proto | None:
        proto = self._take_initial()
        if proto is not None:
            return proto
        cid = len(self._candidates)
        if len(self._population) < self.population_size:
            return self._sample_proto(self._rng(_RANDOM, cid))
        rng = self._rng(_CHILD, cid)
        if self._rc is None:
            self._rc = pareto.rank_and_crowding(self._population, self._fmin, self._cv,
                                                self._inds)
        pair: list[tuple[dict[str, Any], tuple[int, int]]] = []
        return self._fresh(lambda: self._child(pair, rng), rng)

    # the variation is NSGA-II's: same tournament and operators
    _choose_parent = NSGA2._choose_parent
    _mate = GenerationalEngine._mate
    _child = GenerationalEngine._child

    def _proto(self, config: Mapping[str, Any], parents: tuple[int, ...] = (),
               origin: str = "sample", generation: int | None = None) -> Proto:
        return super()._proto(config, parents, origin, self.n_told // self.population_size)

    def _on_tell(self, cid: int) -> None:
        if cid in self._fmin:
            self._population.append(cid)
            self._rc = None
            if len(self._population) > self.population_size:
                rc = pareto.rank_and_crowding(self._population, self._fmin, self._cv,
                                              self._inds)
                worst = max(self._population, key=lambda i: (rc[i][0], -rc[i][1], i))
                self._population.remove(worst)
                self._inds.pop(worst, None)
                # Removing a member of the last front changes no rank, only the crowding of
                # that front: update it (same result as a full recomputation, in id order).
                del rc[worst]
                last = rc and max(r for r, _ in rc.values())
                front = [self._inds[i] for i in self._population if rc[i][0] == last]
                for i, dist in pareto.crowding(front).items():
                    rc[i] = (last, dist)
                self._rc = rc
        super()._on_tell(cid)

    def _extra_state(self) -> dict[str, Any]:
        return {"population": list(self._population)}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        self._population = [int(i) for i in extra["population"]]
        self._rc = None


class RandomSearch(Engine):
    """Uniform random sampling of the space (duplicates re-drawn), the baseline of baselines."""

    algorithm = "random"

    def _next_proto(self) -> Proto | None:
        proto = self._take_initial()
        if proto is not None:
            return proto
        return self._sample_proto(self._rng(_RANDOM, len(self._candidates)))

    def _proto(self, config: Mapping[str, Any], parents: tuple[int, ...] = (),
               origin: str = "sample", generation: int | None = None) -> Proto:
        return super()._proto(config, parents, origin, self.n_told // self.population_size)
