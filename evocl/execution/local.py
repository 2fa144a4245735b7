"""In-process executor: one evaluation at a time, for tests, debugging and single-worker runs.

Exceptions and non-finite objectives are isolated like in the Ray executor. Limits (known):
``eval_timeout`` cannot interrupt an in-process call, so it is enforced after the fact (an
evaluation that took longer is recorded as failed "timeout after Ns", but it was not cut
short; a call that hangs forever hangs the run); a crash of the process (segfault, os._exit,
OOM kill) ends the run, which resume then continues.

``pack=K`` (``--pack``, `evocl.cl.pack`): the target's pack trains up to K candidates at once,
in submission order; a candidate that finishes, is pruned or fails leaves and the next
submitted one takes its slot; each result is yielded the step it is known. ``eval_timeout``
and retries do not apply to packed candidates (a packed failure is deterministic).
"""

from __future__ import annotations

import collections
import time
from typing import Any, Callable, Iterator, Mapping

from evocl.errors import UserError
from evocl.execution.base import build_target, checked, evaluate_guarded, with_attempts
from evocl.records import Candidate, Result


class LocalExecutor:
    """Evaluates submitted candidates in the calling process, in submission order."""

    def __init__(self, target: str, target_kwargs: Mapping[str, Any] | None = None, *,
                 eval_timeout: float | None = None, max_retries: int = 1,
                 on_report: Callable[[Candidate, dict[str, Any]], bool] | None = None,
                 pack: int = 1, **_ignored: Any):
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
        self._pack = None
        if pack > 1:
            if not callable(getattr(self._target, "pack", None)):
                raise UserError(f"--pack {pack} needs a target that trains packs (objective cl), "
                                f"not {target}", field="pack")
            self._pack = self._target.pack(pack)
        self._done: collections.deque[tuple[Candidate, Result]] = collections.deque()

    def submit(self, candidate: Candidate) -> None:
        self._queue.append(candidate)

    def free_slots(self) -> int:
        if self._pack is not None:
            return max(0, self._pack.size - len(self._pack.members) - len(self._queue))
        return max(0, 1 - len(self._queue))

    def in_flight(self) -> int:
        members = len(self._pack.members) if self._pack is not None else 0
        return len(self._queue) + members + len(self._done)

    def results(self, timeout: float | None = None) -> Iterator[tuple[Candidate, Result]]:
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._pack is not None:
            yield from self._packed_results(deadline)
            return
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

    def _packed_results(self, deadline: float | None) -> Iterator[tuple[Candidate, Result]]:
        pack = self._pack
        assert pack is not None
        while self._queue or pack.members or self._done:
            while self._queue and pack.free > 0:
                cand = self._queue.popleft()
                hook = None if self.on_report is None else (
                    lambda report, c=cand: bool(self.on_report(c, report)))  # type: ignore[misc]
                res = pack.join(cand, on_task_end=hook)
                if res is not None:
                    self._done.append((cand, res))
            if not self._done:
                self._done.extend(pack.step())
            while self._done:
                cand, res = self._done.popleft()
                yield cand, with_attempts(checked(res), 1)
            if deadline is not None and time.monotonic() >= deadline:
                return

    def shutdown(self) -> None:
        self._queue.clear()
