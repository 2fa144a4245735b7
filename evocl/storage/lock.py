"""Exclusive lock on a run directory: ``fcntl.flock`` on an open file, our pid written inside.

The kernel drops a flock when its process dies (even by ``kill -9``), so a lock left by a dead
process is simply taken over; a live owner makes a second process fail with a one-line error.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from evocl.errors import RunDirError

LOCK_NAME = "lock"


def live_owner(run_dir: str | os.PathLike[str]) -> int | None:
    """Pid of a live process holding the run (from the lock file), without taking the lock."""
    try:
        text = (Path(run_dir) / LOCK_NAME).read_text().strip()
        pid = int(text)
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


class RunLock:
    """Holds the lock of one run directory until :meth:`release` (or process exit)."""

    def __init__(self, run_dir: str | os.PathLike[str]):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise RunDirError(f"run directory {self.path.parent} is locked by pid {pid}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None
