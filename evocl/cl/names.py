"""Names the rest of evocl needs from the CL evaluator without importing torch: the
objectives it reports and its options (one definition: defaults, meaning, validation)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from evocl.errors import StreamError, UserError

#: objectives every CL evaluation reports (a space's objectives and constraints pick from these)
OBJECTIVES = ("acc", "forgetting", "bwt", "fwt", "plasticity", "trainable_params",
              "wall_time", "peak_memory_mb")
#: reported in addition on generative (causal-LM) streams
LM_OBJECTIVES = ("perplexity",)
#: reported on generative streams with a retention set (`evocl.streams.retention`)
RETENTION_OBJECTIVES = ("retention", "retention_drop")
ALL_OBJECTIVES = OBJECTIVES + LM_OBJECTIVES + RETENTION_OBJECTIVES

#: how a generative task is scored (R[i][j] in [0, 1] under each): teacher-forced next-token
#: accuracy, or a greedy answer's exact match (SQuAD normalisation) or ROUGE-L F-measure
TASK_METRICS = ("token_accuracy", "exact_match", "rougeL")
#: a retention set's scores: the task metrics, or ``agreement`` (no reference answers: ROUGE-L
#: of the model's greedy answer against the untrained model's)
RETENTION_METRICS = TASK_METRICS + ("agreement",)
#: the metrics scored on generated answers
GENERATION_METRICS = ("exact_match", "rougeL", "agreement")


def check_metric(value: Any, source: str, field: str,
                 allowed: tuple[str, ...] = TASK_METRICS) -> str:
    """``value`` if it names a metric in ``allowed``, else a one-line StreamError."""
    if not isinstance(value, str) or value not in allowed:
        import difflib

        near = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise StreamError(f"unknown metric {value!r:.40}; expected one of "
                          f"{', '.join(allowed)}{hint}", source=source, field=field)
    return value


_CHOICES: dict[str, tuple[Any, ...]] = {
    "lr_decay": ("linear", "constant"), "precision": ("auto", "fp32", "bf16", "fp16"),
    "task_metric": (None,) + TASK_METRICS, "retention_metric": (None,) + RETENTION_METRICS}
_BOOLS = ("gradient_checkpointing", "group_by_length")
_OPTIONAL_INTS = ("max_eval_per_task", "max_test_per_task", "fisher_samples", "max_new_tokens",
                  "max_retention", "pack_max_rows")


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
    task_metric        causal LMs: every task's metric (token_accuracy, exact_match, rougeL),
                       overriding the stream's (None: the stream's own)
    retention          causal LMs: a retention file (JSONL of prompt/response, messages or
                       prompt-only records) replacing the stream's retention set; "none"
                       drops it (None: the stream's own, or the built-in default)
    retention_metric   the retention set's metric (token_accuracy, exact_match, rougeL,
                       agreement), overriding its own
    max_retention      retention rows scored (a fixed subset; None: all)
    max_new_tokens     cap on the tokens generated per answer (None: 64); the budget of a
                       split is its longest reference in tokens, within the cap
    gradient_checkpointing  recompute activations in the backward pass (less memory, about
                       a third more compute), PEFT-compatible
    group_by_length    training batches of rows of similar length (less padding)
    pack_max_rows      ``--pack``: the most training rows one packed forward holds; the pack's
                       members are cut, in order, into groups of at most that many rows, each
                       group its own forward and backward (the activations of one group at a
                       time instead of all K candidates'; the frozen GEMM is shared within a
                       group). None: every member in one forward
    """

    max_length: int = 64
    max_eval_per_task: int | None = 64
    max_test_per_task: int | None = None
    eval_batch_size: int = 128
    fisher_samples: int | None = None
    lr_decay: str = "linear"
    stream_seed: int = 0
    precision: str = "auto"
    task_metric: str | None = None
    retention: str | None = None
    retention_metric: str | None = None
    max_retention: int | None = 32
    max_new_tokens: int | None = None
    gradient_checkpointing: bool = False
    group_by_length: bool = False
    pack_max_rows: int | None = None

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
                    shown = ", ".join("null" if c is None else c for c in _CHOICES[name])
                    raise UserError(f"must be one of {shown}, got {value!r}",
                                    source=source, field=name)
                out[name] = value
                continue
            if name in _BOOLS:
                if not isinstance(value, bool):
                    raise UserError(f"must be true or false, got {value!r}", source=source,
                                    field=name)
                out[name] = value
                continue
            if name == "retention":
                if value is not None and (not isinstance(value, str) or not value.strip()):
                    raise UserError(f"must be a file path or none, got {value!r}",
                                    source=source, field=name)
                out[name] = value
                continue
            optional = name in _OPTIONAL_INTS
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
