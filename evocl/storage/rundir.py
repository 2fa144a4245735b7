"""The run directory: the one source of truth of a search, written so it survives any crash.

    run.yaml             RunConfig + the space (to_dict) + objectives + fingerprints + versions
                         + the history of settings changed by resumes
    journal.jsonl        append-only events (see journal.py), fsync'd before they are used
    snapshots/engine-<n_told>.json   engine.state() now and then (atomic; the last 3 kept)
    lock                 flock + pid of the owner
    optuna.journal       Optuna mirror for optuna-dashboard (a view, see optuna_mirror.py)

Nothing here is pickled: YAML (safe_dump) and JSON only.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import yaml

from evocl.errors import RunDirError, UserError
from evocl.records import Candidate, Result, RunConfig
from evocl.storage.atomic import atomic_write_json, atomic_write_text, fsync_dir
from evocl.storage.journal import JOURNAL_NAME, QUARANTINE_NAME, BadLine, Journal, write_error
from evocl.storage.lock import RunLock

FORMAT_VERSION = 1
RUN_FILE = "run.yaml"
SNAPSHOT_DIR = "snapshots"
KEEP_SNAPSHOTS = 3
_SNAP_RE = re.compile(r"^engine-(\d+)\.json$")


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


def load_run_file(path: Path) -> dict[str, Any]:
    """Read and check run.yaml; RunDirError (one line) when this is not a usable evocl run.

    run.yaml is data from wherever the run directory came from: read with the size and alias
    limits of every YAML evocl reads, and its ``config`` checked field by field.
    """
    from evocl.yamlsafe import read_yaml

    run_file = path / RUN_FILE
    if not path.is_dir():
        raise RunDirError(f"{path} is not a directory")
    if not run_file.exists():
        raise RunDirError(f"{path} is not an evocl run directory (no {RUN_FILE})")
    try:
        meta = read_yaml(run_file)
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


class RunDir:
    """A run directory opened for writing (the lock is held until :meth:`close`)."""

    def __init__(self, path: Path, meta: dict[str, Any], lock: RunLock):
        self.path = path
        self.meta = meta
        self._lock = lock
        self.journal = Journal(path / JOURNAL_NAME)
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
        if (path / RUN_FILE).exists() or (path / JOURNAL_NAME).exists():
            raise RunDirError(f"{path} already holds a run; use `evocl resume {path}`")
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} exists and is not a directory")
        path.mkdir(parents=True, exist_ok=True)
        lock = RunLock(path).acquire()
        try:
            if (path / RUN_FILE).exists():  # lost a race with another creator
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
            (path / SNAPSHOT_DIR).mkdir(exist_ok=True)
            atomic_write_text(path / RUN_FILE, yaml.safe_dump(meta, sort_keys=False))
            fsync_dir(path)
            return cls(path, meta, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "RunDir":
        """Open an existing run to continue it (takes the lock; repairs a torn journal tail)."""
        path = Path(path)
        meta = load_run_file(path)
        try:
            lock = RunLock(path).acquire()
        except OSError as exc:
            raise write_error(path / "lock", exc, "take the run's lock") from None
        try:
            try:
                (path / SNAPSHOT_DIR).mkdir(exist_ok=True)
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

        Only evocl's own files are removed, and only while the journal is empty; returns
        whether the run was removed. Never touches a run holding any result.
        """
        if self.journal.events:
            return False
        self.journal.close()
        for name in (RUN_FILE, JOURNAL_NAME, "optuna.journal", "optuna.journal.flock"):
            try:
                (self.path / name).unlink()
            except FileNotFoundError:
                pass
        for snap in snapshot_files(self.path):
            snap.unlink()
        try:
            (self.path / SNAPSHOT_DIR).rmdir()
        except OSError:
            pass
        self._lock.release()
        try:
            (self.path / "lock").unlink()
            self.path.rmdir()  # only when nothing else is in it
        except OSError:
            pass
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
            atomic_write_text(self.path / RUN_FILE, yaml.safe_dump(self.meta, sort_keys=False))
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
        """Save engine state as it is after the journal's current events; keep the last 3.

        A snapshot only makes resume faster: one that cannot be written is a warning.
        """
        snap_dir = self.path / SNAPSHOT_DIR
        target = snap_dir / f"engine-{n_told}.json"
        j = self.journal
        try:
            atomic_write_json(target, {"format_version": FORMAT_VERSION, "n_told": n_told,
                                       "journal_events": j.n_slots,
                                       "last_event": j.digests[-1] if j.digests else None,
                                       "engine": state}, allow_nan=True)
        except OSError as exc:
            warnings.warn(f"{target}: snapshot not written ({exc.strerror or exc}); resume "
                          "replays the journal instead", stacklevel=2)
            return None
        for old in snapshot_files(self.path)[:-KEEP_SNAPSHOTS]:
            try:
                old.unlink()
            except OSError:
                pass
        return target

    def _snapshot_start(self, data: dict[str, Any]) -> int:
        """Index in ``events`` where replay after this snapshot starts (ValueError if none)."""
        j = self.journal
        n = int(data["journal_events"])
        if not 0 <= n <= j.n_slots:
            raise ValueError(f"covers {n} events, journal has {j.n_slots}")
        if n == 0:
            return 0
        last = data.get("last_event")
        if last is None:  # written before snapshots named their last event
            if j.pending is not None:
                raise ValueError("cannot be placed in a journal with bad lines")
            return n
        found = j.find(str(last))
        if found is not None:
            return found + 1
        if j.is_bad_slot(n - 1):  # its last event is the bad line: the state holds it
            return j.index_for_slot(n)
        raise ValueError("its last event is not in the journal")

    def load_snapshot(self) -> tuple[dict[str, Any] | None, int]:
        """(engine state, index of the first journal event after it) of the newest usable
        snapshot.

        A snapshot that does not parse, or whose last event is not in the journal, is skipped
        with a warning; (None, 0) means replay the whole journal.
        """
        for snap in reversed(snapshot_files(self.path)):
            try:
                data = json.loads(snap.read_text(encoding="utf-8"))
                state = data["engine"]
                if not isinstance(state, dict) or data.get("format_version") != FORMAT_VERSION:
                    raise ValueError("unexpected content")
                return state, self._snapshot_start(data)
            except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
                warnings.warn(f"{snap}: unusable snapshot ({e}); trying an older one",
                              stacklevel=2)
        return None, 0


def snapshot_files(path: Path) -> list[Path]:
    """Snapshot files of a run, oldest first (by n_told)."""
    snap_dir = Path(path) / SNAPSHOT_DIR
    if not snap_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in snap_dir.iterdir() if (m := _SNAP_RE.match(p.name))]
    return [p for _, p in sorted(found)]
