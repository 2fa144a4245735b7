"""A throwaway, real PostgreSQL server for the tests (not a test module).

Debian's ``postgresql`` package binaries (``/usr/lib/postgresql/<version>/bin/initdb`` and
``pg_ctl``; ``.ci/run`` installs the package where it can) build a cluster in a temporary
folder that listens on a free port of 127.0.0.1 only, with trust authentication for the user
``evocl``. ``initdb`` refuses to run as root, so as root the server runs as ``nobody``.
:func:`server_or_skip` skips the calling test with the reason when the binaries, the driver
or that user are missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

HOST = "127.0.0.1"
USER = "evocl"


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian layout, then PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(x) for x in Path(p).parent.parent.name.split(".")
                                  if x.isdigit()])
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def why_not() -> str | None:
    """None when a server can be started here, else the reason (a skip message)."""
    if find_bin_dir() is None:
        return ("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): "
                "`apt-get install -y postgresql` as root, as .ci/run does")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed: pip install 'evocl[postgres]'"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            return "running as root and there is no user 'nobody' for initdb"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class PostgresServer:
    """``start()`` / ``stop()`` / ``start()`` again on the same port and data; ``url(db)``."""

    def __init__(self) -> None:
        self.bin = find_bin_dir()
        if self.bin is None:
            raise RuntimeError(why_not())
        self.root = Path(tempfile.mkdtemp(prefix="evocl-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = free_port()
        self._user = "nobody" if os.geteuid() == 0 else None
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / tool), *args], user=self._user, cwd=self.root,
                              capture_output=True, text=True, timeout=120, check=check)

    def start(self) -> None:
        # fsync off: a test server needs no crash safety against the OS; synchronous_commit
        # stays on, so a commit the client saw survives the immediate stop of a test
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses={HOST} -c fsync=off "
                "-c full_page_writes=off -c max_connections=60")
        out = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts,
                        "-w", "-t", "60", "start", check=False)
        if out.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {out.stderr.strip()} "
                               f"{self.log.read_text()[-2000:] if self.log.exists() else ''}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg2://{USER}@{HOST}:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        import psycopg2
        conn = psycopg2.connect(host=HOST, port=self.port, user=USER, dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
