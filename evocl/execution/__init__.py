"""Executors: run evaluations in-process (``local``) or on Ray actors (``ray``).

    from evocl.execution import create_executor
    ex = create_executor(kind="local"|"ray", target="evocl.cl:CLEvaluator", target_kwargs={...},
                         workers=2, cpus_per_eval=1.0, gpus_per_eval=0.0, ray_address=None,
                         eval_timeout=None, max_retries=1, dashboard=False)
    ex.submit(candidate); ex.free_slots(); ex.results(timeout) -> (candidate, result)...; ex.shutdown()

The kinds are the table ``evocl.registry.EXECUTORS`` (name -> "module:Class"), so adding one
is a module plus a registry line. ``local`` evaluates in the calling process, one at a time
(``workers`` is ignored there; ``eval_timeout`` is checked after the fact, see local.py).
``ray`` runs ``workers`` long-lived actors; Ray is imported only when a Ray executor is
created.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from evocl.errors import UserError
from evocl.execution.base import Executor, accepts_reports, build_target, evaluate_guarded
from evocl.execution.local import LocalExecutor
from evocl.records import Candidate
from evocl.registry import EXECUTORS

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "accepts_reports", "build_target",
           "create_executor", "evaluate_guarded", "resolve_kind"]


def resolve_kind(kind: str, workers: int, ray_address: str | None,
                 gpus_per_eval: float | str = 0.0) -> str:
    """``auto`` is local for one worker, no cluster address and no GPU asked, else ray (Ray
    assigns GPUs and refuses a request the cluster cannot meet; ``gpus_per_eval="auto"``
    packs by measured memory, `evocl.execution.packing`)."""
    if kind == "auto":
        return "local" if workers == 1 and not ray_address and not gpus_per_eval else "ray"
    if kind not in EXECUTORS:
        raise UserError(f"must be auto or one of {', '.join(EXECUTORS)}, got {kind!r}",
                        field="executor")
    if kind == "local" and gpus_per_eval:
        raise UserError(f"the local executor assigns no GPUs; --gpus-per-eval {gpus_per_eval} "
                        "needs --executor ray (or auto)", field="executor")
    return kind


def create_executor(kind: str = "auto", *, target: str, target_kwargs: Mapping[str, Any] | None = None,
                    workers: int = 1, cpus_per_eval: float = 1.0, gpus_per_eval: float | str = 0.0,
                    ray_address: str | None = None, eval_timeout: float | None = None,
                    max_retries: int = 1, dashboard: bool = False, pack: int = 1,
                    on_report: Callable[[Candidate, dict[str, Any]], bool] | None = None,
                    stream_fingerprint: str | None = None) -> Executor:
    """Build an executor; the target is built at once (locally) or by each actor (Ray).
    ``on_report(candidate, report) -> continue?`` turns on per-task reports (see
    ``execution.base``). ``stream_fingerprint``: the run's stream, checked on every node by an
    executor that ships streams (``execution.shipping``)."""
    cls = EXECUTORS.load(resolve_kind(kind, workers, ray_address, gpus_per_eval))
    extra = {"stream_fingerprint": stream_fingerprint} if getattr(cls, "ships_streams", False) \
        else {}
    return cls(target, target_kwargs, workers=workers, cpus_per_eval=cpus_per_eval,
               gpus_per_eval=gpus_per_eval, ray_address=ray_address, eval_timeout=eval_timeout,
               max_retries=max_retries, dashboard=dashboard, on_report=on_report,
               **({"pack": pack} if pack != 1 else {}), **extra)
