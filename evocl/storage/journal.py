"""The append-only journal: one JSON object per line, flushed and fsync'd before it is used.

Events (the source of truth of a run):
    {"event": "ask", "n": k, "candidates": [Candidate.to_dict(), ...]}   one engine.ask(k) call
    {"event": "tell", "id": N, "result": Result.to_dict()}               one engine.tell
    {"event": "config", "changes": {...}}                                a resume changed a setting
    {"event": "report", "id": N, "report": {...}, "continue": bool}      a per-task report of a
        running candidate and the early-stop decision on it (``evocl.evolution.early_stop``),
        written before the worker continues or stops
    {"event": "snapshot", "file": "engine-<n>.json", "n_told": n, "sha256": hex}   an engine
        snapshot was written right after the events before this one; its bytes hash to
        ``sha256`` (a snapshot the journal does not name so is never used: rundir.py)

A journal is read as hostile bytes: a line that is not UTF-8, holds NUL bytes, is not JSON, or
is a known event with fields of the wrong shape is a BAD line; an event of a kind this evocl
does not know is kept as it is (a later evocl may write it). Readers skip bad lines with a
warning and keep every valid event after them. The writer (``Journal``, under the run lock)
never deletes anything: a torn last line (a crash in the middle of a write) is moved aside at
once; bad lines in the middle are moved aside by :meth:`Journal.commit_repair` only after the
runner has replayed the remaining events successfully, so an inconsistent journal is left
untouched. "Moved aside" means appended to ``journal.quarantine`` (one JSON record per bad
line: its byte offset, line number, reason and exact bytes in base64) before the journal is
rewritten without them.

A snapshot is named by a ``snapshot`` event right after the events it covers (its position
and the SHA-256 of its bytes), so it stays placed when bad lines before it are moved aside.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from evocl.errors import RunDirError, UserError
from evocl.safefile import Box

JOURNAL_NAME = "journal.jsonl"
QUARANTINE_NAME = "journal.quarantine"
SNAPSHOT_NAME = re.compile(r"^engine-(\d{1,18})\.json$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` with non-finite floats as strings ("nan", "inf"), tuples as lists."""
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


# ------------------------------------------------------------------------- event checks
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_ask(e: dict[str, Any]) -> str | None:
    from evocl.records import Candidate

    if not _is_int(e.get("n")) or e["n"] < 0:
        return f"'n' must be an int >= 0, got {e.get('n')!r:.40}"
    cands = e.get("candidates")
    if not isinstance(cands, list) or len(cands) > e["n"]:
        return "'candidates' must be a list of at most n candidates"
    for d in cands:
        if not isinstance(d, dict):
            return "a candidate is not a JSON object"
        try:
            Candidate.from_dict(d)
        except (UserError, KeyError, TypeError, ValueError, OverflowError) as exc:
            return f"bad candidate ({type(exc).__name__}: {exc})"
    return None


def _check_tell(e: dict[str, Any]) -> str | None:
    from evocl.records import Result

    if not _is_int(e.get("id")):
        return f"'id' must be an int, got {e.get('id')!r:.40}"
    if not isinstance(e.get("result"), dict):
        return "'result' must be a JSON object"
    try:
        Result.from_dict(e["result"])
    except (UserError, KeyError, TypeError, ValueError, OverflowError) as exc:
        return f"bad result ({type(exc).__name__}: {exc})"
    if "elapsed" in e and not (isinstance(e["elapsed"], (int, float))
                               and not isinstance(e["elapsed"], bool)):
        return "'elapsed' must be a number"
    return None


def _check_config(e: dict[str, Any]) -> str | None:
    return None if isinstance(e.get("changes"), dict) else "'changes' must be a JSON object"


def _check_snapshot(e: dict[str, Any]) -> str | None:
    name, digest = e.get("file"), e.get("sha256")
    if not isinstance(name, str) or not SNAPSHOT_NAME.match(name):
        return f"'file' must be a name engine-<n>.json, got {name!r:.40}"
    if not _is_int(e.get("n_told")) or e["n_told"] < 0:
        return f"'n_told' must be an int >= 0, got {e.get('n_told')!r:.40}"
    if not isinstance(digest, str) or not _HEX64.match(digest):
        return f"'sha256' must be 64 hex digits, got {digest!r:.70}"
    return None


def _check_report(e: dict[str, Any]) -> str | None:
    if not _is_int(e.get("id")):
        return f"'id' must be an int, got {e.get('id')!r:.40}"
    report = e.get("report")
    if not isinstance(report, dict):
        return "'report' must be a JSON object"
    for key in ("tasks_seen", "n_tasks"):
        if not _is_int(report.get(key)) or report[key] < 1:
            return f"'report.{key}' must be an int >= 1, got {report.get(key)!r:.40}"
    if not isinstance(e.get("continue"), bool):
        return f"'continue' must be true or false, got {e.get('continue')!r:.40}"
    return None


#: Shape checks of the events evocl writes; a new kind of event adds its check here.
EVENT_CHECKS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "ask": _check_ask, "tell": _check_tell, "config": _check_config, "report": _check_report,
    "snapshot": _check_snapshot}


def parse_line(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(event, None) for a good line, (None, reason) for a bad one. Never raises."""
    if not line.strip():
        return None, "empty line"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1})"
    if "\x00" in text:
        return None, "holds NUL bytes"
    try:
        obj = json.loads(text)
    except RecursionError:
        return None, "JSON nested too deeply"
    except ValueError as exc:  # JSONDecodeError, or an int with too many digits
        return None, f"not JSON ({getattr(exc, 'msg', exc)})"
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        return None, "not a journal event (a JSON object with an 'event' name)"
    check = EVENT_CHECKS.get(obj["event"])
    try:
        problem = check(obj) if check is not None else None
    except RecursionError:
        problem = "nested too deeply"
    if problem:
        return None, f"malformed {obj['event']} event: {problem}"
    return obj, None


@dataclass(frozen=True)
class BadLine:
    """A line of the journal that is not a usable event."""

    offset: int      # byte offset of its first byte
    line: int        # 1-based line number
    data: bytes      # its exact bytes (newline included when it had one)
    reason: str

    def describe(self) -> str:
        return f"line {self.line} (byte {self.offset}): {self.reason}"


@dataclass
class JournalScan:
    """What a journal's bytes hold: good events (with their slot and byte span) and bad lines."""

    events: list[dict[str, Any]] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    n_slots: int = 0
    size: int = 0

    @property
    def tail_only(self) -> bool:
        """Every bad line comes after every good event (a torn tail, safe to cut at once)."""
        return bool(self.bad) and (not self.spans or self.bad[0].offset >= self.spans[-1][1])

    @property
    def torn_tail(self) -> bool:
        """The only bad line is the last one (a crash in the middle of a write)."""
        return self.tail_only and len(self.bad) == 1

    def summary(self) -> str:
        first = self.bad[0]
        more = f" and {len(self.bad) - 1} more" if len(self.bad) > 1 else ""
        kind = "torn last line" if self.torn_tail else "bad line"
        return f"{kind} at {first.describe()}{more}"


def scan_journal(data: bytes) -> JournalScan:
    """Classify every line of a journal (a missing final newline makes the last line bad)."""
    out = JournalScan(size=len(data))
    pos, lineno = 0, 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        stop = len(data) if end < 0 else end + 1
        lineno += 1
        line = data[pos:stop]
        if end < 0:
            event, reason = None, f"torn last line ({len(line)} bytes without newline)"
        else:
            event, reason = parse_line(line[:-1])
        if event is not None:
            out.events.append(event)
            out.slots.append(out.n_slots)
            out.spans.append((pos, stop))
        else:
            out.bad.append(BadLine(pos, lineno, line, str(reason)))
        out.n_slots += 1
        pos = stop
    return out


def read_events(box: Box, *, live: bool = False) -> list[dict[str, Any]]:
    """Every good event of a run's journal, read-only; bad lines are skipped with a warning.

    ``live``: the run is being written right now, so an unfinished last line is expected and
    skipped silently.
    """
    path = box.path(JOURNAL_NAME)
    try:
        data = box.read_bytes(JOURNAL_NAME, missing_ok=True) or b""
    except OSError as exc:
        raise RunDirError(f"cannot read ({exc.strerror or exc})", source=str(path)) from None
    scan = scan_journal(data)
    if scan.bad and not (live and scan.torn_tail):
        warnings.warn(f"{path}: {scan.summary()}; skipped (every valid event is kept; "
                      f"`evocl resume` moves bad lines to {QUARANTINE_NAME})", stacklevel=2)
    return scan.events


def _quarantine_record(bad: BadLine, journal: Path) -> dict[str, Any]:
    return {"journal": journal.name, "offset": bad.offset, "line": bad.line,
            "length": len(bad.data), "reason": bad.reason,
            "quarantined_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "bytes_b64": base64.b64encode(bad.data).decode("ascii"),
            "text": bad.data[:200].decode("utf-8", "replace")}


def write_error(path: Path, exc: OSError, what: str = "write") -> RunDirError:
    """One line for a failed write: which file, why, and that nothing saved was lost."""
    why = exc.strerror or type(exc).__name__
    return RunDirError(f"cannot {what} ({why}); nothing already saved was lost; fix the cause "
                       f"(space, permissions) and run `evocl resume {path.parent}`",
                       source=str(path))


class Journal:
    """Writer of a run's journal (only the process holding the run lock writes), an entry of
    the run directory's box: a link or a FIFO in its place is refused, never followed.

    Bad lines found on opening stay in the file (``pending``) until :meth:`commit_repair`
    moves them to journal.quarantine; nothing is appended before that.
    """

    def __init__(self, box: Box):
        self.box = box
        self.path = box.path(JOURNAL_NAME)
        self.quarantine_path = box.path(QUARANTINE_NAME)
        self.events: list[dict[str, Any]] = []
        self.pending: JournalScan | None = None
        self._data = b""
        self._f: Any = None
        try:
            self._load()
            self._f = box.open(JOURNAL_NAME, "ab")
        except OSError as exc:
            raise write_error(self.path, exc, "open the journal for writing") from None

    def _load(self) -> None:
        data = self.box.read_bytes(JOURNAL_NAME, missing_ok=True)
        if data is None:
            return
        scan = scan_journal(data)
        self.events = scan.events
        if scan.bad:
            self.pending, self._data = scan, data

    def bad_before(self, index: int) -> int:
        """How many bad lines awaiting the quarantine lie before event ``index``."""
        scan = self.pending
        if scan is None:
            return 0
        end = scan.spans[index][0] if index < len(scan.spans) else scan.size
        return sum(1 for b in scan.bad if b.offset < end)

    # -- repair ----------------------------------------------------------------------------
    def _quarantine(self, bad: list[BadLine]) -> None:
        """Append the bad lines to journal.quarantine (fsync'd); skips records already there."""
        seen: set[tuple[int, str]] = set()
        old = self.box.read_bytes(QUARANTINE_NAME, missing_ok=True) or b""
        for line in old.splitlines():
            try:
                rec = json.loads(line)
                seen.add((int(rec["offset"]), str(rec["bytes_b64"])))
            except (ValueError, KeyError, TypeError):
                continue
        records = [r for r in (_quarantine_record(b, self.path) for b in bad)
                   if (r["offset"], r["bytes_b64"]) not in seen]
        if not records:
            return
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        with self.box.open(QUARANTINE_NAME, "ab") as f:
            f.write(text.encode("utf-8"))
            os.fsync(f.fileno())
        self.box.fsync()

    def commit_repair(self) -> list[BadLine]:
        """Move the pending bad lines to journal.quarantine, then drop them from the journal
        (cut the file when they are all at its end, else rewrite it atomically). Call once the
        events without them have replayed consistently. Returns the lines moved."""
        scan = self.pending
        if scan is None:
            return []
        try:
            self._quarantine(scan.bad)
            self._f.close()
            if scan.tail_only:
                with self.box.open(JOURNAL_NAME, "r+b") as f:
                    f.truncate(scan.bad[0].offset)
                    f.flush()
                    os.fsync(f.fileno())
            else:
                self.box.write_atomic(JOURNAL_NAME,
                                      b"".join(self._data[s:e] for s, e in scan.spans))
            self._f = self.box.open(JOURNAL_NAME, "ab")
        except OSError as exc:
            raise write_error(self.path, exc, "move bad lines to the quarantine") from None
        self.pending, self._data = None, b""
        return scan.bad

    # -- writing ---------------------------------------------------------------------------
    def append(self, event: dict[str, Any]) -> None:
        """Write one event durably (returns only after fsync); RunDirError when it cannot."""
        if self.pending is not None:
            raise RuntimeError("journal has bad lines awaiting commit_repair(); not appending")
        try:
            line = json.dumps(event, separators=(",", ":"), allow_nan=False)
        except ValueError:  # NaN/inf somewhere in the metrics: keep them readable as strings
            line = json.dumps(json_safe(event), separators=(",", ":"), allow_nan=False)
        data = (line + "\n").encode("utf-8")
        try:
            view = memoryview(data)
            while view:
                view = view[self._f.write(view):]
            os.fsync(self._f.fileno())
        except OSError as exc:
            raise write_error(self.path, exc) from None
        self.events.append(event)

    def close(self) -> None:
        if self._f is not None and not self._f.closed:
            self._f.close()
