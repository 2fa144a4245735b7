"""Ray executor: long-lived actors that build the evaluation target once, then evaluate many.

Each actor reserves ``num_cpus=cpus_per_eval`` and ``num_gpus=gpus_per_eval`` (fractions
allowed: 0.25 packs four actors on one GPU; ``"auto"`` packs by the memory the first
evaluations used, `evocl.execution.packing`) and caps torch / OpenMP threads at
``cpus_per_eval`` so parallel workers do not oversubscribe the cores. Only JSON-ready dicts go
to and from actors.

Failures become failed Results and the search goes on:
    exception / NaN objective    failed, no retry (deterministic)
    past ``eval_timeout``        actor killed (ray.kill) and replaced; failed "timeout after Ns"
    worker died (kill, OOM)      actor replaced; retried up to ``max_retries`` times, then failed
    its node died                actor replaced (placed wherever the cluster has room, or
                                 waiting for a node to join); re-run without using up
                                 ``max_retries`` (a lost node is not the candidate's fault), at
                                 most ``NODE_LOSS_RERUNS`` times
``result.metrics["attempts"]`` counts the attempts. The replacement of a lost node's actor
gets a candidate only once it has started, so while it waits for room it holds nothing up:
the search goes on on the other nodes, and uses the new actor once a node has joined.

A stream spec named by the target's ``stream`` travels to the nodes with the workers'
``runtime_env`` (``evocl.execution.shipping``); each actor reports its node, the stream
fingerprint it built and a missing package, checked before it gets a candidate.

A Ray instance started here ends with the driver, even after a SIGKILL of it: a watchdog ends
every process of that instance and no other (`evocl.execution.reaper`).

Per-task reports (``on_report``, early stopping): a worker's evaluation calls back after each
task; the callback sends the report to ``_Broker``, a small asyncio actor, and waits for the
answer while the model stays in the worker. The driver long-polls the broker inside
``results()``, asks ``on_report`` (the runner journals the report and the decision) and sends
the answer back. A report of a candidate that is no longer running here is answered "stop".
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import ray
import ray.exceptions as rex

from evocl.errors import UserError
from evocl.execution.base import (build_target, check_target_path, evaluate_guarded,
                                  fit_workers, machine_cpus, with_attempts)
from evocl.execution.packing import AutoPacking, fraction_per_eval, keep_slots
from evocl.execution.reaper import Reaper
from evocl.execution.shipping import SPEC_NAME, check_node, is_spec, stage, target_fingerprint
from evocl.records import Candidate, Result

OBJECT_STORE_BYTES = 200 * 1024 * 1024
NODE_LOSS_RERUNS = 3
_DEAD = (rex.RayActorError, rex.WorkerCrashedError, rex.OutOfMemoryError,
         rex.ActorUnavailableError, rex.LocalRayletDiedError, rex.NodeDiedError,
         rex.OwnerDiedError, rex.ObjectLostError)


class _Worker:
    """The actor body: builds the target once; a build failure fails every evaluation."""

    def __init__(self, target: str, kwargs: dict[str, Any], threads: int, pack: int = 1):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self._error: str | None = None
        self._missing: str | None = None
        try:
            self._target = build_target(target, kwargs)
        except Exception as e:  # noqa: BLE001
            self._target = None
            self._error = f"building {target} failed: {type(e).__name__}: {e}"
            cause: BaseException | None = e
            while cause is not None and self._missing is None:
                if isinstance(cause, ModuleNotFoundError) and cause.name:
                    self._missing = cause.name.split(".")[0]
                cause = cause.__cause__ or cause.__context__
        # torch threads = cpus_per_eval (OMP_NUM_THREADS is set too); torch is not imported
        # for targets that do not use it (it would cost seconds per actor start)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        if pack > 1 and self._target is not None:  # K calls at once train in one pack
            from evocl.execution.pack_server import PackServer

            try:
                self._target = PackServer(self._target, pack)
            except Exception as e:  # noqa: BLE001
                self._target = None
                self._error = f"--pack {pack}: {type(e).__name__}: {e}"

    def ready(self) -> int:
        return os.getpid()

    def where(self) -> dict[str, Any]:
        """This actor's node (id, address) and process."""
        ctx = ray.get_runtime_context()
        return {"node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
                "pid": os.getpid(), "missing": self._missing, "error": self._error,
                "fingerprint": target_fingerprint(self._target)}

    def gpu_ids(self) -> list[str]:
        return [str(g) for g in ray.get_gpu_ids()]

    def evaluate(self, candidate: dict[str, Any], broker: Any = None) -> dict[str, Any]:
        if self._target is None:
            return {"result": Result.failed(self._error or "no target").to_dict(),
                    "transient": False}
        hook = None
        if broker is not None:
            cid = int(candidate["id"])

            def hook(report: dict[str, Any]) -> bool:
                return bool(ray.get(broker.report.remote(cid, report)))
        return evaluate_guarded(self._target, candidate, on_task_end=hook)


class _Broker:
    """Relays per-task reports from the workers to the driver and the decisions back."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, dict[str, Any]]] = []
        self._waiting: dict[tuple[int, int], asyncio.Future] = {}
        self._event = asyncio.Event()

    async def report(self, cid: int, report: dict[str, Any]) -> bool:
        """Called by a worker: wait for the driver's decision on this report."""
        future = asyncio.get_running_loop().create_future()
        self._waiting[(cid, int(report["tasks_seen"]))] = future
        self._pending.append((cid, report))
        self._event.set()
        return bool(await future)

    async def take(self) -> list[tuple[int, dict[str, Any]]]:
        """Called by the driver: the reports waiting for a decision (waits for one)."""
        await self._event.wait()
        self._event.clear()
        out, self._pending = self._pending, []
        return out

    async def decide(self, cid: int, tasks_seen: int, ok: bool) -> None:
        future = self._waiting.pop((cid, tasks_seen), None)
        if future is not None and not future.done():
            future.set_result(bool(ok))


def _upload(folder: str) -> str:
    """Put a staged folder into the cluster's object store (once per content): its ``gcs://``
    URI, which an actor's ``runtime_env`` accepts (a local path only ``ray.init`` does)."""
    from ray._private.runtime_env.packaging import (get_uri_for_directory,
                                                    upload_package_if_needed)
    uri = get_uri_for_directory(folder, include_gitignore=False)
    upload_package_if_needed(uri, os.path.dirname(folder), folder, include_gitignore=False)
    return uri


@dataclass
class _Slot:
    actor: Any
    ready_ref: Any
    ready_at: float | None = None
    pid: int | None = None
    retired: bool = False  # stopped by the auto packing (`evocl.execution.packing`)
    node_id: str | None = None
    awaiting_room: bool = False  # replaces an actor of a lost node: may wait for a node to join


@dataclass
class _Job:
    candidate: Candidate
    slot: int
    submitted: float
    attempts: int = 1
    node_losses: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def check_dashboard() -> None:
    """``--ray-dashboard`` needs Ray's dashboard packages (``pip install 'ray[default]'``):
    refused with one line where they are missing, before anything starts."""
    from ray._private.utils import get_dashboard_dependency_error

    missing = get_dashboard_dependency_error()
    if missing is not None:
        raise UserError(f"Ray's dashboard needs packages that are not installed ({missing}); "
                        f"pip install 'ray[default]', or run without it",
                        field="--ray-dashboard")


class RayExecutor:
    """``workers`` actors on a local Ray (started here) or an existing cluster (ray_address)."""

    ships_streams = True

    def __init__(self, target: str, target_kwargs: Mapping[str, Any] | None = None, *,
                 workers: int = 1, cpus_per_eval: float = 1.0, gpus_per_eval: float | str = 0.0,
                 ray_address: str | None = None, eval_timeout: float | None = None,
                 max_retries: int = 1, dashboard: bool = False,
                 on_report: Callable[[Candidate, dict[str, Any]], bool] | None = None,
                 pack: int = 1, stream_fingerprint: str | None = None):
        if pack > 1 and gpus_per_eval == "auto":
            raise UserError(f"--pack {pack} takes a fixed --gpus-per-eval (auto sizes actors "
                            "by one candidate's memory)", field="pack")
        check_target_path(target)
        self.pack = int(pack)
        self.stream_fingerprint = stream_fingerprint
        self.on_report = on_report
        self.target = target
        self.target_kwargs = dict(target_kwargs or {})
        self.workers = workers
        self.cpus_per_eval = cpus_per_eval
        self.eval_timeout = eval_timeout
        self.max_retries = max_retries
        self.threads = max(1, int(math.floor(cpus_per_eval)))
        self._started_ray = False
        self._reaper: Reaper | None = None
        if dashboard and not ray_address:
            check_dashboard()
        if not ray.is_initialized():
            common = dict(logging_level=logging.WARNING, log_to_driver=False,
                          configure_logging=True)
            try:
                if ray_address:
                    ray.init(address=ray_address, **common)
                else:  # a new instance of our own ("local": never one found in /tmp/ray or
                    # $RAY_ADDRESS), with no more CPUs than the machine has (one always fits),
                    # whose processes end with this one (reaper.py)
                    self._reaper = Reaper()
                    cpus = min(math.ceil(workers * cpus_per_eval), machine_cpus())
                    ray.init(address="local", num_cpus=max(1, math.ceil(cpus_per_eval), cpus),
                             include_dashboard=dashboard, dashboard_host="127.0.0.1",
                             object_store_memory=OBJECT_STORE_BYTES, **common)
            except (ConnectionError, ValueError, RuntimeError) as e:
                self._close_reaper()
                where = f"join Ray at {ray_address!r}" if ray_address else "start Ray"
                raise UserError(f"cannot {where}: {str(e).splitlines()[0] if str(e) else e!r}",
                                field="ray_address") from e
            self._started_ray = True
        have = ray.cluster_resources()
        fits = fit_workers(workers, cpus_per_eval,
                           0.0 if gpus_per_eval == "auto" else float(gpus_per_eval), have,
                           f"the Ray cluster at {ray_address}" if ray_address else
                           "this machine" if self._started_ray else "the running Ray instance")
        self.workers = workers = max(1, fits)  # none fits: refused below, naming the resource
        self.packing: AutoPacking | None = None
        if gpus_per_eval == "auto":  # pack by measured memory; no GPU in the cluster: none
            gpus_per_eval = fraction_per_eval(workers, have.get("GPU", 0.0))
            if gpus_per_eval:
                self.packing = AutoPacking(workers, have.get("GPU", 0.0))
        self.gpus_per_eval = gpus_per_eval = float(gpus_per_eval)
        for name, need in (("CPU", cpus_per_eval), ("GPU", gpus_per_eval)):
            if need > have.get(name, 0.0):
                self.shutdown_ray()
                raise UserError(f"{name.lower()}s_per_eval={need:g} but the Ray cluster has "
                                f"{have.get(name, 0.0):g} {name}", field=f"{name.lower()}s_per_eval")
        threads = str(self.threads)
        # workers import evocl (and the target) even when evocl is not installed in the venv
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        pypath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        self.shipped: str | None = None
        runtime_env: dict[str, Any] = {}
        if is_spec(self.target_kwargs.get("stream")):  # the user's files travel with the workers
            self.shipped = str(stage(self.target_kwargs["stream"]))
            runtime_env["working_dir"] = _upload(self.shipped)
            self.target_kwargs["stream"] = SPEC_NAME
        self._actor_cls = ray.remote(_Worker).options(
            num_cpus=cpus_per_eval, num_gpus=gpus_per_eval, max_restarts=0,
            max_concurrency=self.pack,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                                      "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": pypath,
                                      "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
                         **runtime_env})
        self._broker: Any = None
        self._take_ref: Any = None
        if on_report is not None:
            self._broker = ray.remote(_Broker).options(num_cpus=0, max_concurrency=1000).remote()
            self._take_ref = self._broker.take.remote()
        self._slots: list[_Slot] = []
        for _ in range(workers):  # with --pack K, K slots share one actor
            self._slots += [self._new_slot()] * self.pack
        self._busy: dict[int, Any] = {}          # slot index -> ref
        self._jobs: dict[Any, _Job] = {}         # ref -> job
        self._queue: collections.deque[tuple[Candidate, int, int]] = collections.deque()
        self._ready_out: collections.deque[tuple[Candidate, Result]] = collections.deque()
        self.replaced = 0
        self.nodes_lost = 0  # evaluations re-run because their node left the cluster

    # -- actors --------------------------------------------------------------------------
    def _new_slot(self) -> _Slot:
        actor = self._actor_cls.remote(self.target, self.target_kwargs, self.threads, self.pack)
        return _Slot(actor=actor, ready_ref=actor.ready.remote())

    def _replace(self, idx: int, actor: Any = None) -> None:
        """A new actor for slot ``idx`` (and the slots sharing its actor); ``actor``: only if
        the slot still holds that one (a pack's other calls see the same death)."""
        old = self._slots[idx]
        if actor is not None and old.actor is not actor:
            return
        try:
            ray.kill(old.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead
            pass
        new = self._new_slot()
        for i, s in enumerate(self._slots):
            if s is old:
                self._slots[i] = new
        self.replaced += 1

    def _node_dead(self, slot: _Slot) -> bool:
        """Whether the node this slot's actor ran on has left the cluster."""
        if slot.node_id is None:
            return False
        try:
            alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        except Exception:  # noqa: BLE001 - the GCS is unreachable: say nothing
            return False
        return slot.node_id not in alive

    def _check_ready(self) -> None:
        """Mark the actors that have built their target (or failed to start: their
        evaluations then fail with Ray's reason, as before)."""
        waiting: dict[Any, list[_Slot]] = {}   # a packed actor's slots share its ready ref
        for s in self._slots:
            if s.ready_at is None and not s.retired:
                waiting.setdefault(s.ready_ref, []).append(s)
        if not waiting:
            return
        done, _ = ray.wait(list(waiting), num_returns=len(waiting), timeout=0)
        now = time.monotonic()
        for ref in done:
            slots = waiting[ref]
            for slot in slots:
                slot.ready_at = now
            try:
                pid = ray.get(ref)
                info = ray.get(slots[0].actor.where.remote(), timeout=60)
            except Exception:  # noqa: BLE001 - its evaluations report the reason
                continue
            for slot in slots:
                slot.pid, slot.node_id = pid, info["node_id"]
            check_node(info, self.stream_fingerprint)  # a node that cannot take part: refused

    def wait_ready(self, timeout: float | None = None) -> list[int]:
        """Block until every actor has built its target; returns the worker pids."""
        pids = ray.get([s.ready_ref for s in self._slots], timeout=timeout)
        self._check_ready()
        return pids

    def worker_pids(self) -> list[int | None]:
        return [s.pid for s in self._slots]

    # -- protocol ------------------------------------------------------------------------
    def submit(self, candidate: Candidate) -> None:
        self._queue.append((candidate, 1, 0))
        self._dispatch()

    def free_slots(self) -> int:
        return max(0, len(self._usable()) - len(self._busy) - len(self._queue))

    def _usable(self) -> list[int]:
        """Slots that may evaluate now: every live one, or the auto packing's share."""
        live = [i for i, s in enumerate(self._slots) if not s.retired]
        return live if self.packing is None else live[:self.packing.limit]

    def _apply_packing(self) -> None:
        """Once the probes have reported, stop the idle actors beyond the packing's limit
        (busy ones first kept; at most ``per_gpu`` on each GPU)."""
        pk = self.packing
        if pk is None or pk.seen < pk.probes:
            return
        live = [i for i, s in enumerate(self._slots) if not s.retired]
        if len(live) <= pk.limit:
            return
        live.sort(key=lambda i: i not in self._busy)  # busy first, then slot order
        gpus: list[Any] = [0] * len(live)
        if pk.gpus > 1:
            try:
                gpus = ray.get([self._slots[i].actor.gpu_ids.remote() for i in live], timeout=60)
            except Exception:  # noqa: BLE001 - unknown placement: one GPU each
                gpus = [None] * len(live)
        keep = {live[j] for j in keep_slots(gpus, pk.per_gpu or pk.cap, pk.limit)}
        for i in live:
            if i not in keep and i not in self._busy:
                try:
                    ray.kill(self._slots[i].actor, no_restart=True)
                except Exception:  # noqa: BLE001 - already dead
                    pass
                self._slots[i].retired = True

    def packing_report(self) -> dict[str, Any] | None:
        """The auto packing's decisions (None without ``gpus_per_eval="auto"``)."""
        if self.packing is None:
            return None
        return {**self.packing.report(), "actors_evaluating": len(self._usable()),
                "actors_retired": sum(s.retired for s in self._slots)}

    def in_flight(self) -> int:
        return len(self._busy) + len(self._queue) + len(self._ready_out)

    def _dispatch(self) -> None:
        if not self._queue:
            return
        self._check_ready()
        for idx in self._usable():
            if not self._queue:
                return
            slot = self._slots[idx]
            if idx in self._busy or (slot.awaiting_room and slot.ready_at is None):
                continue
            cand, attempts, losses = self._queue.popleft()
            ref = self._slots[idx].actor.evaluate.remote(cand.to_dict(), self._broker)
            self._busy[idx] = ref
            self._jobs[ref] = _Job(cand, idx, time.monotonic(), attempts, losses,
                                   extra={"actor": self._slots[idx].actor})

    def _deadline(self, job: _Job) -> float | None:
        if self.eval_timeout is None:
            return None
        slot = self._slots[job.slot]
        if slot.ready_at is None:
            done, _ = ray.wait([slot.ready_ref], timeout=0)
            if not done:
                return None  # still building the target: the clock starts when it is ready
            slot.ready_at = time.monotonic()
        return max(job.submitted, slot.ready_at) + self.eval_timeout

    def _finish(self, ref: Any) -> tuple[Candidate, Result] | None:
        """Collect one finished ref; None when the candidate went back to the queue (retry)."""
        job = self._jobs.pop(ref)
        del self._busy[job.slot]
        try:
            out = ray.get(ref)
            res, transient = Result.from_dict(out["result"]), bool(out["transient"])
        except _DEAD as e:
            if self._node_dead(self._slots[job.slot]) and job.node_losses < NODE_LOSS_RERUNS:
                self._replace(job.slot, job.extra.get("actor"))
                self._slots[job.slot].awaiting_room = True
                self.nodes_lost += 1
                self._queue.appendleft((job.candidate, job.attempts + 1, job.node_losses + 1))
                return None
            self._replace(job.slot, job.extra.get("actor"))
            res = Result.failed(f"worker died: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
            transient = True
        except rex.RayError as e:
            res, transient = Result.failed(f"ray error: {type(e).__name__}: {e}"[:500]), False
        if self.packing is not None:
            self.packing.observe(res.metrics)
            if (not res.ok and "out of memory" in (res.error or "").lower()
                    and len(self._usable()) > 1):
                self.packing.out_of_memory(len(self._usable()))  # retried on fewer actors
                transient = True
            self._apply_packing()
        if transient and job.attempts - job.node_losses <= self.max_retries:
            self._queue.appendleft((job.candidate, job.attempts + 1, job.node_losses))
            return None
        return job.candidate, with_attempts(res, job.attempts)

    def _expire(self) -> list[tuple[Candidate, Result]]:
        out = []
        now = time.monotonic()
        for ref, job in list(self._jobs.items()):
            dl = self._deadline(job)
            if dl is not None and now >= dl:
                del self._jobs[ref]
                del self._busy[job.slot]
                self._replace(job.slot, job.extra.get("actor"))
                out.append((job.candidate, with_attempts(
                    Result.failed(f"timeout after {self.eval_timeout:g}s",
                                  wall_time=now - job.submitted), job.attempts)))
        return out

    def results(self, timeout: float | None = None) -> Iterator[tuple[Candidate, Result]]:
        end = None if timeout is None else time.monotonic() + timeout
        while self._ready_out or self._jobs or self._queue:
            while self._ready_out:
                yield self._ready_out.popleft()
            self._dispatch()
            if not self._jobs and not self._queue:
                continue
            now = time.monotonic()
            wait = None if end is None else max(0.0, end - now)
            deadlines = [d for d in map(self._deadline, self._jobs.values()) if d is not None]
            if self.eval_timeout is not None:
                nxt = min(deadlines) - now if deadlines else 0.5  # poll actors still building
                wait = max(0.0, nxt) if wait is None else min(wait, max(0.0, nxt))
            waiting = list(self._jobs) + ([self._take_ref] if self._take_ref is not None else [])
            building = list(dict.fromkeys(  # unique: a packed actor's slots share one ref
                s.ready_ref for s in self._slots if self._queue and s.awaiting_room
                and s.ready_at is None and not s.retired))
            done, _ = ray.wait(waiting + building, num_returns=1, timeout=wait)
            for ref in done:
                if ref == self._take_ref:
                    self._relay()
                    continue
                if ref not in self._jobs:  # an actor became ready: dispatched below
                    continue
                item = self._finish(ref)
                if item is not None:
                    self._ready_out.append(item)
            self._ready_out.extend(self._expire())
            self._dispatch()
            if not self._ready_out and end is not None and time.monotonic() >= end:
                return

    def _relay(self) -> None:
        """Answer the reports the broker holds: ``on_report`` for a running candidate, stop
        for one that is not running here any more (it timed out or its worker died)."""
        reports = ray.get(self._take_ref)
        self._take_ref = self._broker.take.remote()
        running = {job.candidate.id: job.candidate for job in self._jobs.values()}
        for cid, report in reports:
            cand = running.get(int(cid))
            ok = cand is not None and bool(self.on_report(cand, report))  # type: ignore[misc]
            self._broker.decide.remote(int(cid), int(report["tasks_seen"]), ok)

    def shutdown(self) -> None:
        if self._broker is not None:
            try:
                ray.kill(self._broker, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
            self._broker = self._take_ref = None
        for s in self._slots:
            try:
                ray.kill(s.actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        self._slots, self._jobs, self._busy = [], {}, {}
        self._queue.clear()
        self.shutdown_ray()

    def shutdown_ray(self) -> None:
        """Stop Ray if this executor started it (a joined cluster is left alone)."""
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._started_ray = False
        self._close_reaper()

    def _close_reaper(self) -> None:
        if self._reaper is not None:
            self._reaper.close()
            self._reaper = None
