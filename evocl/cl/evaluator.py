"""CLEvaluator: the evaluation target the executors build once per worker
("evocl.cl:CLEvaluator"); it loads the backbone and the tokenized stream once and never
raises from __call__ (any failure becomes Result.failed(reason))."""

from __future__ import annotations

import time
import traceback
from typing import Any, Callable

from evocl.cl.backbone import Backbone, load_backbone
from evocl.cl.evaluation import evaluate, prepare, resolve_device
from evocl.cl.names import Options
from evocl.errors import UserError, failure_reason
from evocl.records import Candidate, Result


class CLEvaluator:
    """Build once, call per candidate: ``CLEvaluator(...)(candidate) -> Result``.

    ``stream``: a built-in name, a spec path or a streams.Stream; ``backbone``: a registered
    name ("minilm", "tiny", ...), a checkpoint directory or a Backbone. ``options`` are the
    evaluator options of `evocl.cl.names.Options` (max_length, max_eval_per_task, ...).
    ``low_fidelity``: the fraction of each task's steps of the cheap first pass that early
    stopping's lowest rung sees (`evaluate`; set by the runner from the scheduler's options).
    """

    def __init__(self, stream: Any = "default", backbone: Any = "minilm", device: str = "auto",
                 fitness_tasks: int | None = None, low_fidelity: float | None = None,
                 **options: Any):
        if low_fidelity is not None:
            from evocl.evolution.early_stop import check_fraction
            check_fraction(low_fidelity)
        self.low_fidelity = low_fidelity
        self.options = Options.from_mapping(options)
        self.device = str(resolve_device(device))
        self.fitness_tasks = fitness_tasks
        self.backbone = backbone if isinstance(backbone, Backbone) else load_backbone(backbone)
        if isinstance(stream, str):
            from evocl.streams import load_stream

            stream = load_stream(stream, seed=self.options.stream_seed)
        self.stream = stream
        self.data = prepare(stream, self.backbone, self.options.max_length,
                            self.options.max_eval_per_task, self.options.max_test_per_task,
                            options=self.options)
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
                            options=self.options, on_task_end=on_task_end,
                            low_fidelity=self.low_fidelity)
        except BaseException as exc:  # noqa: BLE001 - a worker must never die on a candidate
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return Result.failed(_reason(exc), wall_time=time.perf_counter() - start,
                                 traceback=traceback.format_exc(limit=-3).splitlines()[-6:])


    def pack(self, size: int) -> Any:
        """A `evocl.cl.pack.Pack` of ``size`` over this worker's backbone and stream."""
        from evocl.cl.pack import Pack

        return Pack(self.backbone, self.data, size, self.device, self.fitness_tasks,
                    self.options)


_reason = failure_reason
