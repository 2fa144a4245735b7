"""Names the rest of evocl needs from the CL evaluator without importing torch: the
objectives it reports and its options (one definition: defaults, meaning, validation)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from evocl.errors import UserError

#: objectives every CL evaluation reports (a space's objectives and constraints pick from these)
OBJECTIVES = ("acc", "forgetting", "bwt", "fwt", "plasticity", "trainable_params",
              "wall_time", "peak_memory_mb")
#: reported in addition on generative (causal-LM) streams
LM_OBJECTIVES = ("perplexity",)
ALL_OBJECTIVES = OBJECTIVES + LM_OBJECTIVES


_CHOICES = {"lr_decay": ("linear", "constant"), "precision": ("auto", "fp32", "bf16", "fp16")}


@dataclass(frozen=True)
class Options:
    """Evaluator options (not searched; ``-o KEY=VALUE`` on the command line).

    max_length         tokens per row (truncation)
    max_eval_per_task  validation rows per task for the accuracy matrix (a fixed subset)
    max_test_per_task  test rows per task (None: all)
    eval_batch_size    rows per evaluation batch
    fisher_samples     EWC: samples per task's Fisher (None: scaled with the task's training
                       volume, see `evocl.cl.strategies.ewc.fisher_samples_for`)
    lr_decay           linear | constant after the warm-up, per task
    stream_seed        seed of the stream's splits
    precision          auto (bf16 autocast on a GPU that has it, else fp16; fp32 on the CPU),
                       fp32, bf16 or fp16 (autocast of the forward passes; losses, adapters
                       and optimizer state stay fp32; bf16 on the CPU reproduces the GPU path)
    """

    max_length: int = 64
    max_eval_per_task: int | None = 64
    max_test_per_task: int | None = None
    eval_batch_size: int = 128
    fisher_samples: int | None = None
    lr_decay: str = "linear"
    stream_seed: int = 0
    precision: str = "auto"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "evaluator_options") -> "Options":
        """Validated options; one-line UserError naming the option otherwise."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise UserError(f"unknown option(s) {unknown}; known: {sorted(cls.names())}",
                            source=source, field=unknown[0])
        out: dict[str, Any] = {}
        for name, value in values.items():
            if name in _CHOICES:
                if value not in _CHOICES[name]:
                    raise UserError(f"must be one of {', '.join(_CHOICES[name])}, got {value!r}",
                                    source=source, field=name)
                out[name] = value
                continue
            optional = name in ("max_eval_per_task", "max_test_per_task", "fisher_samples")
            if value is None and optional:
                out[name] = None
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                if not (isinstance(value, float) and value.is_integer()):
                    raise UserError(f"must be an integer{' or null' if optional else ''}, "
                                    f"got {value!r}", source=source, field=name)
                value = int(value)
            low = 0 if name == "stream_seed" else 1
            if value < low:
                raise UserError(f"must be >= {low}, got {value}", source=source, field=name)
            out[name] = int(value)
        return cls(**out)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
