"""Generational engines: NSGA-II (``nsga2``) and a single-objective GA with elitism (``ga``).

A generation is bred all at once and handed out by ``ask``; when every candidate of it has
been told, it is processed in candidate-id order (so the order in which parallel workers
return results never changes what is bred next) and the next generation is bred. Failed
results are counted but never survive or parent; when fewer than ``population_size``
successful members survive, the shortfall of the next generation is fresh random samples.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Mapping

import numpy as np

from evocl.errors import UserError
from evocl.evolution import pareto
from evocl.evolution.base import Engine, Proto
from evocl.space import operators

log = logging.getLogger(__name__)

_BREED = 1   # rng purpose tags (see Engine._rng)
_INIT = 0


def check_variation_options(source: str, opts: dict[str, Any]) -> None:
    """UserError unless probabilities are in [0, 1] and distribution indices are >= 0."""
    for key in ("crossover_prob", "prob_var", "indpb"):
        v = opts.get(key)
        if v is not None and not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
            raise UserError(f"must be a probability in [0, 1], got {v!r}", source=source,
                            field=key)
    for key in ("eta_c", "eta_m"):
        v = opts.get(key)
        if not (isinstance(v, (int, float)) and v >= 0.0):
            raise UserError(f"must be a number >= 0, got {v!r}", source=source, field=key)


class GenerationalEngine(Engine):
    """Shared generation bookkeeping; subclasses define ``_survive`` and ``_choose_parent``."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "crossover_prob": 0.9,   # probability that a pair is recombined (else copied)
        "eta_c": 15.0,           # SBX distribution index
        "prob_var": 0.5,         # per-variable probability of recombination within SBX
        "eta_m": 20.0,           # polynomial mutation distribution index
        "indpb": None,           # per-variable mutation probability (None: 1 / n parameters)
    }

    def __init__(self, space: Any, **kwargs: Any):
        super().__init__(space, **kwargs)
        check_variation_options(self.algorithm, self.options)
        self._queue: list[Proto] = []
        self._gen_ids: list[int] = []        # ids asked in the current generation
        self._population: list[int] = []     # survivors: the parents of the next generation
        self._started = False

    # ------------------------------------------------------------ ask side
    def _next_proto(self) -> Proto | None:
        if not self._started:
            self._started = True
            self._queue = self._first_generation()
        if not self._queue:
            return None
        proto = self._queue.pop(0)
        self._pending_hashes.discard(proto.config_hash)
        self._gen_ids.append(len(self._candidates))
        return proto

    def _first_generation(self) -> list[Proto]:
        rng = self._rng(_INIT, 0)
        protos: list[Proto] = []
        while self._initial:
            protos.append(self._reserve(self._take_initial()))
        while len(protos) < self.population_size:
            protos.append(self._reserve(self._sample_proto(rng)))
        return protos

    def _reserve(self, proto: Proto) -> Proto:
        self._pending_hashes.add(proto.config_hash)
        return proto

    # ------------------------------------------------------------ tell side
    def _on_tell(self, cid: int) -> None:
        if self._queue or any(i not in self._results for i in self._gen_ids):
            return
        successful = [i for i in sorted(self._gen_ids) if i in self._fmin]
        self._population = self._survive(sorted(set(self._population) | set(successful)))
        self._generation += 1
        self._gen_ids = []
        self._log_progress()
        self._queue = self._breed(self._rng(_BREED, self._generation))

    def _breed(self, rng: np.random.Generator) -> list[Proto]:
        protos: list[Proto] = []
        n_children = len(self._population) if len(self._population) >= 2 else 0
        self._prepare_selection()
        pair: list[tuple[dict[str, Any], tuple[int, int]]] = []
        while len(protos) < n_children:
            protos.append(self._reserve(self._fresh(lambda: self._child(pair, rng), rng)))
        while len(protos) < self.population_size:
            protos.append(self._reserve(self._sample_proto(rng)))
        return protos

    def _mate(self, rng: np.random.Generator) -> list[tuple[dict[str, Any], tuple[int, int]]]:
        """Two parents by tournament, recombined with probability ``crossover_prob`` (else
        copied): two (config, parents) pairs, mutated and made canonical by ``_child`` only
        when taken (a steady-state engine uses one of the two)."""
        a, b = self._choose_parent(rng), self._choose_parent(rng)
        ca, cb = self._candidates[a].config, self._candidates[b].config
        opts = self.options
        if rng.random() < opts["crossover_prob"]:
            ca, cb = operators.crossover(self.space, ca, cb, rng, eta=opts["eta_c"],
                                         prob_var=opts["prob_var"])
        return [(ca, (a, b)), (cb, (a, b))]

    def _child(self, pair: list[tuple[dict[str, Any], tuple[int, int]]],
               rng: np.random.Generator) -> Proto:
        """The next child of ``pair`` (mating again when it is empty), mutated."""
        if not pair:
            pair.extend(self._mate(rng))
        config, parents = pair.pop(0)
        config = operators.mutate(self.space, config, rng, eta=self.options["eta_m"],
                                  indpb=self.options["indpb"])
        return self._proto(config, parents=parents, origin="offspring")

    # ------------------------------------------------------------ subclass hooks
    def _survive(self, pool: list[int]) -> list[int]:
        raise NotImplementedError

    def _prepare_selection(self) -> None:
        pass

    def _choose_parent(self, rng: np.random.Generator) -> int:
        raise NotImplementedError

    # ------------------------------------------------------------ state
    def _extra_state(self) -> dict[str, Any]:
        return {"queue": [p.to_dict() for p in self._queue], "gen_ids": list(self._gen_ids),
                "population": list(self._population), "started": self._started}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        self._queue = [Proto.from_dict(d) for d in extra["queue"]]
        self._pending_hashes = {p.config_hash for p in self._queue}
        self._gen_ids = [int(i) for i in extra["gen_ids"]]
        self._population = [int(i) for i in extra["population"]]
        self._started = bool(extra["started"])
        self._prepare_selection()


class NSGA2(GenerationalEngine):
    """Generational NSGA-II (Deb et al. 2002), as in pymoo: (mu + lambda) survival by
    non-dominated rank then crowding distance (DEAP's sorting), binary tournament on
    constrained domination then crowding, SBX crossover and polynomial mutation from the
    space's operators, duplicates eliminated. Constraints use Deb's constrained domination."""

    algorithm = "nsga2"

    def _survive(self, pool: list[int]) -> list[int]:
        rc = pareto.rank_and_crowding(pool, self._fmin, self._cv)
        return pareto.survivors(pool, self.population_size, rc)

    def _prepare_selection(self) -> None:
        self._rc = pareto.rank_and_crowding(self._population, self._fmin, self._cv)

    def _choose_parent(self, rng: np.random.Generator) -> int:
        pop = self._population
        i, j = rng.choice(len(pop), size=2, replace=False)
        a, b = pop[int(i)], pop[int(j)]
        if pareto.dominates(self._fmin[a], self._cv[a], self._fmin[b], self._cv[b]):
            return a
        if pareto.dominates(self._fmin[b], self._cv[b], self._fmin[a], self._cv[a]):
            return b
        ca, cb = self._rc[a][1], self._rc[b][1]
        if ca != cb:
            return a if ca > cb else b
        return a if rng.random() < 0.5 else b


class GA(GenerationalEngine):
    """Single-objective generational GA with elitism. It optimizes the FIRST objective of the
    space only (others are still archived for the Pareto front); with constraints, feasible
    beats infeasible and smaller violation beats larger. The ``elite`` best of parents and
    children survive, the rest of the population is the best children; parents are chosen by
    tournaments of ``tournament_size``."""

    algorithm = "ga"
    DEFAULTS = {**GenerationalEngine.DEFAULTS, "elite": 2, "tournament_size": 3}

    def __init__(self, space: Any, **kwargs: Any):
        super().__init__(space, **kwargs)
        if len(self._signs) > 1:
            log.info("ga optimizes the first objective %r only", self._signs[0][0])
        elite, size = self.options["elite"], self.options["tournament_size"]
        if not isinstance(elite, int) or not 0 <= elite <= self.population_size:
            raise UserError(f"must be an int in [0, population_size], got {elite!r}",
                            source="ga", field="elite")
        if not isinstance(size, int) or size < 1:
            raise UserError(f"must be an int >= 1, got {size!r}", source="ga",
                            field="tournament_size")

    def _key(self, i: int) -> tuple[bool, float, float, int]:
        cv = self._cv[i]
        return (cv > 0.0, cv, self._fmin[i][0], i)

    def _survive(self, pool: list[int]) -> list[int]:
        old = set(self._population)
        elite = sorted(pool, key=self._key)[: int(self.options["elite"])]
        children = sorted((i for i in pool if i not in old and i not in elite), key=self._key)
        rest = sorted((i for i in pool if i in old and i not in elite), key=self._key)
        return (elite + children + rest)[: self.population_size]

    def _choose_parent(self, rng: np.random.Generator) -> int:
        pop = self._population
        k = min(int(self.options["tournament_size"]), len(pop))
        picks = rng.choice(len(pop), size=k, replace=False)
        return min((pop[int(p)] for p in picks), key=self._key)
