"""CLEvaluator: the evaluation target the executors build once per worker
("evocl.cl:CLEvaluator"); it loads the backbone and the tokenized stream once and never
raises from __call__ (any failure becomes Result.failed(reason))."""

from __future__ import annotations

import time
import traceback
from typing import Any, Callable

from evocl.cl.backbone import Backbone, load_backbone
from evocl.cl.evaluate import evaluate, prepare, resolve_device
from evocl.errors import EvaluationError, UserError
from evocl.records import Candidate, Result

OPTIONS = {"max_eval_per_task": 64, "max_test_per_task": None, "eval_batch_size": 128,
           "fisher_samples": None, "lr_decay": "linear"}


#: What each evaluator option (``-o KEY=VALUE``) accepts: (kind, minimum or choices).
OPTION_RULES: dict[str, tuple[str, Any]] = {
    "max_length": ("int", 4), "stream_seed": ("int", 0), "max_eval_per_task": ("int?", 1),
    "max_test_per_task": ("int?", 1), "eval_batch_size": ("int", 1),
    "fisher_samples": ("int?", 1), "lr_decay": ("choice", ("linear", "constant"))}
#: Options that repeat a search flag (``-o stream=...`` overrides ``--stream``).
FLAG_OPTIONS = ("stream", "backbone", "device", "fitness_tasks")


def check_options(options: Any) -> None:
    """Refuse an unknown evaluator option or a value of the wrong type or range up front:
    UserError naming ``-o KEY`` (else every evaluation of the search would fail)."""
    for key, value in dict(options).items():
        rule = OPTION_RULES.get(key)
        if rule is None:
            if key in FLAG_OPTIONS or key in OPTIONS:
                continue
            known = sorted(set(OPTION_RULES) | set(OPTIONS))
            raise UserError(f"unknown evaluator option; known: {', '.join(known)}",
                            field=f"-o {key}")
        kind, arg = rule
        if kind == "choice":
            if value not in arg:
                raise UserError(f"must be one of {', '.join(arg)}, got {value!r:.60}",
                                field=f"-o {key}")
            continue
        if value is None and kind == "int?":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < arg:
            raise UserError(f"must be an int >= {arg}{' or null' if kind == 'int?' else ''}, "
                            f"got {value!r:.60}", field=f"-o {key}")


class CLEvaluator:
    """Build once, call per candidate: ``CLEvaluator(...)(candidate) -> Result``.

    ``stream``: a built-in name, a spec path or a streams.Stream; ``backbone``: "minilm",
    "tiny", a checkpoint directory or a Backbone. Options (defaults in OPTIONS):
    max_eval_per_task (validation rows per task used for the accuracy matrix),
    max_test_per_task, eval_batch_size, fisher_samples (EWC; None = scaled with the task's
    training volume, see train.fisher_samples_for), lr_decay (linear|constant).
    """

    def __init__(self, stream: Any = "default", backbone: Any = "minilm", device: str = "auto",
                 fitness_tasks: int | None = None, max_length: int = 64, stream_seed: int = 0,
                 **options: Any):
        check_options({"max_length": max_length, "stream_seed": stream_seed, **options})
        self.options = {**OPTIONS, **options}
        self.device = str(resolve_device(device))
        self.fitness_tasks = fitness_tasks
        self.max_length = int(max_length)
        self.backbone = backbone if isinstance(backbone, Backbone) else load_backbone(backbone)
        if isinstance(stream, str):
            from evocl.streams import load_stream

            stream = load_stream(stream, seed=stream_seed)
        self.stream = stream
        self.data = prepare(stream, self.backbone, self.max_length,
                            self.options["max_eval_per_task"], self.options["max_test_per_task"])
        if fitness_tasks is not None and not 1 <= int(fitness_tasks) <= self.data.n_tasks:
            raise UserError(f"must be between 1 and {self.data.n_tasks}, got {fitness_tasks}",
                            field="fitness_tasks")

    def __call__(self, candidate: Candidate,
                 on_task_end: Callable[[dict[str, Any]], bool] | None = None) -> Result:
        """Evaluate one candidate; ``on_task_end(report) -> bool`` as in `evaluate`."""
        start = time.perf_counter()
        try:
            return evaluate(candidate.config, self.data, self.backbone, candidate.seed,
                            device=self.device, fitness_tasks=self.fitness_tasks,
                            max_length=self.max_length,
                            max_eval_per_task=self.options["max_eval_per_task"],
                            max_test_per_task=self.options["max_test_per_task"],
                            eval_batch_size=self.options["eval_batch_size"],
                            fisher_samples=self.options["fisher_samples"],
                            lr_decay=self.options["lr_decay"], on_task_end=on_task_end)
        except BaseException as exc:  # noqa: BLE001 - a worker must never die on a candidate
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return Result.failed(_reason(exc), wall_time=time.perf_counter() - start,
                                 traceback=traceback.format_exc(limit=-3).splitlines()[-6:])


def _reason(exc: BaseException) -> str:
    first = (str(exc).splitlines() or [""])[0][:300]
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in first.lower():
        return f"out of memory: {first}"
    if isinstance(exc, EvaluationError):
        return exc.reason
    if isinstance(exc, UserError):
        return f"bad configuration: {first}"
    return f"{type(exc).__name__}: {first}"
