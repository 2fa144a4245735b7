"""Crash-safe file writes: temp file in the same directory, fsync, os.replace, fsync the directory.

A reader sees either the old file or the new one, never a half-written one, even after a
power cut or a ``kill -9`` in the middle of a write. The writing itself is
``evocl.safefile``'s (``Box.write_atomic`` for the entries of a folder evocl owns).
"""

from __future__ import annotations

import json
import os
from typing import Any

from evocl.safefile import atomic_write


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or a new file in ``path`` durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically. ``path`` must be a regular file or absent:
    a symbolic link, FIFO or folder there is refused (``evocl.safefile``), never replaced."""
    atomic_write(path, data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_bytes(data: Any, *, allow_nan: bool = False) -> bytes:
    """``data`` as the JSON evocl writes (keys sorted, one final newline), UTF-8."""
    return (json.dumps(data, sort_keys=True, allow_nan=allow_nan) + "\n").encode("utf-8")


def atomic_write_json(path: str | os.PathLike[str], data: Any, *, allow_nan: bool = False) -> None:
    """Replace ``path`` with ``data`` as JSON (NaN/inf refused unless ``allow_nan``)."""
    atomic_write_bytes(path, json_bytes(data, allow_nan=allow_nan))
