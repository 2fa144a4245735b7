"""The Executor protocol and what every executor shares: building a target, guarding a call.

An evaluation TARGET is ``"module:Class"`` plus JSON kwargs. A worker builds it once
(``Class(**kwargs)``, e.g. loading a backbone and a tokenized stream) and then calls
``target(candidate) -> Result`` for many candidates. Only JSON-ready dicts cross process
boundaries (``Candidate.to_dict`` / ``Result.to_dict``), never custom classes.

Per-task reports (early stopping): an executor built with ``on_report(candidate, report) ->
bool`` calls ``target(candidate, on_task_end=...)``; the target calls it after each task but
the last with its fidelity report and stops (a ``pruned`` Result) when it answers False. The
answer comes from the driver: the local executor calls ``on_report`` directly, the Ray
executor relays the report through a small actor (the worker keeps its model meanwhile).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import os
import time
import traceback
import warnings
from typing import Any, Callable, Iterator, Mapping, Protocol, runtime_checkable

from evocl.errors import EvaluationError, UserError
from evocl.records import Candidate, Result


@runtime_checkable
class Executor(Protocol):
    """Runs evaluations; a failure is a failed Result, never an exception ending the search."""

    def submit(self, candidate: Candidate) -> None: ...

    def free_slots(self) -> int: ...

    def in_flight(self) -> int: ...

    def results(self, timeout: float | None = None) -> Iterator[tuple[Candidate, Result]]: ...

    def shutdown(self) -> None: ...


def resolve_target(path: str) -> Any:
    """Import ``"module:attr"`` and return the attribute (UserError when it cannot be found)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"must be 'module:attr', got {path!r}", field="objective")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UserError(f"cannot import {module_name!r} ({e})", field="objective") from None
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise UserError(f"{module_name!r} has no attribute {attr!r}", field="objective") from None
    return obj


def check_target_path(path: str) -> None:
    """Cheap up-front check of a target path (module exists) without importing it."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"must be 'module:attr', got {path!r}", field="objective")
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise UserError(f"cannot find module {module_name!r}", field="objective")


def accepts_reports(target: Any) -> bool:
    """Whether a target (a class, its instance or a function) takes ``on_task_end``, i.e. can
    report after each task and be stopped early."""
    call = target.__call__ if isinstance(target, type) or not inspect.isroutine(target) \
        else target
    try:
        params = inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False
    return "on_task_end" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def build_target(path: str, kwargs: Mapping[str, Any]) -> Any:
    """Build a target: a class (or factory) called with kwargs, or a plain function as is."""
    obj = resolve_target(path)
    if isinstance(obj, type) or kwargs:
        return obj(**dict(kwargs))
    return obj


def _non_finite(result: Result) -> list[str]:
    bad = []
    for k, v in result.objectives.items():
        try:
            if not math.isfinite(float(v)):
                bad.append(f"{k}={v}")
        except (TypeError, ValueError):
            bad.append(f"{k}={v!r}")
    return bad


def evaluate_guarded(target: Any, candidate_dict: dict[str, Any],
                     on_task_end: Callable[[dict[str, Any]], bool] | None = None
                     ) -> dict[str, Any]:
    """Evaluate one candidate; return ``{"result": Result dict, "transient": bool}``.

    Exceptions (except KeyboardInterrupt/SystemExit) and non-finite objectives become failed
    results. ``transient`` is True only for ``EvaluationError(transient=True)``.
    ``on_task_end`` (per-task reports) is passed to the target when given.
    """
    t0 = time.perf_counter()
    transient = False
    try:
        cand = Candidate.from_dict(candidate_dict)
        res = target(cand) if on_task_end is None else target(cand, on_task_end=on_task_end)
        if isinstance(res, Mapping):
            res = Result.from_dict(res)
        if not isinstance(res, Result):
            raise TypeError(f"target returned {type(res).__name__}, expected Result")
        res = checked(res)
    except EvaluationError as e:
        transient = e.transient
        res = Result.failed(e.reason)
    except Exception as e:  # noqa: BLE001 - every failure becomes a result
        tb = traceback.format_exc(limit=-3)
        res = Result.failed(f"{type(e).__name__}: {e}", traceback=tb[-2000:])
    elapsed = time.perf_counter() - t0
    if not res.wall_time:
        res = Result(res.objectives, res.metrics, res.status, res.error, elapsed)
    return {"result": res.to_dict(), "transient": transient}


def checked(res: Result) -> Result:
    """``res``, or a failed Result when an ok one has a non-finite objective."""
    if res.ok:
        bad = _non_finite(res)
        if bad:
            return Result.failed(f"non-finite objective {', '.join(bad)}",
                                 wall_time=res.wall_time, **res.metrics)
    return res


def with_attempts(result: Result, attempts: int) -> Result:
    """The same result with ``metrics["attempts"]`` set."""
    return Result(result.objectives, {**result.metrics, "attempts": attempts}, result.status,
                  result.error, result.wall_time)


def machine_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def fit_workers(workers: int, cpus_per_eval: float, gpus_per_eval: float,
                have: Mapping[str, float], where: str) -> int:
    """How many of ``workers`` parallel evaluations fit in ``have`` (``{"CPU": n, "GPU": m}``,
    a machine's or a Ray cluster's resources) at ``cpus_per_eval`` / ``gpus_per_eval`` each:
    ``workers`` or fewer, with one warning line naming the cap (0 when not even one fits; the
    caller refuses that). A worker never runs beyond what it was given: ``--workers 100000``
    on two cores is two workers, not a hundred thousand processes."""
    fits = workers
    for name, need in (("CPU", cpus_per_eval), ("GPU", gpus_per_eval)):
        if need > 0:
            fits = min(fits, int(math.floor(float(have.get(name, 0.0)) / need + 1e-9)))
    if 0 < fits < workers:
        per = f"{cpus_per_eval:g} CPU" + (f" and {gpus_per_eval:g} GPU" if gpus_per_eval else "")
        warnings.warn(
            f"workers={workers} but {where} has {float(have.get('CPU', 0.0)):g} CPU"
            + (f" and {float(have.get('GPU', 0.0)):g} GPU" if gpus_per_eval else "")
            + f" for evaluations of {per} each: running {fits} workers (a lower "
            "--cpus-per-eval packs more)", stacklevel=2)
    return max(0, fits)
