"""A search engine in one module: (mu + 1) local search on the first objective.

Random samples until ``population_size`` results succeeded; then each candidate is the best
result so far (feasible first, then the first objective) mutated by the space's polynomial
/ categorical mutation. Everything it needs is in the engine's told results, so it has no
state of its own: ``state()`` / ``from_state`` work unchanged. Register it and run the
shared contract on it (see the README's "Extending evocl")::

    from evocl.registry import ENGINES
    ENGINES.register("local-search", "local_search:LocalSearch", "(mu + 1) local search")
"""

from __future__ import annotations

from typing import Any, Mapping

from evocl.evolution.base import Engine, Proto
from evocl.evolution.parts import Fitness
from evocl.space import operators

_MUTATE = 7   # rng purpose tag: each candidate draws from (seed, 7, its id)


class LocalSearch(Engine):
    algorithm = "local-search"
    DEFAULTS = {"eta_m": 20.0}   # polynomial mutation distribution index

    def _next_proto(self) -> Proto | None:
        proto = self._take_initial()
        if proto is not None:
            return proto
        rng = self._rng(_MUTATE, len(self._candidates))
        if len(self._fmin) < self.population_size:
            return self._sample_proto(rng)
        best = min(self._fmin, key=Fitness(self._fmin, self._cv).first_objective_key)
        parent = self._candidates[best].config
        return self._fresh(lambda: self._proto(
            operators.mutate(self.space, parent, rng, eta=self.options["eta_m"]),
            parents=(best,), origin="offspring"), rng)

    def _proto(self, config: Mapping[str, Any], parents: tuple[int, ...] = (),
               origin: str = "sample", generation: int | None = None) -> Proto:
        return super()._proto(config, parents, origin, self.n_told // self.population_size)
