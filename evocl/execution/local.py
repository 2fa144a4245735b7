"""In-process executor: one evaluation at a time, for tests, debugging and single-worker runs.

Exceptions and non-finite objectives are isolated like in the Ray executor. Limits (known):
``eval_timeout`` cannot interrupt an in-process call, so it is enforced after the fact (an
evaluation that took longer is recorded as failed "timeout after Ns", but it was not cut
short; a call that hangs forever hangs the run); a crash of the process (segfault, os._exit,
OOM kill) ends the run, which resume then continues.
"""

from __future__ import annotations

import collections
import time
from typing import Any, Callable, Iterator, Mapping

from evocl.errors import UserError
from evocl.execution.base import build_target, evaluate_guarded, with_attempts
from evocl.records import Candidate, Result


class LocalExecutor:
    """Evaluates submitted candidates in the calling process, in submission order."""

    def __init__(self, target: str, target_kwargs: Mapping[str, Any] | None = None, *,
                 eval_timeout: float | None = None, max_retries: int = 1,
                 on_report: Callable[[Candidate, dict[str, Any]], bool] | None = None,
                 **_ignored: Any):
        self.target_path = target
        self.eval_timeout = eval_timeout
        self.max_retries = max_retries
        self.on_report = on_report
        try:
            self._target = build_target(target, target_kwargs or {})
        except UserError:
            raise
        except Exception as e:  # a target that cannot be built is the user's to fix
            raise UserError(f"building {target} failed: {type(e).__name__}: {e}",
                            field="objective") from e
        self._queue: collections.deque[Candidate] = collections.deque()

    def submit(self, candidate: Candidate) -> None:
        self._queue.append(candidate)

    def free_slots(self) -> int:
        return max(0, 1 - len(self._queue))

    def in_flight(self) -> int:
        return len(self._queue)

    def results(self, timeout: float | None = None) -> Iterator[tuple[Candidate, Result]]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue:
            cand = self._queue[0]
            attempts = 0
            while True:
                attempts += 1
                t0 = time.monotonic()
                hook = None if self.on_report is None else (
                    lambda report, c=cand: bool(self.on_report(c, report)))  # type: ignore[misc]
                out = evaluate_guarded(self._target, cand.to_dict(), on_task_end=hook)
                res = Result.from_dict(out["result"])
                took = time.monotonic() - t0
                if self.eval_timeout is not None and took > self.eval_timeout:
                    res = Result.failed(f"timeout after {self.eval_timeout:g}s "
                                        f"(local executor: took {took:.1f}s)", wall_time=took)
                    break
                if not (out["transient"] and attempts <= self.max_retries):
                    break
            self._queue.popleft()
            yield cand, with_attempts(res, attempts)
            if deadline is not None and time.monotonic() >= deadline:
                return

    def shutdown(self) -> None:
        self._queue.clear()
