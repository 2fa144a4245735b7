"""An executor in one module: evaluations on a pool of threads in this process.

Each thread builds its own target (``Class(**kwargs)``) once, so targets need not be thread
safe; useful for targets that wait (remote services, subprocesses) or release the GIL.
Failures are isolated by ``evaluate_guarded`` like in every executor; ``eval_timeout`` is
checked after the fact (a thread cannot be interrupted), transient failures are retried up
to ``max_retries`` times. Per-task reports (early stopping): a thread's evaluation puts each
report on a queue and waits; ``results`` answers them on the caller's thread with
``on_report`` (the runner journals there, so it is never called from two threads at once).
Register it and run the shared contract on it (see the README's "Extending evocl")::

    from evocl.registry import EXECUTORS
    EXECUTORS.register("threads", "thread_executor:ThreadExecutor", "a pool of threads")
"""

from __future__ import annotations

import concurrent.futures as cf
import queue
import threading
import time
from typing import Any, Callable, Iterator, Mapping

from evocl.execution.base import build_target, evaluate_guarded, with_attempts
from evocl.records import Candidate, Result


class ThreadExecutor:
    def __init__(self, target: str, target_kwargs: Mapping[str, Any] | None = None, *,
                 workers: int = 1, eval_timeout: float | None = None, max_retries: int = 1,
                 on_report: Callable[[Candidate, dict[str, Any]], bool] | None = None,
                 **_ignored: Any):
        self.target, self.kwargs = target, dict(target_kwargs or {})
        build_target(target, self.kwargs)          # a bad target fails here, not per candidate
        self.workers, self.eval_timeout, self.max_retries = workers, eval_timeout, max_retries
        self._local = threading.local()
        self._pool = cf.ThreadPoolExecutor(max_workers=workers)
        self._futures: dict[cf.Future, Candidate] = {}
        self.on_report = on_report
        self._reports: queue.Queue = queue.Queue()   # (candidate, report, [answer, event])
        self._closing = False

    def _ask(self, cand: Candidate, report: dict[str, Any]) -> bool:
        """In a pool thread: hand the report to ``results`` and wait for its answer."""
        if self._closing:
            return False
        box: list[Any] = [False, threading.Event()]
        self._reports.put((cand, report, box))
        while not box[1].wait(0.05):
            if self._closing:      # shut down while waiting: stop
                return False
        return bool(box[0])

    def _answer(self) -> None:
        """On the caller's thread: answer every waiting report with ``on_report``."""
        while True:
            try:
                cand, report, box = self._reports.get_nowait()
            except queue.Empty:
                return
            box[0] = self.on_report(cand, report)  # type: ignore[misc]
            box[1].set()

    def _evaluate(self, cand: Candidate) -> Result:
        if not hasattr(self._local, "target"):
            self._local.target = build_target(self.target, self.kwargs)
        attempts = 0
        while True:
            attempts += 1
            t0 = time.monotonic()
            hook = None if self.on_report is None else (lambda r: self._ask(cand, r))
            out = evaluate_guarded(self._local.target, cand.to_dict(), on_task_end=hook)
            took = time.monotonic() - t0
            if self.eval_timeout is not None and took > self.eval_timeout:
                return with_attempts(Result.failed(f"timeout after {self.eval_timeout:g}s",
                                                   wall_time=took), attempts)
            if not (out["transient"] and attempts <= self.max_retries):
                return with_attempts(Result.from_dict(out["result"]), attempts)

    def submit(self, candidate: Candidate) -> None:
        self._futures[self._pool.submit(self._evaluate, candidate)] = candidate

    def free_slots(self) -> int:
        return max(0, self.workers - len(self._futures))

    def in_flight(self) -> int:
        return len(self._futures)

    def results(self, timeout: float | None = None) -> Iterator[tuple[Candidate, Result]]:
        end = None if timeout is None else time.monotonic() + timeout
        while self._futures:
            left = None if end is None else max(0.0, end - time.monotonic())
            slice_ = left if self.on_report is None else min(0.02, 1e9 if left is None else left)
            done, _ = cf.wait(list(self._futures), timeout=slice_,
                              return_when=cf.FIRST_COMPLETED)
            self._answer()
            if not done:
                if end is not None and time.monotonic() >= end:
                    return
                continue
            for fut in sorted(done, key=lambda f: self._futures[f].id):
                yield self._futures.pop(fut), fut.result()

    def shutdown(self) -> None:
        self._closing = True       # a waiting evaluation stops, then the threads are joined
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._futures.clear()
