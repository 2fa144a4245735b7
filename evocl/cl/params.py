"""The configuration a candidate gives to `evaluate`: known names, defaults, validation.

Every parameter is optional; an absent one takes its default (so a search space may fix or
omit any of them). Unknown names raise UserError listing KNOWN_PARAMETERS, so the CLI can
check a space up front and a typo never silently becomes a default.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from evocl.errors import UserError

TARGETS = ("attention", "attention_mlp", "all_linear")
LAYERS = ("all", "top_half", "bottom_half")
SCHEDULES = ("uniform", "increasing", "decreasing")
POLICIES = ("reservoir", "class_balanced")


@dataclass(frozen=True)
class CLParams:
    """One candidate's training recipe, defaults filled in (see KNOWN_PARAMETERS)."""

    lora_rank: int = 8
    lora_alpha_ratio: float = 2.0
    lora_dropout: float = 0.0
    lora_targets: str = "attention"
    lora_layers: str = "all"
    lora_rank_schedule: str = "uniform"
    ewc: bool = False
    ewc_lambda: float = 100.0
    ewc_gamma: float = 1.0
    replay: bool = False
    replay_buffer_per_class: int = 10
    replay_ratio: float = 0.25
    replay_policy: str = "reservoir"
    distill: bool = False
    distill_temperature: float = 2.0
    distill_alpha: float = 1.0
    adversarial: bool = False
    adv_epsilon: float = 1.0
    lr: float = 1e-3
    steps_per_task: int = 25
    batch_size: int = 16
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DEFAULTS: dict[str, Any] = CLParams().to_dict()
KNOWN_PARAMETERS: tuple[str, ...] = tuple(DEFAULTS)

# name -> (low, high, low inclusive); None = unbounded on that side
_BOUNDS: dict[str, tuple[float | None, float | None, bool]] = {
    "lora_rank": (1, 1024, True),
    "lora_alpha_ratio": (0.0, None, False),
    "lora_dropout": (0.0, 0.9, True),
    "ewc_lambda": (0.0, None, True),
    "ewc_gamma": (0.0, 1.0, True),
    "replay_buffer_per_class": (1, 100_000, True),
    "replay_ratio": (0.0, 0.95, True),
    "distill_temperature": (0.0, None, False),
    "distill_alpha": (0.0, None, True),
    "adv_epsilon": (0.0, None, True),
    "lr": (0.0, None, False),
    "steps_per_task": (1, 1_000_000, True),
    "batch_size": (1, 65_536, True),
    "weight_decay": (0.0, None, True),
    "warmup_ratio": (0.0, 1.0, True),
}
_CHOICES = {"lora_targets": TARGETS, "lora_layers": LAYERS,
            "lora_rank_schedule": SCHEDULES, "replay_policy": POLICIES}


def resolve(config: Mapping[str, Any], source: str = "config") -> CLParams:
    """Validate ``config`` and fill defaults. Raises UserError (one line) on any bad entry."""
    unknown = sorted(set(config) - set(KNOWN_PARAMETERS))
    if unknown:
        raise UserError(f"unknown parameter(s) {unknown}; known: {list(KNOWN_PARAMETERS)}",
                        source=source, field=unknown[0])
    values: dict[str, Any] = {}
    for f in dataclasses.fields(CLParams):
        if f.name not in config:
            continue
        values[f.name] = _coerce(f.name, config[f.name], type(DEFAULTS[f.name]), source)
    return CLParams(**values)


def _coerce(name: str, value: Any, kind: type, source: str) -> Any:
    def bad(rule: str) -> UserError:
        return UserError(f"{rule}, got {value!r}", source=source, field=name)

    if kind is bool:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        raise bad("must be a boolean")
    if kind is str:
        if value not in _CHOICES[name]:
            raise bad(f"must be one of {list(_CHOICES[name])}")
        return str(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad("must be a number")
    if kind is int:
        if float(value) != int(value):
            raise bad("must be an integer")
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise bad("must be finite")
    low, high, low_inclusive = _BOUNDS[name]
    if low is not None and (value < low or (value == low and not low_inclusive)):
        raise bad(f"must be {'>=' if low_inclusive else '>'} {low}")
    if high is not None and value > high:
        raise bad(f"must be <= {high}")
    return value
