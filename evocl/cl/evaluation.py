"""`evaluate(config, stream, backbone, seed)`: what one candidate of a search costs.

Pure: the torch RNG is forked (restored afterwards) and seeded from ``seed``, numpy draws come
from Generators seeded from ``seed``, and the model is a deep copy of the backbone's pristine
weights. On CPU the same inputs (and thread count) give the same metrics.

fitness_tasks=k (A-GEM protocol, Chaudhry et al. 2019): train and score on tasks 0..k-1 only;
every metric, the accuracy matrix and test_acc then cover those k tasks (the rest of the
stream is never touched, which is what makes the search cheaper). Evaluate a chosen
configuration again with fitness_tasks=None for full-stream numbers.
"""

from __future__ import annotations

import contextlib
import math
import resource
import time
from collections import OrderedDict
from typing import Any, Callable, Iterator, Mapping

import torch

from evocl.cl import metrics
from evocl.cl.backbone import Backbone
from evocl.cl.data import StreamTensors, stream_tensors
from evocl.cl.evalcache import worker_cache
from evocl.cl.learners import LEARNERS
from evocl.cl.model import build_model
from evocl.cl.names import (ALL_OBJECTIVES, LM_OBJECTIVES, OBJECTIVES,
                             RETENTION_OBJECTIVES, Options)
from evocl.cl.params import resolve
from evocl.cl.strategies.ewc import fisher_samples_for
from evocl.cl.train import run_stream
from evocl.errors import UserError
from evocl.records import Result

_TENSORS: "OrderedDict[tuple, StreamTensors]" = OrderedDict()


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> cuda when available (Ray sets CUDA_VISIBLE_DEVICES), else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"must be auto, cpu or cuda[:n], got {device!r}", field="device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("cuda requested but not available", field="device")
    return dev


def prepare(stream: Any, backbone: Backbone, max_length: int = 64,
            max_eval_per_task: int | None = 64,
            max_test_per_task: int | None = None, *,
            options: Options | None = None) -> StreamTensors:
    """Tokenize (streams.tokenize_stream caches) and tensorize a stream once per worker.
    ``options``: the stream overrides (task_metric, retention, retention_metric) and the
    retention cap (max_retention) of the evaluator options."""
    if isinstance(stream, StreamTensors):
        return stream
    from evocl.streams import tokenize_stream
    from evocl.streams.retention import apply_options

    opts = options or Options()
    stream = apply_options(stream, task_metric=opts.task_metric, retention=opts.retention,
                           retention_metric=opts.retention_metric)
    key = (stream.fingerprint, id(backbone.tokenizer), max_length, max_eval_per_task,
           max_test_per_task, opts.max_retention)
    hit = _TENSORS.get(key)
    if hit is None:
        hit = stream_tensors(tokenize_stream(stream, backbone.tokenizer, max_length),
                             max_eval_per_task, max_test_per_task,
                             retention=_retention_part(stream, backbone.tokenizer, max_length,
                                                       opts.max_retention))
        _TENSORS[key] = hit
        while len(_TENSORS) > 4:
            _TENSORS.popitem(last=False)
    return hit


def _retention_part(stream: Any, tokenizer: Any, max_length: int, cap: int | None) -> Any:
    """The retention set's first ``cap`` rows, tokenized (None without one)."""
    if getattr(stream, "retention", None) is None or not stream.generative:
        return None
    from evocl.streams import TokenizedGenerativeSplit
    from evocl.streams.lm_tokens import encode_retention
    from evocl.streams.types import GenerativeSplit

    split = stream.retention.split
    if cap is not None and len(split) > cap:
        split = GenerativeSplit(split.prompts[:cap], split.responses[:cap], split.messages[:cap])
    return TokenizedGenerativeSplit(*encode_retention(split, tokenizer, max_length))


def evaluate(config: Mapping[str, Any], stream: Any, backbone: Backbone, seed: int,
             device: str = "auto", fitness_tasks: int | None = None, *,
             options: Options | None = None,
             on_trained: Callable[[Any], None] | None = None,
             on_task_end: Callable[[dict[str, Any]], bool] | None = None,
             on_task_model: Callable[[int, Any], None] | None = None,
             low_fidelity: float | None = None,
             **option_values: Any) -> Result:
    """Fine-tune ``backbone`` with LoRA on ``stream`` under ``config``; score it.

    Evaluator options (`evocl.cl.names.Options`: max_length, max_eval_per_task, ...) come as
    ``options`` or as keywords. ``on_trained(model)``, when given, is called with the trained
    model after the last task, e.g. to save the adapters (a classifier: ``.encoder`` the PEFT
    model, ``.head`` the linear head).
    ``on_task_end(report) -> bool``, when given, is called after each task but the last with
    the fidelity report of `task_report` (the tasks seen so far) plus every other objective
    so far (``trainable_params``, ``wall_time`` = ``elapsed``, ``peak_memory_mb``), so a
    scheduler can rank candidates on any space's objectives; returning False stops the
    candidate there: the Result then has status "pruned" and the partial metrics (over the
    tasks trained), ``metrics["tasks_trained"]`` saying how many. ``on_task_model(t, model)``
    sees the model before training (t = -1) and after each task (e.g. to generate samples).
    ``low_fidelity=f`` (with ``on_task_end``; the lowest rung of ``--early-stop-option
    low_fidelity=f``): first a cheap pass trains every task at ``max(1, round(f *
    steps_per_task))`` steps and reports once over the whole stream (``tasks_seen`` =
    ``n_tasks``, ``fidelity`` = f, forgetting over every task; a classifier scores only the
    tasks trained so far, so R[i][j > i] is NaN and FWT is not reported, and no test round is
    run); stopped there, the Result is
    "pruned" with the cheap pass's metrics (``metrics["low_fidelity"]``, ``tasks_trained`` 0
    at full steps); continued (promoted), the candidate is trained again from the backbone's
    pristine weights at full steps, with the same seed, so its result equals a plain
    evaluation's; it keeps the cheap pass's report (journaled) and its seconds (in
    ``wall_time`` and ``metrics["low_fidelity"]``).
    ``stream``: a streams.Stream, or StreamTensors from `prepare` (then max_length and the
    caps it was prepared with apply, not the options here). Raises UserError for a bad config
    and EvaluationError for a non-finite loss; CLEvaluator turns both into failed Results.
    """
    start = time.perf_counter()
    opts = options if options is not None else Options()
    if option_values:
        opts = Options.from_mapping({**opts.to_dict(), **option_values})
    params = resolve(config)
    data = prepare(stream, backbone, opts.max_length, opts.max_eval_per_task,
                   opts.max_test_per_task, options=opts)
    n_tasks = data.n_tasks if fitness_tasks is None else int(fitness_tasks)
    if not 1 <= n_tasks <= data.n_tasks:
        raise UserError(f"must be between 1 and {data.n_tasks}, got {fitness_tasks}",
                        field="fitness_tasks")
    dev = resolve_device(device)
    amp = autocast_dtype(opts.precision, dev)
    kind = getattr(backbone, "kind", "encoder")

    def train(p: Any, report: Callable[[dict[str, Any]], bool] | None,
              trained_cb: Callable[[Any], None] | None,
              cheap: bool = False) -> tuple[Any, int, list[float]]:
        """One pass over the stream under ``p`` from the backbone's pristine weights
        (``cheap``: the low-fidelity pass: trained tasks scored only, no test round)."""
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        _reset_peak_rss()
        with _seeded(seed, dev):
            # a causal LM's frozen weights in bf16 on a GPU (its adapters stay fp32)
            frozen_dtype = torch.bfloat16 if kind == "causal_lm" and amp == torch.bfloat16 \
                else None
            model = build_model(backbone, p, data.n_classes, seed, frozen_dtype).to(dev)
            if opts.gradient_checkpointing:
                from evocl.cl.model import enable_gradient_checkpointing

                enable_gradient_checkpointing(model)
            learner = LEARNERS.load(kind)(model, data, n_tasks, dev, amp, opts,
                                          has_dropout=p.lora_dropout > 0.0)
            learner.shared = worker_cache(backbone.model, data)
            learner.tokenizer = backbone.tokenizer
            learner.seen_only = cheap
            n_trainable = sum(x.numel() for x in learner.trainable_list)
            hook = fidelity_hook(report, learner, n_tasks, n_trainable, start, dev)
            out = run_stream(learner, p, seed, opts, on_task_end=hook, observe=on_task_model,
                             test=not cheap)
            if trained_cb is not None and out.stopped_after is None:
                trained_cb(model)
            retention = list(getattr(learner, "retention_scores", []))
        del model, learner
        return out, n_trainable, retention

    low: dict[str, Any] | None = None
    if low_fidelity is not None and on_task_end is not None:
        # the lowest rung: every task at a fraction of its steps (forgetting over the whole
        # stream); promoted, the candidate is trained again from the pristine weights
        cheap_p = low_fidelity_params(params, low_fidelity)
        cheap, n_trainable, retention = train(cheap_p, None, None, cheap=True)
        rep = task_report(n_tasks - 1, n_tasks, cheap.R, cheap.baseline,
                          time.perf_counter() - start)
        if any(math.isnan(v) for row in cheap.R for v in row):
            rep.pop("fwt", None)     # tasks not yet trained were not scored: null in R
            rep["R"] = [[None if math.isnan(v) else v for v in row] for row in cheap.R]
        rep.update(trainable_params=float(n_trainable), wall_time=rep["elapsed"],
                   peak_memory_mb=_peak_memory_mb(dev), fidelity=float(low_fidelity),
                   steps_per_task=int(cheap_p.steps_per_task))
        rep.update(retention_objectives(retention))
        low = {"fidelity": float(low_fidelity), "steps_per_task": int(cheap_p.steps_per_task),
               "seconds": rep["elapsed"], "train_seconds": cheap.timings.get("train", 0.0),
               **{k: rep[k] for k in ("acc", "forgetting", "bwt", "plasticity") if k in rep}}
        if not on_task_end(rep):
            return _low_fidelity_result(cheap, rep, low, n_tasks, data, backbone, dev, seed,
                                        cheap_p, opts, time.perf_counter() - start)
    out, n_trainable, retention = train(params, on_task_end, on_trained)
    return build_result(out, params, data, n_tasks, n_trainable, backbone.name, dev, seed,
                        opts, retention, time.perf_counter() - start, low=low)


def fidelity_hook(on_task_end: Callable[[dict[str, Any]], bool] | None, learner: Any,
                  n_tasks: int, n_trainable: int, start: float, dev: torch.device
                  ) -> Callable[[int, list[list[float]], list[float]], bool] | None:
    """The loop's ``on_task_end(t, R, baseline)`` around a scheduler's ``on_task_end(report)``:
    the fidelity report of `task_report` plus every other objective so far."""
    if on_task_end is None:
        return None

    def hook(t: int, R: list[list[float]], b: list[float]) -> bool:
        report = task_report(t, n_tasks, R, b, time.perf_counter() - start)
        report.update(trainable_params=float(n_trainable),
                      wall_time=report["elapsed"], peak_memory_mb=_peak_memory_mb(dev))
        report.update(retention_objectives(getattr(learner, "retention_scores", [])))
        return bool(on_task_end(report))
    return hook


def build_result(out: Any, params: Any, data: StreamTensors, n_tasks: int, n_trainable: int,
                 backbone_name: str, dev: torch.device, seed: int, opts: Options,
                 retention: list[float], wall: float,
                 low: dict[str, Any] | None = None) -> Result:
    """The Result of one candidate's `run_stream` output (``out``: a `RunOutput`; ``low``:
    the cheap pass of a promoted candidate, kept in its metrics)."""
    trained = n_tasks if out.stopped_after is None else out.stopped_after
    summary = metrics.summarize([row[:trained] for row in out.R], out.baseline[:trained])
    objectives = {**summary, "trainable_params": float(n_trainable), "wall_time": wall,
                  "peak_memory_mb": _peak_memory_mb(dev)}
    names = OBJECTIVES
    if "val_nll" in out.extra:  # a generative stream: perplexity after the last task trained
        final_nll = out.extra["val_nll"][trained][:trained]  # row 0 is the untrained model
        objectives["perplexity"] = sum(math.exp(min(v, 50.0)) for v in final_nll) / trained
        names = OBJECTIVES + LM_OBJECTIVES
    if retention:  # the untrained model's score, then one after each task trained
        objectives.update(retention_objectives(retention[:trained + 1]))
        names = names + RETENTION_OBJECTIVES
    test = ({"per_task": out.test_acc, "mean": sum(out.test_acc) / len(out.test_acc)}
            if out.test_acc else None)
    return Result(
        objectives={k: float(objectives[k]) for k in names},
        status="ok" if out.stopped_after is None else "pruned",
        metrics={
            "accuracy_matrix": out.R, "baseline_acc": out.baseline,
            "test_acc": test, "tasks_planned": n_tasks,
            "tasks_trained": trained, "n_tasks_stream": data.n_tasks,
            "scenario": data.scenario, "stream_fingerprint": data.fingerprint,
            "backbone": backbone_name, "device": str(dev), "seed": int(seed),
            "config_resolved": params.to_dict(), "final_task_loss": out.final_losses,
            **_metric_names(data, n_tasks, retention),
            "drift_from_task0": out.drift_from_task0,
            **({"low_fidelity": low} if low is not None else {}),
            **({"matrices": out.extra} if out.extra else {}),
            **({"strategy_counters": out.counters} if out.counters else {}),
            "timings": _rounded(out.timings),
            **({"gpu": _gpu_memory(dev)} if dev.type == "cuda" else {}),
            "options": {**opts.to_dict(), "max_length": data.max_length,
                        "max_eval_per_task": data.max_eval_per_task,
                        "fisher_samples": fisher_samples_for(params, opts.fisher_samples)},
        },
        wall_time=wall)


def low_fidelity_params(params: Any, fraction: float) -> Any:
    """``params`` with ``steps_per_task`` scaled by ``fraction`` (at least one step)."""
    import dataclasses

    steps = max(1, int(round(float(fraction) * params.steps_per_task)))
    return dataclasses.replace(params, steps_per_task=steps)


def _low_fidelity_result(out: Any, report: dict[str, Any], low: dict[str, Any], n_tasks: int,
                         data: StreamTensors, backbone: Backbone, dev: torch.device, seed: int,
                         p: Any, opts: Options, wall: float) -> Result:
    """The pruned Result of a candidate stopped after the cheap pass: its objectives over the
    whole stream at the low fidelity; ``tasks_trained`` 0 (no task at full steps)."""
    objectives = {k: float(v) for k, v in report.items()
                  if k in ALL_OBJECTIVES and isinstance(v, (int, float))}
    objectives["wall_time"] = wall
    return Result(objectives=objectives, status="pruned", metrics={
        "accuracy_matrix": report["R"], "baseline_acc": out.baseline, "tasks_planned": n_tasks,
        "tasks_trained": 0, "n_tasks_stream": data.n_tasks, "scenario": data.scenario,
        "stream_fingerprint": data.fingerprint, "backbone": backbone.name, "device": str(dev),
        "seed": int(seed), "config_resolved": p.to_dict(), "low_fidelity": low,
        "timings": _rounded(out.timings)}, wall_time=wall)


def retention_objectives(scores: list[float]) -> dict[str, float]:
    """``retention`` (the last score / the untrained model's; 1 when that is 0) and
    ``retention_drop`` (untrained minus last, clipped at 0) of the retention scores so far
    (``scores[0]``: the untrained model); empty without a retention set."""
    if not scores:
        return {}
    first, last = float(scores[0]), float(scores[-1])
    return {"retention": last / first if first > 0 else 1.0,
            "retention_drop": max(0.0, first - last)}


def _metric_names(data: StreamTensors, n_tasks: int, retention: list[float]) -> dict[str, Any]:
    """What R[i][j] and the retention scores are (for results, reports and exports)."""
    if data.scenario != "generative":
        return {}
    names = [data.metric(j) for j in range(n_tasks)]
    out: dict[str, Any] = {"metric": names[0] if len(set(names)) == 1 else "mixed",
                           "task_metrics": names}
    if retention:
        out["retention"] = {"set": data.retention_name, "metric": data.retention_metric,
                            "rows": len(data.retention) if data.retention is not None else 0,
                            "scores": retention}
    return out


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return round(value, 4) if isinstance(value, float) else value


def autocast_dtype(precision: str, dev: torch.device) -> torch.dtype | None:
    """The autocast dtype of the forward passes (None: fp32)."""
    if precision == "auto":
        if dev.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def task_report(t: int, n_tasks: int, R: list[list[float]], baseline: list[float],
                elapsed: float) -> dict[str, Any]:
    """The fidelity report after training task ``t`` (0-based) of ``n_tasks``: the accuracy
    rows so far (``R[i]`` over all ``n_tasks`` tasks), and acc / forgetting / bwt / plasticity
    over the t + 1 tasks seen (`metrics.summarize` of the (t+1) x (t+1) sub-matrix)."""
    seen = [list(row[:t + 1]) for row in R]
    return {"task": t, "tasks_seen": t + 1, "n_tasks": n_tasks,
            "R": [list(row) for row in R], "baseline": list(baseline),
            **metrics.summarize(seen, baseline[:t + 1]), "elapsed": float(elapsed)}


@contextlib.contextmanager
def _seeded(seed: int, dev: torch.device) -> Iterator[None]:
    devices = [dev.index if dev.index is not None else torch.cuda.current_device()] \
        if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark (Linux: VmHWM) so the peak is this evaluation's."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _gpu_memory(dev: torch.device) -> dict[str, Any]:
    """The GPU's memory and this evaluation's peaks (MiB): what `--gpus-per-eval auto` packs
    by (`evocl.execution.packing`)."""
    return {"total_mb": torch.cuda.get_device_properties(dev).total_memory / 2**20,
            "peak_reserved_mb": torch.cuda.max_memory_reserved(dev) / 2**20,
            "peak_allocated_mb": torch.cuda.max_memory_allocated(dev) / 2**20}


def _peak_memory_mb(dev: torch.device) -> float:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
