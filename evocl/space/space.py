"""SearchSpace: the immutable description of what the search may choose, and the work on
configurations that only needs the description: sampling, activity of conditional
parameters, validation, canonical form and hash, genome encode/decode.

A configuration is a plain dict ``name -> value`` holding the active parameters.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from evocl.errors import SpaceError
from evocl.space.params import Constraint, Objective, Param, round_sig, same_choice
from evocl.space.coerce import _py, coerce_value
from evocl.space.validate import _suggest, build

INACTIVE_GENE = 0.5  # what encode() writes for a parameter that is inactive in the config
_CONFIG = "config"   # the "source" of errors about configurations


def check_rng(rng: Any) -> None:
    """Randomness must come from a seeded Generator passed in (never global state)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def canonical_value(param: Param, value: Any) -> Any:
    """A coerced value in canonical form: floats rounded to 10 significant digits (and kept
    inside the bounds), everything else as is."""
    if param.type == "float":
        return min(max(round_sig(value), float(param.low)), float(param.high))
    return value


@dataclass(frozen=True)
class _Spec:
    """Numbers precomputed once per parameter for genes, sampling and operators.

    ``zlow``/``zhigh`` bound the internal numeric value ``z`` used by the operators: the value
    itself for linear float/int, its natural log for log float/int; categorical/bool have none.
    """

    index: int
    param: Param
    kind: str
    zlow: float = 0.0
    zhigh: float = 1.0
    n: int = 0  # number of categories (categorical) or grid points (int)
    flo: float = 0.0  # float bounds of the value (float/int), for fast checks
    fhi: float = 0.0


def _spec(i: int, p: Param) -> _Spec:
    if p.type in ("float", "int"):
        lo, hi = (math.log(p.low), math.log(p.high)) if p.log else (float(p.low), float(p.high))
        n = (p.high - p.low) // (p.step or 1) + 1 if p.type == "int" else 0
        return _Spec(i, p, p.type, lo, hi, n, float(p.low), float(p.high))
    if p.type == "categorical":
        return _Spec(i, p, "categorical", n=len(p.choices or ()))
    return _Spec(i, p, "bool", n=2)


@dataclass(frozen=True)
class SearchSpace:
    """Parameters (in dependency order), objectives and constraints of a search.

    Build it with ``load``/``loads`` (YAML) or ``SearchSpace.from_dict`` (same shape as the
    YAML); direct construction is validated the same way.
    """

    parameters: tuple[Param, ...]
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()
    name: str | None = None
    description: str | None = None
    source: str = field(default="<dict>", compare=False)
    _specs: tuple[_Spec, ...] = field(init=False, repr=False, compare=False)
    _by_name: Mapping[str, _Spec] = field(init=False, repr=False, compare=False)
    _fingerprint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts, problems = build(self._raw_dict(), self.source)
        if problems:
            err = problems[0]
            err.problems = [str(p) for p in problems]  # type: ignore[attr-defined]
            raise err
        object.__setattr__(self, "parameters", parts["parameters"])
        object.__setattr__(self, "objectives", parts["objectives"])
        object.__setattr__(self, "constraints", parts["constraints"])
        specs = tuple(_spec(i, p) for i, p in enumerate(self.parameters))
        object.__setattr__(self, "_specs", specs)
        object.__setattr__(self, "_by_name", {s.param.name: s for s in specs})
        object.__setattr__(self, "_fingerprint", self._compute_fingerprint())

    # -- description ----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Parameter names in parameter (dependency) order; also the genome's gene order."""
        return [p.name for p in self.parameters]

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    def param(self, name: str) -> Param:
        try:
            return self._by_name[name].param
        except KeyError:
            raise SpaceError(f"unknown parameter {name!r}", source=_CONFIG, field=name) from None

    def __len__(self) -> int:
        return len(self.parameters)

    def _raw_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.name is not None:
            d["name"] = self.name
        if self.description is not None:
            d["description"] = self.description
        d["parameters"] = {p.name: p.to_dict() for p in self.parameters}
        d["objectives"] = {o.name: o.to_dict() for o in self.objectives}
        d["constraints"] = {c.name: c.to_dict() for c in self.constraints}
        return d

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready full description, same shape as the YAML (``from_dict`` reads it back)."""
        return self._raw_dict()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> "SearchSpace":
        """Build and validate a space from the YAML's shape; raises SpaceError (with
        ``.problems`` listing every problem)."""
        parts, problems = build(data, source)
        if problems:
            err = problems[0]
            err.problems = [str(p) for p in problems]  # type: ignore[attr-defined]
            raise err
        return cls(source=source, **parts)

    @property
    def fingerprint(self) -> str:
        """Hash of parameters, objectives and constraints (not name/description): two spaces
        with the same fingerprint accept and hash configurations identically."""
        return self._fingerprint

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def _compute_fingerprint(self) -> str:
        d = self._raw_dict()
        d.pop("name", None)
        d.pop("description", None)
        text = json.dumps(d, separators=(",", ":"), sort_keys=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- activity -------------------------------------------------------------------------
    def _matches(self, config: Mapping[str, Any], active: set[str], p: Param) -> bool:
        for parent, allowed in (p.when or {}).items():
            if parent not in active or parent not in config:
                return False
            v = _py(config[parent])
            if not any(same_choice(a, v) for a in allowed):
                return False
        return True

    def active_names(self, config: Mapping[str, Any]) -> list[str]:
        """Names of the parameters active under ``config``, in parameter order."""
        active: set[str] = set()
        seen: dict[str, Any] = {}  # active values, missing ones at their default (as canonical)
        for p in self.parameters:
            if not p.when or self._matches(seen, active, p):
                active.add(p.name)
                v = config.get(p.name, p.default)
                if v is not None:
                    seen[p.name] = v
        return [p.name for p in self.parameters if p.name in active]

    def is_active(self, name: str, config: Mapping[str, Any]) -> bool:
        """Whether ``name`` is active: all its parents active and holding an allowed value."""
        self.param(name)
        return name in self.active_names(config)

    # -- validation and canonical form ----------------------------------------------------
    def _resolve(self, config: Mapping[str, Any], *, strict: bool, rounded: bool) -> dict[str, Any]:
        if not isinstance(config, Mapping):
            raise SpaceError(f"a configuration must be a mapping, got {type(config).__name__}",
                             source=_CONFIG)
        for k in config:
            if k not in self._by_name:
                raise SpaceError(f"unknown parameter {k!r}{_suggest(k, self.names)}",
                                 source=_CONFIG, field=str(k))
        out: dict[str, Any] = {}
        active: set[str] = set()
        for s in self._specs:
            p = s.param
            if p.when and not self._matches(out, active, p):
                if strict and p.name in config:
                    raise SpaceError(f"given but inactive (active only when "
                                     f"{p.describe_condition()})", source=_CONFIG, field=p.name)
                continue
            active.add(p.name)
            if p.name in config:
                v = config[p.name]
                t = type(v)  # fast paths for values already of the right builtin type
                if not ((t is float and s.kind == "float" and s.flo <= v <= s.fhi)
                        or (t is bool and s.kind == "bool")):
                    try:
                        v = coerce_value(p, v)
                    except SpaceError as e:
                        raise SpaceError(e.rule, source=_CONFIG, field=p.name) from None
            elif p.default is not None:
                v = p.default
            else:
                raise SpaceError("missing (active, and the space gives no default)",
                                 source=_CONFIG, field=p.name)
            out[p.name] = canonical_value(p, v) if rounded else v
        return out

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Check a configuration strictly (unknown names, out of bounds, wrong types, inactive
        parameters given, active ones missing without default); return its canonical form."""
        return self._resolve(config, strict=True, rounded=True)

    def canonical(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The configuration's identity: inactive parameters dropped, missing active ones
        given their default, keys in parameter order, Python builtin types, floats rounded
        to 10 significant digits. Raises SpaceError for unknown names or bad values."""
        return self._resolve(config, strict=False, rounded=True)

    def config_hash(self, config: Mapping[str, Any]) -> str:
        """First 16 hex digits of sha256 over the canonical form's compact JSON."""
        text = json.dumps(self.canonical(config), separators=(",", ":"), sort_keys=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def default_config(self) -> dict[str, Any]:
        """Every active parameter at its default, or else its midpoint (log midpoint for log
        scales, first choice, false): a deterministic starting point."""
        cfg: dict[str, Any] = {}
        for s in self._specs:
            p = s.param
            if p.when and not self._matches(cfg, set(cfg), p):
                continue
            if p.default is not None:
                cfg[p.name] = p.default
            elif s.kind in ("float", "int"):
                cfg[p.name] = self._from_z(s, 0.5 * (s.zlow + s.zhigh))
            else:
                cfg[p.name] = p.choices[0] if s.kind == "categorical" else False
        return self.canonical(cfg)

    # -- sampling -------------------------------------------------------------------------
    def _from_z(self, s: _Spec, z: float) -> Any:
        """Internal numeric value -> parameter value (exp for log, grid for int), in bounds."""
        p = s.param
        x = math.exp(z) if p.log else z
        if s.kind == "int":
            step = p.step or 1
            x = p.low + int(round((x - p.low) / step)) * step
            return int(min(max(x, p.low), p.high))
        return min(max(float(x), float(p.low)), float(p.high))

    def sample_value(self, name: str, rng: np.random.Generator) -> Any:
        """One value of parameter ``name``, uniform (log-uniform for log scales; uniform over
        the grid for int)."""
        s = self._by_name[name]
        p = s.param
        if s.kind == "float":
            return self._from_z(s, float(rng.uniform(s.zlow, s.zhigh)))
        if s.kind == "int":
            if p.log:  # each integer k owns [k - 0.5, k + 0.5) in log space (as Optuna does)
                z = float(rng.uniform(math.log(p.low - 0.5), math.log(p.high + 0.5)))
                return int(min(max(round(math.exp(z)), p.low), p.high))
            return int(p.low + int(rng.integers(s.n)) * (p.step or 1))
        if s.kind == "categorical":
            return p.choices[int(rng.integers(s.n))]
        return bool(rng.random() < 0.5)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """A random configuration (active parameters only, canonical form)."""
        check_rng(rng)
        cfg: dict[str, Any] = {}
        active: set[str] = set()
        for p in self.parameters:
            if p.when and not self._matches(cfg, active, p):
                continue
            active.add(p.name)
            cfg[p.name] = canonical_value(p, self.sample_value(p.name, rng))
        return cfg

    # -- genome ---------------------------------------------------------------------------
    def encode(self, config: Mapping[str, Any],
               rng: np.random.Generator | None = None) -> list[float]:
        """One gene in [0, 1] per parameter (all of them, in parameter order).

        float/int: position in [low, high] (in log space for log scales); categorical: the
        centre of the choice's bin, (i + 0.5) / k; bool: 0.25 (false) / 0.75 (true).
        An inactive parameter gets ``INACTIVE_GENE`` (0.5), or a uniform draw from ``rng``
        when one is given (so a later activation starts from a random value). Floats are
        not rounded, so an engine working on genomes loses no precision.
        """
        cfg = self._resolve(config, strict=False, rounded=False)
        genome = []
        for s in self._specs:
            name = s.param.name
            if name not in cfg:
                genome.append(INACTIVE_GENE if rng is None else float(rng.random()))
                continue
            v = cfg[name]
            if s.kind in ("float", "int"):
                z = math.log(v) if s.param.log else float(v)
                genome.append(min(max((z - s.zlow) / (s.zhigh - s.zlow), 0.0), 1.0))
            elif s.kind == "categorical":
                i = next(i for i, c in enumerate(s.param.choices) if c is v or same_choice(c, v))
                genome.append((i + 0.5) / s.n)
            else:
                genome.append(0.75 if v else 0.25)
        return genome

    def decode(self, genome: Sequence[float]) -> dict[str, Any]:
        """The canonical configuration of a genome (genes clipped to [0, 1]; genes of
        parameters inactive under the decoded parents are ignored)."""
        if len(genome) != len(self._specs):
            raise SpaceError(f"genome has {len(genome)} genes, the space has "
                             f"{len(self._specs)} parameters", source=_CONFIG, field="genome")
        cfg: dict[str, Any] = {}
        active: set[str] = set()
        for s in self._specs:
            p = s.param
            if p.when and not self._matches(cfg, active, p):
                continue
            active.add(p.name)
            u = min(max(float(genome[s.index]), 0.0), 1.0)
            if s.kind in ("float", "int"):
                v = self._from_z(s, s.zlow + u * (s.zhigh - s.zlow))
            elif s.kind == "categorical":
                v = p.choices[min(int(u * s.n), s.n - 1)]
            else:
                v = u >= 0.5
            cfg[p.name] = canonical_value(p, v)
        return cfg

