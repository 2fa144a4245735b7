"""Plain records shared by every module: Candidate, Result, RunConfig. JSON in and out.

Frozen dataclasses with ``to_dict`` / ``from_dict``; nothing here imports torch, Ray or DEAP.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from evocl.errors import UserError
from evocl.registry import ENGINES, EXECUTORS, SCHEDULERS

Status = Literal["ok", "failed", "pruned"]


def derive_seed(master_seed: int, *key: object) -> int:
    """A 31-bit seed derived from the master seed and a key (e.g. a candidate id).

    Stable across machines and Python runs (sha256, not ``hash()``), so a candidate's training
    seed depends only on the run's seed and the candidate's identity.
    """
    text = ":".join(str(k) for k in (master_seed, *key))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % (2**31 - 1)


def _check_keys(data: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UserError(f"unknown key(s) {unknown}; expected some of {sorted(allowed)}", field=what)


@dataclass(frozen=True)
class Candidate:
    """One configuration the engine asked to evaluate.

    ``config`` holds the active parameters only, in canonical form; ``config_hash`` is its
    dedup key. ``seed`` is the training seed, derived from the run's seed and ``id``.
    """

    id: int
    config: dict[str, Any]
    config_hash: str
    seed: int
    parents: tuple[int, ...] = ()
    generation: int = 0
    origin: str = "sample"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["parents"] = list(self.parents)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Candidate":
        _check_keys(data, {f.name for f in dataclasses.fields(cls)}, "candidate")
        return cls(
            id=int(data["id"]),
            config=dict(data["config"]),
            config_hash=str(data["config_hash"]),
            seed=int(data["seed"]),
            parents=tuple(int(p) for p in data.get("parents", ())),
            generation=int(data.get("generation", 0)),
            origin=str(data.get("origin", "sample")),
        )


@dataclass(frozen=True)
class Result:
    """The outcome of one evaluation.

    ``objectives`` maps each objective name of the space to its value (as measured, not
    negated: directions live in the space). ``metrics`` holds anything else JSON-ready
    (accuracy matrix, BWT, wall time...). A failed evaluation has ``status="failed"``, the
    reason in ``error``, and no objectives. An evaluation stopped early by a multi-fidelity
    scheduler has ``status="pruned"`` and its partial objectives (over the tasks it saw):
    it is not ``ok``, so it never enters a Pareto front or an export.
    """

    objectives: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    status: Status = "ok"
    error: str | None = None
    wall_time: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def failed(cls, reason: str, *, wall_time: float = 0.0, **metrics: Any) -> "Result":
        return cls(objectives={}, metrics=dict(metrics), status="failed", error=reason,
                   wall_time=wall_time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "objectives": {k: _json_float(v) for k, v in self.objectives.items()},
            "metrics": self.metrics,
            "error": self.error,
            "wall_time": self.wall_time,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Result":
        _check_keys(data, {"status", "objectives", "metrics", "error", "wall_time"}, "result")
        status = data.get("status", "ok")
        if status not in ("ok", "failed", "pruned"):
            raise UserError(f"status must be 'ok', 'failed' or 'pruned', got {status!r}",
                            field="result.status")
        return cls(
            objectives={k: float(v) for k, v in dict(data.get("objectives", {})).items()},
            metrics=dict(data.get("metrics", {})),
            status=status,
            error=data.get("error"),
            wall_time=float(data.get("wall_time", 0.0)),
        )


def _json_float(v: float) -> float | str:
    """JSON has no NaN or infinity; keep them readable and round-trippable as strings."""
    v = float(v)
    if math.isnan(v) or math.isinf(v):
        return str(v)
    return v


_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "dict": (Mapping,),
    "list": (list, tuple)}


def _check_types(obj: Any) -> None:
    """Every field of a dataclass holds a value of its annotated type (``int | None``,
    ``float``, ``dict[...]``...); a bool is not an int. UserError naming the field."""
    for f in dataclasses.fields(obj):
        ann = str(f.type).replace(" ", "")
        optional = "|None" in ann
        base = ann.replace("|None", "").split("[", 1)[0]
        kinds = _TYPES.get(base)
        v = getattr(obj, f.name)
        if kinds is None or (v is None and optional):
            continue
        if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
            want = {"str": "a string", "int": "an int", "float": "a number", "bool": "true or false",
                    "dict": "a mapping", "list": "a list"}[base]
            raise UserError(f"must be {want}{' or null' if optional else ''}, got "
                            f"{type(v).__name__} {v!r:.60}", field=f.name)


@dataclass(frozen=True)
class RunConfig:
    """The frozen description of one search, saved in the run directory as YAML.

    ``initial`` holds configurations asked first (e.g. the space's defaults: for the CL spaces,
    sequential fine-tuning, the baseline every comparison includes).
    ``algorithm`` names an engine of ``evocl.registry.ENGINES``, ``executor`` one of
    ``EXECUTORS`` (or ``auto``); ``algorithm_options`` are the engine's options (its
    ``DEFAULTS``: e.g. ``eta_m``), part of the run's identity. ``early_stop`` names a
    scheduler of ``evocl.registry.SCHEDULERS`` (``none``, ``asha``) and
    ``early_stop_options`` its options (``eta``, ``min_tasks``, ``rungs``), part of the
    run's identity too.
    ``objective`` names what evaluates a candidate: ``"cl"`` (fine-tune ``backbone`` on
    ``stream``) or an import path ``"module:attr"`` of an evaluation target (test problems).
    Budgets combine: the search stops at the first one reached.
    """

    space: str
    run_dir: str
    stream: str = "default"
    backbone: str = "minilm"
    objective: str = "cl"
    algorithm: str = "sa-nsga2"
    algorithm_options: dict[str, Any] = field(default_factory=dict)
    early_stop: str = "none"
    early_stop_options: dict[str, Any] = field(default_factory=dict)
    population: int = 8
    generations: int | None = None
    budget: int | None = None
    max_wall_time: float | None = None
    stagnation: int | None = None
    seed: int = 0
    workers: int = 1
    executor: str = "auto"
    cpus_per_eval: float = 1.0
    gpus_per_eval: float | str = 0.0  # or "auto": packed by measured memory
    pack: int = 1  # candidates trained together per worker on one backbone (evocl.cl.pack)
    ray_address: str | None = None
    ray_dashboard: bool = False
    device: str = "auto"
    eval_timeout: float | None = None
    max_retries: int = 1
    storage: str | None = None
    fitness_tasks: int | None = None
    snapshot_every: int = 0
    evaluator_options: dict[str, Any] = field(default_factory=dict)
    initial: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_types(self)
        ENGINES.check(self.algorithm)
        if not isinstance(self.algorithm_options, Mapping):
            raise UserError(f"must be a mapping of option names to values, got "
                            f"{self.algorithm_options!r}", field="algorithm_options")
        SCHEDULERS.check(self.early_stop)
        if not isinstance(self.early_stop_options, Mapping):
            raise UserError(f"must be a mapping of option names to values, got "
                            f"{self.early_stop_options!r}", field="early_stop_options")
        if self.population < 2:
            raise UserError(f"must be >= 2, got {self.population}", field="population")
        if self.workers < 1:
            raise UserError(f"must be >= 1, got {self.workers}", field="workers")
        if self.pack < 1:
            raise UserError(f"must be >= 1, got {self.pack}", field="pack")
        if self.executor != "auto" and self.executor not in EXECUTORS:
            raise UserError(f"must be auto or one of {', '.join(EXECUTORS)}, got "
                            f"{self.executor!r}", field="executor")
        if not (math.isfinite(self.cpus_per_eval) and self.cpus_per_eval > 0):
            raise UserError(f"must be a number > 0, got {self.cpus_per_eval!r}",
                            field="cpus_per_eval")
        g = self.gpus_per_eval
        if g != "auto" and (isinstance(g, (str, bool)) or not isinstance(g, (int, float))
                            or not (math.isfinite(g) and 0 <= g <= 1)):
            raise UserError(f"must be auto or a number in [0, 1] (an evaluation uses at most "
                            f"one GPU; fractions share one), got {g!r}", field="gpus_per_eval")
        for name in ("max_wall_time", "eval_timeout"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise UserError(f"must be a number of seconds > 0, got {v!r}", field=name)
        if not 0 <= self.seed < 2**63:
            raise UserError(f"must be an int in [0, 2**63), got {self.seed!r}", field="seed")
        for name, low in (("stagnation", 1), ("fitness_tasks", 1), ("max_retries", 0),
                          ("snapshot_every", 0)):
            v = getattr(self, name)
            if v is not None and v < low:
                raise UserError(f"must be >= {low}, got {v}", field=name)
        if self.generations is None and self.budget is None and self.max_wall_time is None:
            raise UserError("give at least one of generations, budget or max_wall_time",
                            field="budget")
        for name in ("generations", "budget"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise UserError(f"must be >= 1, got {v}", field=name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        _check_keys(data, {f.name for f in dataclasses.fields(cls)}, "run config")
        return cls(**dict(data))

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)
