"""A worker's pack behind a one-candidate call (Ray actors with ``--pack K``).

A Ray actor with ``max_concurrency=K`` receives up to K ``evaluate`` calls at once, each in its
own thread. `PackServer.evaluate` hands its candidate to one driver thread that owns the
target's pack (`evocl.cl.pack.Pack`): it joins waiting candidates into free slots (in arrival
order), steps the pack, and hands each Result back to the call that waits for it. So the
executor keeps its one-call-per-candidate protocol (timeouts, retries, per-task reports through
the broker), while the candidates of one actor train together on one backbone.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable

from evocl.records import Candidate, Result


class PackServer:
    def __init__(self, target: Any, size: int):
        self.pack = target.pack(size)
        self._cond = threading.Condition()
        self._waiting: collections.deque[tuple[Candidate, Any]] = collections.deque()
        self._done: dict[int, Result] = {}
        self._error: str | None = None
        threading.Thread(target=self._loop, name="evocl-pack", daemon=True).start()

    def __call__(self, candidate: Candidate,
                 on_task_end: Callable[[dict[str, Any]], bool] | None = None) -> Result:
        """Train ``candidate`` in the pack; returns its Result when it leaves."""
        with self._cond:
            self._waiting.append((candidate, on_task_end))
            self._cond.notify_all()
            while candidate.id not in self._done and self._error is None:
                self._cond.wait()
            if candidate.id in self._done:
                return self._done.pop(candidate.id)
            return Result.failed(self._error or "pack stopped")

    def _loop(self) -> None:
        pack = self.pack
        try:
            while True:
                with self._cond:
                    while not self._waiting and not pack.members:
                        self._cond.wait()
                    joining = []
                    while self._waiting and len(joining) < pack.free:
                        joining.append(self._waiting.popleft())
                finished = []
                for cand, hook in joining:
                    res = pack.join(cand, on_task_end=hook)
                    if res is not None:
                        finished.append((cand, res))
                finished += pack.step()
                if finished:
                    with self._cond:
                        for cand, res in finished:
                            self._done[cand.id] = res
                        self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - every waiting call gets the reason
            with self._cond:
                self._error = f"pack driver stopped: {type(exc).__name__}: {exc}"[:300]
                self._cond.notify_all()
