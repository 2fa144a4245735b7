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

from evocl.evolution.base import Engine, Proto
from evocl.evolution.parts import BinaryTournament, Fitness, RankAndCrowding, SBXPolynomial

_CHILD = 2
_RANDOM = 3


class AsyncNSGA2(Engine):
    """Steady-state NSGA-II for parallel workers: a newcomer replaces the worst member.

    NSGA-II's parts: ``BinaryTournament`` selection, ``SBXPolynomial`` variation and
    ``RankAndCrowding`` survival, applied one result at a time (``reduce``)."""

    algorithm = "async-nsga2"
    DEFAULTS = dict(SBXPolynomial.OPTIONS)

    def __init__(self, space: Any, **kwargs: Any):
        super().__init__(space, **kwargs)
        self.variation = SBXPolynomial.from_options(self.options, self.algorithm)
        self.selection = BinaryTournament()
        self.survival = RankAndCrowding()
        self._fit = Fitness(self._fmin, self._cv)
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
            self._rc = self._fit.rank_and_crowding(self._population, self._inds)
        choose = self.selection.chooser(self._population, self._fit, self._rc)
        children = self.variation.offspring(self.space, choose,
                                            lambda i: self._candidates[i].config, rng)

        def child() -> Proto:
            config, parents = next(children)
            return self._proto(config, parents=parents, origin="offspring")
        return self._fresh(child, rng)

    def _proto(self, config: Mapping[str, Any], parents: tuple[int, ...] = (),
               origin: str = "sample", generation: int | None = None) -> Proto:
        return super()._proto(config, parents, origin, self.n_told // self.population_size)

    def _on_tell(self, cid: int) -> None:
        if cid in self._fmin:
            self._population.append(cid)
            self._rc = None
            if len(self._population) > self.population_size:
                worst, self._rc = self.survival.reduce(self._population, self._fit, self._inds)
                self._population.remove(worst)
                self._inds.pop(worst, None)
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
