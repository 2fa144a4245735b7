"""Code shared by the benchmark scripts of several experiments/ folders.

``write_json`` writes a result file atomically (temp file in the same folder, fsync,
replace) and records where it came from: the command, the git commit and the machine
(``provenance``), unless the script recorded its own.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def provenance() -> dict:
    """The command line, the repository's commit (None outside a git checkout) and the machine."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"command": " ".join(["python", *sys.argv]), "git_commit": commit,
            "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                        "cpus": os.cpu_count()}}


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Atomic: temp file in the same folder, fsync, replace; ``provenance`` added if absent."""
    data = {**data}
    data.setdefault("provenance", provenance())
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
