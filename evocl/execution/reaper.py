"""Ray ends with its driver: a watchdog ends every process of the Ray instance a run started.

Ray's own fate sharing (``PR_SET_PDEATHSIG``) covers the processes the driver spawns itself
(GCS server, raylet); after a SIGKILL of the driver the raylet's children -- the actors, in the
middle of an evaluation, and Ray's agents -- were left running (4-5 per kill, issue 18).

How: before it starts Ray, the driver puts ``EVOCL_RAY_SESSION=<128-bit random token>`` in its
environment, so that every process of that Ray instance inherits it (Ray starts its processes
with its own environment), and starts this watchdog (``python -m evocl.execution.reaper
TOKEN``) in a session of its own, reading a pipe the driver holds open. When the pipe closes --
the driver shut Ray down, raised, or was SIGKILLed -- the watchdog sends SIGTERM, then SIGKILL
after ``GRACE_S``, to each process whose ``/proc/PID/environ`` holds that exact token: Ray
processes of that run, and no other process (the watchdog's own environment lacks it; the
driver's ``/proc`` environment is the one it was started with, without it). Linux only (it
needs ``/proc``); elsewhere nothing is started. A joined cluster (``--ray-address``) is never
touched: its processes were not started by the run.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

ENV = "EVOCL_RAY_SESSION"
GRACE_S = 2.0
SWEEP_S = 15.0


class Reaper:
    """Starts the watchdog and marks this process's future children with the token."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)
        self._pipe: IO[bytes] | None = None
        self._proc: subprocess.Popen | None = None
        self._saved = os.environ.get(ENV)
        if not Path("/proc/self/environ").exists():
            return
        env = {k: v for k, v in os.environ.items() if k != ENV}
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "evocl.execution.reaper", self.token],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=env, start_new_session=True, close_fds=True,
                cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        except OSError:
            return  # no watchdog: Ray still stops on a normal shutdown
        self._pipe = self._proc.stdin
        os.environ[ENV] = self.token

    def close(self) -> None:
        """Ray has been shut down: unmark, and let the watchdog end what is left and exit."""
        if self._saved is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = self._saved
        if self._pipe is not None:
            try:
                self._pipe.close()
            except OSError:
                pass
            self._pipe = None


def marked(token: str) -> list[int]:
    """Pids of the processes (other than this one) whose environment holds ``token``."""
    want = f"{ENV}={token}".encode()
    me, out = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                if want in f.read().split(b"\0"):
                    out.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return out


def sweep(token: str, grace: float = GRACE_S, limit: float = SWEEP_S) -> int:
    """SIGTERM, then SIGKILL after ``grace``, to every process holding ``token`` (repeated
    until none is left or ``limit`` seconds passed: a dying raylet may start one more)."""
    ended: set[int] = set()
    end = time.monotonic() + limit
    first: dict[int, float] = {}
    while time.monotonic() < end:
        pids = marked(token)
        if not pids:
            break
        now = time.monotonic()
        for pid in pids:
            sig = signal.SIGKILL if now - first.setdefault(pid, now) >= grace else signal.SIGTERM
            try:
                os.kill(pid, sig)
                ended.add(pid)
            except OSError:
                pass
        time.sleep(0.2)
    return len(ended)


def main(argv: list[str]) -> int:
    token = argv[0]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the driver's terminal: wait
    try:
        while sys.stdin.buffer.read(65536):
            pass  # the driver never writes; EOF is its exit
    except OSError:
        pass
    sweep(token)
    return 0


if __name__ == "__main__":  # pragma: no cover - the watchdog process
    sys.exit(main(sys.argv[1:]))
