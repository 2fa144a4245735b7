"""Exclusive lock on a run directory: ``fcntl.flock`` on an open file, our pid written inside.

The kernel drops a flock when its process dies (even by ``kill -9``), so a lock left by a dead
process is simply taken over; a live owner makes a second process fail with a one-line error.
The lock file is an entry of the run directory's box: a link or a FIFO named ``lock`` is
refused, never opened.
"""

from __future__ import annotations

import fcntl
import os

from evocl.errors import RunDirError, UserError
from evocl.safefile import Box

LOCK_NAME = "lock"


def live_owner(box: Box) -> int | None:
    """Pid of a live process holding the run (from the lock file), without taking the lock."""
    try:
        pid = int((box.read_bytes(LOCK_NAME, limit=32, missing_ok=True) or b"").strip())
    except (OSError, ValueError, UserError):
        return None
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return None
    except PermissionError:
        return pid
    return pid


class RunLock:
    """Holds the lock of one run directory until :meth:`release` (or process exit)."""

    def __init__(self, box: Box):
        self.box = box
        self.path = box.path(LOCK_NAME)
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        fd = self.box.fd(LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise RunDirError(f"run directory {self.box.root} is locked by pid {pid}") from None
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
