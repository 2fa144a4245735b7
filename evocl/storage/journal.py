"""The append-only journal: one JSON object per line, flushed and fsync'd before it is used.

Events (the source of truth of a run):
    {"event": "ask", "n": k, "candidates": [Candidate.to_dict(), ...]}   one engine.ask(k) call
    {"event": "tell", "id": N, "result": Result.to_dict()}               one engine.tell
    {"event": "config", "changes": {...}}                                a resume changed a setting
    {"event": "report", "id": N, "report": {...}, "continue": bool}      a per-task report of a
        running candidate and the early-stop decision on it (``evocl.evolution.early_stop``),
        written before the worker continues or stops

A crash can leave a torn last line (no newline, or not JSON). Readers drop it with a warning;
the writer also truncates the file to the last good line before appending, so the next event
never lands glued to a torn one.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

JOURNAL_NAME = "journal.jsonl"


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` with non-finite floats as strings ("nan", "inf"), tuples as lists."""
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def good_prefix(data: bytes) -> tuple[list[dict[str, Any]], int, str | None]:
    """Parse journal bytes; return (events, length of the good prefix, problem or None).

    Only the last line may be bad (a torn write); a bad line followed by good ones is
    corruption, reported as a problem with everything after it ignored.
    """
    events: list[dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            return events, pos, f"torn last line ({len(data) - pos} bytes without newline)"
        line = data[pos:end]
        if line.strip():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = None
            if not isinstance(obj, dict) or "event" not in obj:
                last = data.find(b"\n", end + 1) < 0 and not data[end + 1:].strip()
                kind = "torn last line" if last else f"corrupt line at byte {pos}"
                return events, pos, f"{kind} (not a JSON event)"
            events.append(obj)
        pos = end + 1
    return events, pos, None


def read_events(path: str | os.PathLike[str], *, live: bool = False) -> list[dict[str, Any]]:
    """All good events of a journal (read-only; a torn last line is dropped with a warning).

    ``live``: the run is being written right now, so an unfinished last line is expected and
    dropped silently.
    """
    path = Path(path)
    if not path.exists():
        return []
    events, _, problem = good_prefix(path.read_bytes())
    if problem and not (live and problem.startswith("torn last line")):
        warnings.warn(f"{path}: {problem}; ignored", stacklevel=2)
    return events


class Journal:
    """Writer of a run's journal (only the process holding the run lock writes)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.events: list[dict[str, Any]] = []
        self._repair_and_load()
        self._f = open(self.path, "ab")

    def _repair_and_load(self) -> None:
        if not self.path.exists():
            self.path.touch()
            return
        data = self.path.read_bytes()
        self.events, good, problem = good_prefix(data)
        if problem:
            warnings.warn(f"{self.path}: {problem}; dropped (file truncated to the last good "
                          f"line, {good} bytes)", stacklevel=3)
            with open(self.path, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())

    def append(self, event: dict[str, Any]) -> None:
        """Write one event durably (returns only after fsync)."""
        try:
            line = json.dumps(event, separators=(",", ":"), allow_nan=False)
        except ValueError:  # NaN/inf somewhere in the metrics: keep them readable as strings
            line = json.dumps(json_safe(event), separators=(",", ":"), allow_nan=False)
        line += "\n"
        self._f.write(line.encode("utf-8"))
        self._f.flush()
        os.fsync(self._f.fileno())
        self.events.append(event)

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
