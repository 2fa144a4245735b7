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
from evocl.evolution.base import Engine, Proto
from evocl.evolution.parts import (BinaryTournament, Elitist, Fitness, RankAndCrowding,
                                   SBXPolynomial, Selection, Survival, Tournament)

log = logging.getLogger(__name__)

_BREED = 1   # rng purpose tags (see Engine._rng)
_INIT = 0


class GenerationalEngine(Engine):
    """Generation bookkeeping around the parts of ``evocl.evolution.parts``: the engine's
    sampling (first generation and shortfall), a selection of parents, a variation that
    breeds children and a survival that keeps ``population_size`` of parents and children.
    Subclasses name their selection and survival in ``_parts``."""

    DEFAULTS: ClassVar[dict[str, Any]] = dict(SBXPolynomial.OPTIONS)

    def __init__(self, space: Any, **kwargs: Any):
        super().__init__(space, **kwargs)
        self.variation = SBXPolynomial.from_options(self.options, self.algorithm)
        self.selection, self.survival = self._parts()
        self._fit = Fitness(self._fmin, self._cv)
        self._queue: list[Proto] = []
        self._gen_ids: list[int] = []        # ids asked in the current generation
        self._population: list[int] = []     # survivors: the parents of the next generation
        self._started = False

    def _parts(self) -> tuple[Selection, Survival]:
        raise NotImplementedError

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
        pool = sorted(set(self._population) | set(successful))
        self._population = self.survival.survive(pool, self.population_size, self._fit,
                                                 self._population)
        self._generation += 1
        self._gen_ids = []
        self._log_progress()
        self._queue = self._breed(self._rng(_BREED, self._generation))

    def _breed(self, rng: np.random.Generator) -> list[Proto]:
        """As many children as survivors (none with fewer than two), then fresh samples up to
        ``population_size``; each new to the run (see ``Engine._fresh``)."""
        protos: list[Proto] = []
        n_children = len(self._population) if len(self._population) >= 2 else 0
        if n_children:
            choose = self.selection.chooser(self._population, self._fit)
            children = self.variation.offspring(self.space, choose,
                                                lambda i: self._candidates[i].config, rng)

            def child() -> Proto:
                config, parents = next(children)
                return self._proto(config, parents=parents, origin="offspring")
            while len(protos) < n_children:
                protos.append(self._reserve(self._fresh(child, rng)))
        while len(protos) < self.population_size:
            protos.append(self._reserve(self._sample_proto(rng)))
        return protos

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


class NSGA2(GenerationalEngine):
    """Generational NSGA-II (Deb et al. 2002), as in pymoo: (mu + lambda) survival by
    non-dominated rank then crowding distance (DEAP's sorting), binary tournament on
    constrained domination then crowding, SBX crossover and polynomial mutation from the
    space's operators, duplicates eliminated. Constraints use Deb's constrained domination."""

    algorithm = "nsga2"

    def _parts(self) -> tuple[Selection, Survival]:
        return BinaryTournament(), RankAndCrowding()


class GA(GenerationalEngine):
    """Single-objective generational GA with elitism. It optimizes the FIRST objective of the
    space only (others are still archived for the Pareto front); with constraints, feasible
    beats infeasible and smaller violation beats larger. The ``elite`` best of parents and
    children survive, the rest of the population is the best children; parents are chosen by
    tournaments of ``tournament_size``."""

    algorithm = "ga"
    DEFAULTS = {**GenerationalEngine.DEFAULTS, "elite": 2, "tournament_size": 3}

    def _parts(self) -> tuple[Selection, Survival]:
        if len(self._signs) > 1:
            log.info("ga optimizes the first objective %r only", self._signs[0][0])
        elite, size = self.options["elite"], self.options["tournament_size"]
        if not _is_int(elite) or not 0 <= elite <= self.population_size:
            raise UserError(f"must be an int in [0, population_size], got {elite!r}",
                            source="ga", field="elite")
        if not _is_int(size) or size < 1:
            raise UserError(f"must be an int >= 1, got {size!r}", source="ga",
                            field="tournament_size")
        return Tournament(size), Elitist(elite)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
