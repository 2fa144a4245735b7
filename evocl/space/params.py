"""The records of a search space: Param, Objective, Constraint (frozen, JSON-ready).

A ``Param`` only describes; the numeric work (sampling, coercion, genes) lives in
``space.py`` and ``operators.py`` with bounds precomputed once per space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

PARAM_TYPES = ("float", "int", "categorical", "bool")
DIRECTIONS = ("maximize", "minimize")


def round_sig(x: float, digits: int = 10) -> float:
    """``x`` rounded to ``digits`` significant digits (0.1 + 0.2 -> 0.3); stable across machines."""
    if x == 0.0 or not math.isfinite(x):
        return float(x) + 0.0  # also turns -0.0 into 0.0
    return float(f"{x:.{digits}g}") + 0.0


def fmt_value(v: Any) -> str:
    """A value as a user writes it in YAML (true/false, 1e-05, attention)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def same_choice(a: Any, b: Any) -> bool:
    """Equality for categorical values: bools only equal bools, numbers compare by value
    (after rounding to 10 significant digits, so float noise matches), strings exactly."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or round_sig(float(a)) == round_sig(float(b))
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Param:
    """One parameter of the space.

    ``when`` maps each parent parameter name to the tuple of parent values that make this
    parameter active (all parents must be active and match); ``None`` means always active.
    ``low``/``high``/``log`` apply to float and int, ``step`` to int (1 unless given),
    ``choices`` to categorical; the rest are None.
    """

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: int | None = None
    choices: tuple[Any, ...] | None = None
    when: dict[str, tuple[Any, ...]] | None = None
    default: Any = None
    description: str | None = None

    def __post_init__(self) -> None:
        if self.when is not None:  # normalize: every condition is a tuple of allowed values
            object.__setattr__(self, "when", {
                k: tuple(v) if isinstance(v, (list, tuple)) else (v,)
                for k, v in dict(self.when).items()} or None)
        if self.choices is not None and not isinstance(self.choices, tuple):
            object.__setattr__(self, "choices", tuple(self.choices))

    def __hash__(self) -> int:  # `when` is a dict; hash what identifies the parameter
        return hash((self.name, self.type, self.low, self.high, self.log, self.step, self.choices))

    @property
    def conditional(self) -> bool:
        return bool(self.when)

    def describe_range(self) -> str:
        """The domain in one short string: "[1e-05, 0.01] log", "{2, 4, 8}", "[10, 200] step 10"."""
        if self.type == "bool":
            return "{false, true}"
        if self.type == "categorical":
            return "{" + ", ".join(fmt_value(c) for c in self.choices or ()) + "}"
        text = f"[{fmt_value(self.low)}, {fmt_value(self.high)}]"
        if self.type == "int" and self.step not in (None, 1):
            text += f" step {self.step}"
        if self.log:
            text += " log"
        return text

    def describe_condition(self) -> str:
        """When the parameter is active: "ewc = true", "a in {x, y} and b = 2", or "" (always)."""
        if not self.when:
            return ""
        parts = []
        for name, values in self.when.items():
            if len(values) == 1:
                parts.append(f"{name} = {fmt_value(values[0])}")
            else:
                parts.append(f"{name} in {{{', '.join(fmt_value(v) for v in values)}}}")
        return " and ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The YAML/JSON form (what ``SearchSpace.from_dict`` reads back)."""
        d: dict[str, Any] = {"type": self.type}
        if self.type in ("float", "int"):
            d["low"], d["high"] = self.low, self.high
            if self.log:
                d["log"] = True
            if self.type == "int" and self.step not in (None, 1):
                d["step"] = self.step
        elif self.type == "categorical":
            d["choices"] = list(self.choices or ())
        if self.when:
            d["when"] = {k: (v[0] if len(v) == 1 else list(v)) for k, v in self.when.items()}
        if self.default is not None:
            d["default"] = self.default
        if self.description:
            d["description"] = self.description
        return d


@dataclass(frozen=True)
class Objective:
    """An objective measured on each candidate; ``ref`` is the hypervolume reference value
    (None: the engine derives one)."""

    name: str
    direction: str
    ref: float | None = None

    @property
    def sign(self) -> float:
        """+1 for minimize, -1 for maximize: multiply to get a value to minimize."""
        return 1.0 if self.direction == "minimize" else -1.0

    def to_dict(self) -> dict[str, Any]:
        return {"direction": self.direction, "ref": self.ref}


@dataclass(frozen=True)
class Constraint:
    """A bound on a measured value (an objective or a metric): feasible iff min <= v <= max.
    The violation and the rule for missing or non-finite values live in
    ``evocl.evolution.pareto`` (one feasibility rule for engines, storage and report)."""

    name: str
    max: float | None = None
    min: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.max is not None:
            d["max"] = self.max
        if self.min is not None:
            d["min"] = self.min
        return d
