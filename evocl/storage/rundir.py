"""The run directory: the one source of truth of a search, written so it survives any crash.

    run.yaml             RunConfig + the space (to_dict) + objectives + fingerprints + versions
                         + the history of settings changed by resumes
    journal.jsonl        append-only events (see journal.py), fsync'd before they are used
    snapshots/engine-<n_told>.json   engine.state() now and then (atomic; the last 3 kept)
    lock                 flock + pid of the owner
    optuna.journal       Optuna mirror for optuna-dashboard (a view, see optuna_mirror.py)
    report/, exports/    what `evocl report` / `evocl export --out RUN/exports/...` write

Nothing here is pickled: YAML (safe_dump) and JSON only.

A run directory is a closed box (``evocl.safefile.Box``): the directory itself may be reached
through a link its user named, but every entry in it is opened without following a link, only
regular files (and real folders) are read or written, and nothing is written outside it. A
link, FIFO or device under one of the names above is refused with one line, never used.

Snapshots are a cache, the journal is the truth: a snapshot is used only when the journal
names it (a ``snapshot`` event right after the events it covers, with the SHA-256 of its
bytes), so a snapshot edited, truncated, swapped or copied from elsewhere is ignored with a
warning and the engine is rebuilt from the journal. The runner also checks what it can read of
the state against run.yaml and the journal (``runner._check_snapshot``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import yaml

from evocl.errors import RunDirError, UnsafePathError, UserError
from evocl.records import Candidate, Result, RunConfig
from evocl.safefile import Box
from evocl.storage.atomic import json_bytes
from evocl.storage.journal import (JOURNAL_NAME, QUARANTINE_NAME, SNAPSHOT_NAME, BadLine,
                                   Journal, write_error)
from evocl.storage.lock import LOCK_NAME, RunLock

FORMAT_VERSION = 1
#: format of a snapshot file (1: before snapshots were named in the journal; never used now)
SNAPSHOT_FORMAT = 2
RUN_FILE = "run.yaml"
SNAPSHOT_DIR = "snapshots"
KEEP_SNAPSHOTS = 3
#: The names a run directory may hold, each of one kind; anything else under one of them (a
#: link, a FIFO, a folder for a file) is refused before the run is read or written.
LAYOUT = {RUN_FILE: "file", JOURNAL_NAME: "file", QUARANTINE_NAME: "file", LOCK_NAME: "file",
          SNAPSHOT_DIR: "dir", "optuna.journal": "file", "optuna.journal.flock": "file",
          "report": "dir", "exports": "dir"}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _evocl_version() -> str:
    try:
        from evocl import __version__
        return str(__version__)
    except ImportError:  # pragma: no cover
        return "unknown"


def space_summary(space: Any) -> dict[str, Any]:
    """What storage needs of a space without importing evocl.space: objectives, constraints."""
    return {
        "objectives": [{"name": o.name, "direction": o.direction, "ref": getattr(o, "ref", None)}
                       for o in space.objectives],
        "constraints": [{"name": c.name, "max": c.max, "min": c.min}
                        for c in getattr(space, "constraints", ())],
    }


def check_layout(box: Box) -> None:
    """UnsafePathError (one line) when an entry of the run directory is a link or of the wrong
    kind (see LAYOUT); the root itself must be a directory."""
    for name, want in LAYOUT.items():
        box.check(name, want)


def load_run_file(path: Path) -> dict[str, Any]:
    """Read and check run.yaml; RunDirError (one line) when this is not a usable evocl run.

    run.yaml is data from wherever the run directory came from: read with the size and alias
    limits of every YAML evocl reads, and its ``config`` checked field by field. The run
    directory's layout is checked first (a closed box: ``check_layout``).
    """
    from evocl.yamlsafe import MAX_BYTES, decode_text, load_text

    run_file = path / RUN_FILE
    if not path.is_dir():
        raise RunDirError(f"{path} is not a directory")
    box = Box(path)
    check_layout(box)
    if not box.check(RUN_FILE):
        raise RunDirError(f"{path} is not an evocl run directory (no {RUN_FILE})")
    try:
        data = box.read_bytes(RUN_FILE, limit=MAX_BYTES) or b""
        meta = load_text(decode_text(data, str(run_file), "run file"), str(run_file))
    except OSError as exc:
        raise RunDirError(f"cannot read ({exc.strerror or exc})", source=str(run_file)) from None
    except UserError as e:
        raise RunDirError(e.rule, source=e.source, field=e.field) from None
    if not isinstance(meta, dict) or meta.get("kind") != "evocl-run":
        raise RunDirError(f"{run_file}: not an evocl run file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise RunDirError(f"{run_file}: format_version {meta.get('format_version')!r:.40} is not "
                          f"supported (this evocl reads {FORMAT_VERSION})")
    for key, kind in (("config", dict), ("space", dict), ("objectives", list),
                      ("constraints", list), ("fingerprints", dict), ("changes", list)):
        if key in meta and not isinstance(meta[key], kind) and not (
                key not in ("config", "space") and meta[key] is None):
            raise RunDirError(f"must be a {'mapping' if kind is dict else 'list'}, got "
                              f"{type(meta[key]).__name__}", source=str(run_file), field=key)
    if not isinstance(meta.get("config"), dict):
        raise RunDirError("missing mapping", source=str(run_file), field="config")
    try:
        RunConfig.from_dict(meta["config"])
    except UserError as e:
        raise RunDirError(e.rule, source=str(run_file), field=f"config.{e.field}") from None
    return meta


def _create_error(path: Path, exc: OSError) -> RunDirError:
    why = exc.strerror or type(exc).__name__
    return RunDirError(f"cannot create a run directory here ({why}); choose a --run-dir on a "
                       f"writable file system", source=str(path))


class RunDir:
    """A run directory opened for writing (the lock is held until :meth:`close`)."""

    def __init__(self, path: Path, meta: dict[str, Any], lock: RunLock):
        self.path = path
        self.box = lock.box
        self.meta = meta
        self._lock = lock
        self.journal = Journal(self.box)
        scan = self.journal.pending
        if scan is not None and scan.tail_only:  # a torn tail: nothing after it, cut it now
            warnings.warn(f"{self.journal.path}: {scan.summary()}; moved to {QUARANTINE_NAME} "
                          f"(file cut to the last good line, {scan.bad[0].offset} bytes)",
                          stacklevel=3)
            self.journal.commit_repair()

    @property
    def pending_repair(self) -> str | None:
        """What is wrong in the middle of the journal (bad lines with valid events after them),
        or None. Replay the events first, then :meth:`commit_repair`."""
        scan = self.journal.pending
        return None if scan is None else scan.summary()

    def commit_repair(self) -> list[BadLine]:
        """Move the journal's bad lines to journal.quarantine (every valid event is kept)."""
        bad = self.journal.commit_repair()
        if bad:
            warnings.warn(f"{self.journal.path}: {len(bad)} bad line(s) moved to "
                          f"{QUARANTINE_NAME} ({bad[0].describe()}"
                          f"{' ...' if len(bad) > 1 else ''}); all {len(self.events)} valid "
                          "events kept", stacklevel=2)
        return bad

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], run_config: RunConfig, space: Any,
               fingerprints: dict[str, Any] | None = None) -> "RunDir":
        """Start a new run in ``path`` (created if missing; refused if it already holds one)."""
        path = Path(path)
        box = Box(path)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} exists and is not a directory")
        if path.is_dir():
            check_layout(box)
        if box.check(RUN_FILE) or box.check(JOURNAL_NAME):
            raise RunDirError(f"{path} already holds a run; use `evocl resume {path}`")
        try:
            box.makedirs()
            lock = RunLock(box).acquire()
        except OSError as exc:  # read-only mount, /proc, a missing parent that cannot be made
            raise _create_error(path, exc) from None
        try:
            if box.check(RUN_FILE):  # lost a race with another creator
                raise RunDirError(f"{path} already holds a run; use `evocl resume {path}`")
            fp = {"space": getattr(space, "fingerprint", None), "stream": None,
                  "backbone": None}
            fp.update(fingerprints or {})
            meta = {
                "kind": "evocl-run",
                "format_version": FORMAT_VERSION,
                "evocl_version": _evocl_version(),
                "created": _now(),
                "config": run_config.to_dict(),
                "space": space.to_dict(),
                **space_summary(space),
                "fingerprints": fp,
                "changes": [],
            }
            try:
                box.makedirs(SNAPSHOT_DIR)
                box.write_atomic(RUN_FILE, yaml.safe_dump(meta, sort_keys=False).encode("utf-8"))
            except OSError as exc:
                raise _create_error(path, exc) from None
            return cls(path, meta, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "RunDir":
        """Open an existing run to continue it (takes the lock; repairs a torn journal tail)."""
        path = Path(path)
        meta = load_run_file(path)
        box = Box(path)
        try:
            lock = RunLock(box).acquire()
        except OSError as exc:
            raise write_error(path / LOCK_NAME, exc, "take the run's lock") from None
        try:
            try:
                box.makedirs(SNAPSHOT_DIR)
            except OSError as exc:
                raise write_error(path / SNAPSHOT_DIR, exc, "create") from None
            return cls(path, meta, lock)
        except BaseException:
            lock.release()
            raise

    def close(self) -> None:
        self.journal.close()
        self._lock.release()

    def discard(self) -> bool:
        """Delete a run that never asked anything (setup failed right after ``create``).

        Only evocl's own files are removed, and only while the journal holds no ask or tell;
        returns whether the run was removed. Never touches a run holding any result.
        """
        if any(e.get("event") != "snapshot" for e in self.journal.events):
            return False
        self.journal.close()
        for name in (RUN_FILE, JOURNAL_NAME, "optuna.journal", "optuna.journal.flock"):
            _unlink_quietly(self.box, name)
        for name in snapshot_names(self.box):
            _unlink_quietly(self.box, f"{SNAPSHOT_DIR}/{name}")
        self.box.rmdir(SNAPSHOT_DIR)
        self._lock.release()
        _unlink_quietly(self.box, LOCK_NAME)
        self.box.rmdir()  # only when nothing else is in it
        return True

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- content -------------------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        return RunConfig.from_dict(self.meta["config"])

    @property
    def space_dict(self) -> dict[str, Any]:
        return self.meta["space"]

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.journal.events

    def record_changes(self, new_config: RunConfig, changes: dict[str, tuple[Any, Any]]) -> None:
        """Save a resume's new settings in run.yaml (history in ``changes``) and the journal."""
        if not changes:
            return
        self.meta["config"] = new_config.to_dict()
        self.meta.setdefault("changes", []).append(
            {"at": _now(), "n_told": self.n_told(),
             **{k: {"old": o, "new": n} for k, (o, n) in changes.items()}})
        self._write_meta()
        self.journal.append({"event": "config",
                             "changes": {k: [o, n] for k, (o, n) in changes.items()}})

    def set_fingerprint(self, name: str, value: Any) -> None:
        self.meta.setdefault("fingerprints", {})[name] = value
        self._write_meta()

    def _write_meta(self) -> None:
        try:
            self.box.write_atomic(RUN_FILE,
                                  yaml.safe_dump(self.meta, sort_keys=False).encode("utf-8"))
        except OSError as exc:
            raise write_error(self.path / RUN_FILE, exc) from None

    def n_told(self) -> int:
        return sum(1 for e in self.journal.events if e.get("event") == "tell")

    # -- journal -------------------------------------------------------------------------
    def append_ask(self, n: int, candidates: list[Candidate]) -> None:
        self.journal.append({"event": "ask", "n": int(n),
                             "candidates": [c.to_dict() for c in candidates]})

    def append_tell(self, candidate_id: int, result: Result, elapsed: float | None = None) -> None:
        """``elapsed``: search wall time so far, all sessions (for max_wall_time on resume)."""
        event: dict[str, Any] = {"event": "tell", "id": int(candidate_id),
                                 "result": result.to_dict()}
        if elapsed is not None:
            event["elapsed"] = round(float(elapsed), 3)
        self.journal.append(event)

    def append_report(self, candidate_id: int, report: dict[str, Any], decision: bool) -> None:
        """A running candidate's per-task report and the early-stop decision on it (journaled
        before the worker is told, so a resume replays the decision instead of re-making it)."""
        self.journal.append({"event": "report", "id": int(candidate_id), "report": report,
                             "continue": bool(decision)})

    # -- snapshots -----------------------------------------------------------------------
    def save_snapshot(self, n_told: int, state: dict[str, Any]) -> Path | None:
        """Save engine state as it is after the journal's current events, then name it in the
        journal (a ``snapshot`` event with its SHA-256); keep the last 3.

        A snapshot only makes resume faster: one that cannot be written is a warning.
        """
        name = f"engine-{int(n_told)}.json"
        target = self.path / SNAPSHOT_DIR / name
        data = json_bytes({"format_version": SNAPSHOT_FORMAT, "n_told": int(n_told),
                           "engine": state}, allow_nan=True)
        try:
            self.box.write_atomic(f"{SNAPSHOT_DIR}/{name}", data)
        except (OSError, UnsafePathError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else exc.rule
            warnings.warn(f"{target}: snapshot not written ({why or exc}); resume replays the "
                          "journal instead", stacklevel=2)
            return None
        self.journal.append({"event": "snapshot", "file": name, "n_told": int(n_told),
                             "sha256": hashlib.sha256(data).hexdigest()})
        for old in snapshot_names(self.box)[:-KEEP_SNAPSHOTS]:
            _unlink_quietly(self.box, f"{SNAPSHOT_DIR}/{old}")
        return target

    def load_snapshot(self, check: Callable[[dict[str, Any], int], str | None] | None = None,
                      ) -> tuple[dict[str, Any] | None, int]:
        """(engine state, index of the journal event where replay starts) of the newest usable
        snapshot; (None, 0) means replay the whole journal.

        Usable: a regular file whose bytes hash to what the journal's ``snapshot`` event for it
        says, that parses, and that ``check(state, start)`` (the runner's comparison with
        run.yaml and the journal) finds no fault in (it returns the fault, or None). Anything
        else is skipped with one warning line naming the file and why.
        """
        recorded: dict[str, tuple[int, dict[str, Any]]] = {}
        for i, e in enumerate(self.journal.events):
            if e.get("event") == "snapshot":
                recorded[str(e["sha256"])] = (i, e)
        limit = _snapshot_limit(self.box)
        names = snapshot_names(self.box)
        for k, name in enumerate(reversed(names)):
            rel = f"{SNAPSHOT_DIR}/{name}"
            try:
                state, start = self._verified(rel, name, recorded, limit)
                fault = check(state, start) if check is not None else None
                if fault:
                    raise ValueError(fault)
                return state, start
            except (OSError, ValueError, KeyError, TypeError, RecursionError,
                    UserError) as e:
                why = e.rule if isinstance(e, UserError) else (
                    e.strerror if isinstance(e, OSError) and e.strerror else str(e))
                then = ("trying an older one" if k + 1 < len(names) else
                        "the engine is rebuilt by replaying the journal, the run's truth")
                warnings.warn(f"{self.path / rel}: snapshot ignored ({why}); {then}",
                              stacklevel=2)
        return None, 0

    def _verified(self, rel: str, name: str, recorded: dict[str, tuple[int, dict[str, Any]]],
                  limit: int) -> tuple[dict[str, Any], int]:
        """(state, start) of a snapshot file the journal names; ValueError saying why not."""
        data = self.box.read_bytes(rel, limit=limit) or b""
        if len(data) > limit:
            raise ValueError(f"larger than {limit:,} bytes, more than this journal can explain")
        found = recorded.get(hashlib.sha256(data).hexdigest())
        if found is None:
            raise ValueError("the journal does not name these bytes (edited, or written by an "
                             "older evocl)")
        index, event = found
        if event["file"] != name:
            raise ValueError(f"the journal names these bytes {event['file']}")
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format_version") != SNAPSHOT_FORMAT \
                or not isinstance(doc.get("engine"), dict) or doc.get("n_told") != event["n_told"]:
            raise ValueError("unexpected content")
        return doc["engine"], index


def _unlink_quietly(box: Box, rel: str) -> None:
    try:
        box.unlink(rel)
    except (OSError, UnsafePathError):
        pass


def _snapshot_limit(box: Box) -> int:
    """The most bytes a snapshot may hold: an engine state restates the journal's candidates
    and results with a population or a model's inputs beside them, so 8 journals and 64 MiB."""
    st = box.lstat(JOURNAL_NAME)
    return 64 * 2**20 + 8 * (st.st_size if st is not None else 0)


def snapshot_names(box: Box) -> list[str]:
    """Names of the snapshot files of a run, oldest first (by n_told)."""
    try:
        names = box.listdir(SNAPSHOT_DIR)
    except (OSError, UnsafePathError):
        return []
    found = [(int(m.group(1)), n) for n in names if (m := SNAPSHOT_NAME.match(n))]
    return [n for _, n in sorted(found)]


def snapshot_files(path: Path) -> list[Path]:
    """Snapshot files of a run, oldest first (by n_told)."""
    return [Path(path) / SNAPSHOT_DIR / n for n in snapshot_names(Box(path))]
