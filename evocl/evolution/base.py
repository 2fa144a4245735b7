"""The ask/tell engine base: candidate bookkeeping, dedup, failures, archive, state.

Subclasses decide *what* to ask next (``_next_proto``) and react to results (``_on_tell``);
the base class turns proposals into ``Candidate`` records (consecutive ids from 0, training
seed ``derive_seed(seed, id)``, canonical config and hash), keeps the Pareto archive and the
hypervolume history, and serializes everything shared into ``state()``.

Randomness is stateless: every random decision uses a ``numpy.random.Generator`` seeded from
(master seed, purpose, generation or candidate id), so ``state()`` needs no generator state and
an engine rebuilt from it continues exactly.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from evocl.errors import UserError
from evocl.evolution import pareto
from evocl.evolution.parts import RandomSampling, Sampling
from evocl.records import Candidate, Result, derive_seed

STATE_FORMAT = "evocl.engine/1"
#: Constraint violation given to a pruned result (times 1 + the share of its tasks it did not
#: train): larger than any real violation, so Deb's constrained domination ranks a pruned
#: candidate below every full evaluation, feasible or not, and a candidate pruned later above
#: one pruned earlier. See ``Engine._record``.
PRUNED_VIOLATION = 1e300


@dataclass(frozen=True)
class Proto:
    """A configuration chosen but not asked yet (no id until it is asked)."""

    config: dict[str, Any]
    config_hash: str
    parents: tuple[int, ...] = ()
    origin: str = "sample"
    generation: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "config_hash": self.config_hash,
                "parents": list(self.parents), "origin": self.origin,
                "generation": self.generation}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Proto":
        return cls(dict(d["config"]), str(d["config_hash"]), tuple(d["parents"]),
                   str(d["origin"]), int(d["generation"]))


class Engine:
    """Base of every engine. Drive it with ``ask(n)`` and ``tell(candidate, result)``.

    ``options`` accepted by a subclass are listed in its ``DEFAULTS``; unknown ones are a
    UserError. ``max_tries`` bounds the re-breeding of duplicates (then random samples are
    tried as often; a duplicate is asked only as the very last resort).
    """

    algorithm: ClassVar[str] = "base"
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    #: where random configurations come from (first generation, shortfall, duplicates)
    sampling: Sampling = RandomSampling()

    def __init__(self, space: Any, *, population_size: int = 8, seed: int = 0,
                 initial: Sequence[Mapping[str, Any]] | None = None, max_tries: int = 50,
                 **options: Any):
        if not isinstance(population_size, int) or population_size < 2:
            raise UserError(f"must be an int >= 2, got {population_size!r}",
                            source=self.algorithm, field="population_size")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise UserError(f"must be an int, got {seed!r}", source=self.algorithm, field="seed")
        unknown = sorted(set(options) - set(self.DEFAULTS))
        if unknown:
            near = difflib.get_close_matches(unknown[0], list(self.DEFAULTS), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            known = ", ".join(sorted(self.DEFAULTS)) or "none"
            raise UserError(f"unknown option {', '.join(map(repr, unknown))} (known: {known})"
                            f"{hint}", source=self.algorithm, field="algorithm_options")
        self.space = space
        self.population_size = population_size
        self.seed = seed
        self.max_tries = int(max_tries)
        self.options = {**self.DEFAULTS, **options}
        self._signs = pareto.objective_signs(space)
        if not self._signs:
            raise UserError("the space declares no objective", source=self.algorithm,
                            field="objectives")
        self._initial: list[dict[str, Any]] = []
        for i, config in enumerate(initial or []):
            try:
                self._initial.append(space.canonical(space.validate_config(dict(config))))
            except UserError as err:
                raise UserError(f"initial[{i}]: {err}", source=self.algorithm,
                                field="initial") from err
        self._n_initial = len(self._initial)
        self._candidates: dict[int, Candidate] = {}
        self._results: dict[int, Result] = {}
        self._tell_order: list[int] = []
        self._fmin: dict[int, tuple[float, ...]] = {}   # successful results, minimization
        self._cv: dict[int, float] = {}                 # their total constraint violation
        self._pruned: set[int] = set()                  # ids in _fmin with a pruned result
        self._by_hash: dict[str, int] = {}              # asked configs: hash -> first id
        self._pending_hashes: set[str] = set()          # chosen, not asked yet
        self._archive = pareto.Archive()
        self._ref: list[float] | None = None
        self._fixed_ref = self._space_reference()
        if all(f is not None for f in self._fixed_ref):
            self._ref = [float(f) for f in self._fixed_ref]
        self.hv_history: list[tuple[int, float]] = []   # (n_told, hypervolume) per generation
        self._generation = 0
        self._fast_hash: bool | None = None

    # ---------------------------------------------------------------- public read-only view
    @property
    def n_asked(self) -> int:
        return len(self._candidates)

    @property
    def n_told(self) -> int:
        return len(self._results)

    @property
    def n_failed(self) -> int:
        return len(self._results) - len(self._fmin)

    @property
    def n_pruned(self) -> int:
        """Results stopped early by a multi-fidelity scheduler (not failures)."""
        return sum(1 for r in self._results.values() if r.status == "pruned")

    @property
    def generation(self) -> int:
        """Completed generations (generational engines) or told // population_size."""
        return self._generation

    @property
    def in_flight(self) -> list[Candidate]:
        """Asked candidates not told yet, by id (what a resumed runner re-submits)."""
        return [c for i, c in sorted(self._candidates.items()) if i not in self._results]

    def evaluations(self) -> list[tuple[Candidate, Result]]:
        """Every told (candidate, result), in tell order."""
        return [(self._candidates[i], self._results[i]) for i in self._tell_order]

    def pareto_front(self) -> list[tuple[Candidate, Result]]:
        """Non-dominated successful, feasible evaluations seen so far, by candidate id."""
        return [(self._candidates[i], self._results[i]) for i in sorted(self._archive.ids)]

    def reference_point(self) -> list[float] | None:
        """Hypervolume reference in minimization form (maximize objectives negated).

        Objectives with ``ref`` in the space use it. Otherwise it is derived from the
        successful results (worst seen + 10% of the range) once ``population_size`` of them
        exist, then frozen (and kept in ``state()``) so progress stays comparable; before
        that a provisional point from the results so far is returned.
        """
        if self._ref is not None:
            return list(self._ref)
        if len(self._fmin) == len(self._pruned):
            return None
        return self._derive_reference()

    def _derive_reference(self) -> list[float]:
        pts = np.array([f for i, f in self._fmin.items() if i not in self._pruned])
        derived = pareto.derived_reference(pts)
        return [f if f is not None else d for f, d in zip(self._fixed_ref, derived)]

    def hypervolume(self) -> float:
        """Hypervolume of the Pareto archive w.r.t. ``reference_point()`` (0.0 when empty)."""
        ref = self.reference_point()
        if ref is None or not self._archive.ids:
            return 0.0
        return pareto.hypervolume(self._archive.points, ref)

    # ---------------------------------------------------------------- ask / tell
    def ask(self, n: int = 1) -> list[Candidate]:
        """Up to n new candidates (fewer, even none, while a generation waits on tells).

        ``ask(n)`` gives the same candidates as n calls of ``ask(1)`` with no tell between.
        """
        if not isinstance(n, int) or n < 0:
            raise UserError(f"must be an int >= 0, got {n!r}", source="ask", field="n")
        out = []
        for _ in range(n):
            proto = self._next_proto()
            if proto is None:
                break
            out.append(self._issue(proto))
        return out

    def tell(self, candidate: Candidate, result: Result) -> None:
        """Report a result of an asked candidate. Failed, missing or NaN objectives count as
        a failure: recorded, never a parent, and never blocking a generation."""
        cid = candidate.id if isinstance(candidate, Candidate) else int(candidate)
        known = self._candidates.get(cid)
        if known is None:
            raise UserError(f"candidate {cid} was never asked", source="tell", field="candidate")
        if isinstance(candidate, Candidate) and candidate.config_hash != known.config_hash:
            raise UserError(f"candidate {cid} config differs from the one asked",
                            source="tell", field="candidate")
        if cid in self._results:
            raise UserError(f"candidate {cid} was already told", source="tell", field="candidate")
        if not isinstance(result, Result):
            raise UserError(f"expected a Result, got {type(result).__name__}", source="tell",
                            field="result")
        self._record(cid, result)
        self._on_tell(cid)

    # ---------------------------------------------------------------- per-task reports
    #: whether ``report`` decides early stopping (an engine with a pruner of its own)
    prunes: bool = False

    def use_pruner(self, eta: int, min_tasks: int) -> bool:
        """Let the engine decide early stopping itself, with successive halving at rungs of
        ``min_tasks * eta**k`` tasks, where it can; returns whether it does (base: never)."""
        return False

    def report(self, candidate_id: int, report: Mapping[str, Any]) -> bool | None:
        """A running candidate's per-task report (``evocl.evolution.early_stop``): True to
        continue, False to stop it when the engine ``prunes``, else None (base: no opinion)."""
        return None

    def _record(self, cid: int, result: Result) -> None:
        """Keep a told result. A successful one enters the fitness tables (and the archive when
        feasible). A PRUNED one with finite partial objectives enters the fitness tables too,
        with the violation ``pruned_violation``: it ranks below every full evaluation wherever
        an engine selects (constrained domination), so it parents or survives only when too few
        full evaluations exist, and it never enters the archive, the front, the hypervolume or
        the reference point."""
        self._results[cid] = result
        self._tell_order.append(cid)
        fmin = pareto.min_vector(self._signs, result)
        if fmin is not None:
            cv = pareto.violation(self.space.constraints, result)
            self._fmin[cid] = fmin
            self._cv[cid] = cv
            if cv == 0.0:
                self._archive.add(cid, fmin)
            if self._ref is None and len(self._fmin) - len(self._pruned) >= self.population_size:
                self._ref = self._derive_reference()   # frozen from here on
        elif result.status == "pruned":
            partial = pareto.min_vector(self._signs, dataclasses.replace(result, status="ok"))
            if partial is not None:
                self._fmin[cid] = partial
                self._cv[cid] = pruned_violation(result)
                self._pruned.add(cid)

    # ---------------------------------------------------------------- for subclasses
    def _next_proto(self) -> Proto | None:
        raise NotImplementedError

    def _on_tell(self, cid: int) -> None:
        """Hook after a result was recorded (default: a history point per population_size)."""
        if self.n_told % self.population_size == 0:
            self._generation = self.n_told // self.population_size
            self._log_progress()

    def _log_progress(self) -> None:
        self.hv_history.append((self.n_told, self.hypervolume()))

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    def _known(self, config_hash: str) -> bool:
        return config_hash in self._by_hash or config_hash in self._pending_hashes

    def _proto(self, config: Mapping[str, Any], parents: tuple[int, ...] = (),
               origin: str = "sample", generation: int | None = None) -> Proto:
        canon = self.space.canonical(dict(config))
        return Proto(canon, self._hash_canonical(canon), tuple(parents), origin,
                     self._generation if generation is None else generation)

    def _hash_canonical(self, canon: dict[str, Any]) -> str:
        """``space.config_hash`` of an already canonical config, without canonicalizing it a
        second time (half the cost of a proposal) when a probe shows the space hashes the
        compact JSON of the canonical form; otherwise the space's own method."""
        if self._fast_hash is None:
            probe = self.space.canonical(self.space.sample(np.random.default_rng(0)))
            self._fast_hash = _compact_hash(probe) == self.space.config_hash(probe)
        return _compact_hash(canon) if self._fast_hash else self.space.config_hash(canon)

    def _fresh(self, make: Callable[[], Proto], rng: np.random.Generator) -> Proto:
        """A proposal whose config is new: ``make()`` up to max_tries times, then random
        samples as often, then (last resort) the duplicate."""
        proto = None
        for _ in range(self.max_tries):
            proto = make()
            if not self._known(proto.config_hash):
                return proto
        for _ in range(self.max_tries):
            sample = self._proto(self.space.sample(rng), origin="sample")
            if not self._known(sample.config_hash):
                return sample
        return proto if proto is not None else sample

    def _sample_proto(self, rng: np.random.Generator) -> Proto:
        return self._fresh(lambda: self._proto(self.sampling.sample(self.space, rng)), rng)

    def _take_initial(self) -> Proto | None:
        if not self._initial:
            return None
        return self._proto(self._initial.pop(0), origin="initial")

    def _issue(self, proto: Proto) -> Candidate:
        cid = len(self._candidates)
        cand = Candidate(id=cid, config=proto.config, config_hash=proto.config_hash,
                         seed=derive_seed(self.seed, cid), parents=proto.parents,
                         generation=proto.generation, origin=proto.origin)
        self._candidates[cid] = cand
        self._by_hash.setdefault(proto.config_hash, cid)
        self._pending_hashes.discard(proto.config_hash)
        return cand

    def _space_reference(self) -> list[float | None]:
        out: list[float | None] = []
        for obj, (_, sign) in zip(self.space.objectives, self._signs):
            ref = getattr(obj, "ref", None)
            out.append(None if ref is None else sign * float(ref))
        return out

    # ---------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        """JSON-ready state; ``evocl.evolution.from_state(space, state)`` continues exactly."""
        return {
            "format": STATE_FORMAT,
            "algorithm": self.algorithm,
            "seed": self.seed,
            "population_size": self.population_size,
            "max_tries": self.max_tries,
            "options": dict(self.options),
            "space_fingerprint": self.space.fingerprint,
            "initial_remaining": [dict(c) for c in self._initial],
            "n_initial": self._n_initial,
            "candidates": [c.to_dict() for _, c in sorted(self._candidates.items())],
            "told": [[i, self._results[i].to_dict()] for i in self._tell_order],
            "reference_point": self._ref,
            "hv_history": [list(h) for h in self.hv_history],
            "generation": self._generation,
            "extra": self._extra_state(),
        }

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self._initial = [dict(c) for c in state["initial_remaining"]]
        self._n_initial = int(state["n_initial"])
        for d in state["candidates"]:
            cand = Candidate.from_dict(d)
            self._candidates[cand.id] = cand
            self._by_hash.setdefault(cand.config_hash, cand.id)
        for cid, rd in state["told"]:
            self._record(int(cid), Result.from_dict(rd))
        ref = state.get("reference_point")
        self._ref = None if ref is None else [float(v) for v in ref]
        self.hv_history = [(int(n), float(h)) for n, h in state["hv_history"]]
        self._generation = int(state["generation"])
        self._load_extra(state.get("extra", {}))

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        pass


def pruned_violation(result: Result) -> float:
    """``PRUNED_VIOLATION`` x (1 + share of the planned tasks not trained): among pruned
    candidates, the one that trained more tasks wins; with equal tasks, Pareto rank on the
    partial objectives decides."""
    planned = result.metrics.get("tasks_planned")
    trained = result.metrics.get("tasks_trained")
    try:
        missing = 1.0 - float(trained) / float(planned)
    except (TypeError, ValueError, ZeroDivisionError):
        missing = 1.0
    return PRUNED_VIOLATION * (1.0 + min(1.0, max(0.0, missing)))


def _compact_hash(canon: Mapping[str, Any]) -> str:
    text = json.dumps(canon, separators=(",", ":"), sort_keys=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
