"""Reading a stream's files as hostile input: an unknown key named with its nearest allowed one,
a data file opened only when it is a regular file, JSONL lines capped in length, checked as
UTF-8 and as JSON objects, each error naming the file and line. Used by the stream specs
(``spec.py``) and the retention sets (``retention.py``)."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from evocl.errors import StreamError, UserError
from evocl.safefile import open_file

#: The longest record (JSONL line, CSV field) a stream file may hold: one text to classify.
MAX_RECORD_BYTES = 1024 * 1024


def unknown_keys(keys: Any, allowed: tuple[str, ...], src: str, where: str) -> None:
    """StreamError for the first key not in ``allowed``, with the nearest allowed one."""
    for key in keys:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; expected one of {list(allowed)}"
            field = f"{where}.{key}" if where else str(key)
            raise StreamError(f"unknown key{hint}", source=src, field=field)


def open_data(path: Path, src: str) -> BinaryIO:
    """A stream's data file, opened only when it is a regular file (a FIFO would block)."""
    try:
        return open_file(path)
    except UserError as exc:
        raise StreamError(exc.rule, source=src, field=f"source.path ({path})") from None
    except OSError as exc:
        raise StreamError(f"cannot read ({exc.strerror or exc})", source=src,
                          field=f"source.path ({path})") from None


def jsonl_rows(path: Path, f: BinaryIO) -> Iterator[tuple[dict[str, Any], str]]:
    """Each non-blank line of a JSONL file as (object, "path:line"); closes ``f``."""
    with f:
        lineno = 0
        while True:
            raw = f.readline(MAX_RECORD_BYTES + 1)
            if not raw:
                break
            lineno += 1
            where = f"{path}:{lineno}"
            if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
                raise StreamError(f"record longer than the {MAX_RECORD_BYTES:,}-byte limit; "
                                  "refused", source=where, field="record")
            line = utf8(raw, where)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise StreamError(f"invalid JSON ({exc.msg})", source=where,
                                  field="record") from None
            except (ValueError, RecursionError) as exc:
                raise StreamError(f"invalid JSON ({type(exc).__name__})", source=where,
                                  field="record") from None
            if not isinstance(row, dict):
                raise StreamError("expected a JSON object per line", source=where, field="record")
            yield row, where


def utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StreamError(f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                          "save the file as UTF-8", source=where, field="record") from None
