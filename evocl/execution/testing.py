"""Small deterministic evaluation targets for tests, benchmarks and debugging.

Importable by path from any worker (``"evocl.execution.testing:Toy"``). ``Toy`` scores a
numeric configuration with a cheap two-objective function; the candidate's config can ask
it to misbehave: ``{"fail": "raise" | "nan" | "hang" | "exit" | "exit_once" |
"transient_once"}`` (``*_once`` need ``marker_dir``: the first attempt of a candidate fails,
the next one succeeds), or to take longer: ``{"_sleep": seconds}`` (keys starting with "_" are
not scored).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from evocl.errors import EvaluationError
from evocl.records import Candidate, Result


class Toy:
    """f1 = sum(x^2), f2 = sum((x-1)^2) over the numeric params (both minimised), after ``delay``."""

    def __init__(self, delay: float = 0.0, marker_dir: str | None = None, **_: Any):
        self.delay = delay
        self.marker_dir = marker_dir
        self.calls = 0

    def __call__(self, candidate: Candidate) -> Result:
        self.calls += 1
        cfg = candidate.config
        mode = cfg.get("fail")
        if mode == "raise":
            raise ValueError(f"bad config {candidate.id}")
        if mode == "hang":
            time.sleep(3600)
        if mode == "exit":
            os._exit(3)
        if mode in ("exit_once", "transient_once") and self.marker_dir:
            marker = Path(self.marker_dir) / f"{mode}-{candidate.id}"
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                if mode == "exit_once":
                    os._exit(3)
                raise EvaluationError("transient trouble", transient=True)
        if self.delay or cfg.get("_sleep"):
            time.sleep(float(cfg.get("_sleep", self.delay)))
        xs = [float(v) for k, v in sorted(cfg.items())
              if isinstance(v, (int, float)) and not isinstance(v, bool) and k[0] != "_"]
        f1 = sum(x * x for x in xs)
        f2 = sum((x - 1) ** 2 for x in xs)
        if mode == "nan":
            f1 = math.nan
        return Result(objectives={"f1": f1, "f2": f2}, metrics={"pid": os.getpid()})


def noop(candidate: Candidate) -> Result:
    """The cheapest evaluation there is (for measuring executor overhead)."""
    return Result(objectives={"f1": 0.0, "f2": 0.0})


class Recorded:
    """Wraps ``evocl.evolution.problems:Problem``; appends each evaluated id to ``log`` first.

    The log shows how often each candidate was really evaluated (kill/resume tests check that
    no told evaluation runs twice); ``log_pid``: each line is "id pid" (which worker process
    evaluated it: node-loss tests).
    """

    def __init__(self, log: str, pause_at: Any = (), pause_s: float = 60.0,
                 log_pid: bool = False, **problem_kwargs: Any):
        from evocl.evolution.problems import Problem
        self.log, self.log_pid = log, bool(log_pid)
        self.pause_at = {(int(c), int(t)) for c, t in pause_at}
        self.pause_s = float(pause_s)
        self.problem = Problem(**problem_kwargs)

    def __call__(self, candidate: Candidate, on_task_end: Any = None) -> Result:
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (f"{candidate.id} {os.getpid()}\n" if self.log_pid
                          else f"{candidate.id}\n").encode())
        finally:
            os.close(fd)
        hook = on_task_end
        if on_task_end is not None and self.pause_at:
            def hook(report: dict[str, Any]) -> bool:
                """``pause_at`` [[id, tasks_seen], ...]: once the decision on that report is
                made (and journaled), sleep ``pause_s`` the first time, so a test can kill the
                run exactly between two tasks of a running candidate."""
                key = (candidate.id, int(report["tasks_seen"]))
                marker = Path(f"{self.log}.paused-{key[0]}-{key[1]}")
                pause = key in self.pause_at and not marker.exists()
                if pause:  # marked first: a kill right after the decision cannot undo it
                    marker.write_text(str(os.getpid()))
                ok = on_task_end(report)
                if pause:
                    time.sleep(self.pause_s)
                return ok
        return self.problem(candidate, on_task_end=hook)


class FakeGpu:
    """Reports the GPU memory a CL evaluation would (``metrics["gpu"]``) without a GPU: total
    ``total_mb``, peak ``config["peak_mb"]``; ``config["oom"]`` fails the first attempt with
    "out of memory" (needs ``marker_dir``). Tests ``--gpus-per-eval auto`` on the CPU."""

    def __init__(self, total_mb: float = 10_000.0, marker_dir: str | None = None, **_: Any):
        self.total_mb = total_mb
        self.marker_dir = marker_dir

    def __call__(self, candidate: Candidate) -> Result:
        cfg = candidate.config
        if cfg.get("oom") and self.marker_dir:
            marker = Path(self.marker_dir) / f"oom-{candidate.id}"
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        time.sleep(float(cfg.get("_sleep", 0.0)))
        return Result(objectives={"f1": float(candidate.id), "f2": 0.0},
                      metrics={"pid": os.getpid(), "gpu": {
                          "total_mb": self.total_mb, "peak_reserved_mb": float(cfg["peak_mb"])}})


class StreamProbe:
    """Loads a stream as the CL evaluator does (a built-in name or a spec path) and scores a
    candidate with ``Toy``'s function; ``stream_fingerprint`` is what a worker reports, and each
    result names it (``metrics["stream_fingerprint"]``): stream-shipping tests."""

    def __init__(self, stream: str = "synthetic", stream_seed: int = 0, delay: float = 0.0,
                 **_: Any):
        from evocl.streams import load_stream
        loaded = load_stream(stream, seed=int(stream_seed))
        self.stream_fingerprint = loaded.fingerprint
        self.toy = Toy(delay=delay)

    def __call__(self, candidate: Candidate) -> Result:
        res = self.toy(candidate)
        return Result(res.objectives, {**res.metrics, "stream_fingerprint":
                                       self.stream_fingerprint}, wall_time=res.wall_time)


class NeedsPackage:
    """A target whose build imports ``package`` (a node that lacks it: missing-package tests)."""

    def __init__(self, package: str, **_: Any):
        import importlib
        importlib.import_module(package)

    def __call__(self, candidate: Candidate) -> Result:
        return noop(candidate)
