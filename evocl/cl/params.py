"""The configuration a candidate gives to `evaluate`: known names, defaults, validation.

``CLParams`` is assembled from one source: the adapter and optimisation parameters below plus
every registered strategy's ``PARAMS`` (`evocl.cl.strategies`). Every parameter is optional;
an absent one takes its default (so a search space may fix or omit any of them). Unknown names
raise UserError listing KNOWN_PARAMETERS, so the CLI can check a space up front and a typo
never silently becomes a default. Importing this module does not import torch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from evocl.cl.strategies import Param, strategy_classes
from evocl.errors import UserError

TARGETS = ("attention", "attention_mlp", "all_linear")
LAYERS = ("all", "top_half", "bottom_half")
SCHEDULES = ("uniform", "increasing", "decreasing")

#: LoRA adapter placement and size (`evocl.cl.model.lora_config`)
ADAPTER = (
    Param("lora_rank", 8, low=1, high=1024, help="LoRA rank r of every adapted matrix"),
    Param("lora_alpha_ratio", 2.0, low=0.0, low_open=True,
          help="LoRA alpha as a multiple of the rank (alpha = ratio * r)"),
    Param("lora_dropout", 0.1, low=0.0, high=0.9, help="dropout on the LoRA input"),
    Param("lora_targets", "attention", choices=TARGETS, help="which linear layers get adapters"),
    Param("lora_layers", "all", choices=LAYERS, help="which layers get adapters"),
    Param("lora_rank_schedule", "uniform", choices=SCHEDULES,
          help="how the rank varies with depth (PEFT rank_pattern)"),
)
#: the training loop's own settings (`evocl.cl.train`)
OPTIMISATION = (
    Param("lr", 5e-4, low=0.0, low_open=True, help="peak learning rate (AdamW)"),
    Param("steps_per_task", 20, low=1, high=1_000_000, help="optimizer steps per task"),
    Param("batch_size", 16, low=1, high=65_536, help="rows per step, replayed ones included"),
    Param("weight_decay", 0.0, low=0.0, help="AdamW weight decay on matrices"),
    Param("warmup_ratio", 0.0, low=0.0, high=1.0,
          help="share of each task's steps with a linear warm-up"),
)

#: preference tasks (`evocl.cl.dpo`): used only by a stream with preference records
PREFERENCE = (
    Param("dpo_beta", 0.1, low=0.0, high=100.0, low_open=True,
          help="DPO's beta: how far a preference task may move from its reference"),
)


def _all_params() -> tuple[Param, ...]:
    params = list(ADAPTER)
    for cls in strategy_classes():
        params += list(cls.PARAMS)
    params += list(OPTIMISATION) + list(PREFERENCE)
    names = [p.name for p in params]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RuntimeError(f"parameters declared twice: {dup}")
    return tuple(params)


PARAMS: dict[str, Param] = {p.name: p for p in _all_params()}


def _to_dict(self: Any) -> dict[str, Any]:
    return dataclasses.asdict(self)


CLParams = dataclasses.make_dataclass(
    "CLParams", [(p.name, p.kind, dataclasses.field(default=p.default)) for p in PARAMS.values()],
    frozen=True, namespace={"to_dict": _to_dict, "__doc__": (
        "One candidate's training recipe, defaults filled in (fields: KNOWN_PARAMETERS, "
        "assembled from the adapter, the strategies and the optimisation settings).")})
CLParams.__module__ = __name__

DEFAULTS: dict[str, Any] = {n: p.default for n, p in PARAMS.items()}
KNOWN_PARAMETERS: tuple[str, ...] = tuple(PARAMS)


def resolve(config: Mapping[str, Any], source: str = "config") -> Any:
    """Validate ``config`` and fill defaults: a CLParams. Raises UserError (one line) on any
    bad entry."""
    unknown = sorted(set(config) - set(KNOWN_PARAMETERS))
    if unknown:
        raise UserError(f"unknown parameter(s) {unknown}; known: {list(KNOWN_PARAMETERS)}",
                        source=source, field=unknown[0])
    return CLParams(**{n: _coerce(PARAMS[n], v, source) for n, v in config.items()})


def _coerce(p: Param, value: Any, source: str) -> Any:
    def bad(rule: str) -> UserError:
        return UserError(f"{rule}, got {value!r}", source=source, field=p.name)

    kind = p.kind
    if kind is bool:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        raise bad("must be a boolean")
    if kind is str:
        if value not in p.choices:
            raise bad(f"must be one of {list(p.choices)}")
        return str(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad("must be a number")
    if kind is int:
        if not math.isfinite(float(value)) or float(value) != int(value):
            raise bad("must be an integer")
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise bad("must be finite")
    if p.low is not None and (value < p.low or (value == p.low and p.low_open)):
        raise bad(f"must be {'>' if p.low_open else '>='} {p.low:g}")
    if p.high is not None and value > p.high:
        raise bad(f"must be <= {p.high:g}")
    return value
