"""Mirror of a run into an Optuna storage, so ``optuna-dashboard`` can show a live search.

A view, never the source of truth: every failure here becomes a warning and the search goes
on; a storage that stops answering is caught up from a backlog when it answers again. By default the mirror is ``run_dir/optuna.journal`` (Optuna's JournalFileBackend); a
``storage`` URL (``sqlite:///x.db``, ``postgresql://...``) sends it to any Optuna storage.

One study named after the run, directions from the space's objectives; one trial per told
result: parameters with their distributions (inactive ones absent), objective values, state
COMPLETE, PRUNED (stopped early, see ``evocl.evolution.early_stop``) or FAIL, metrics and the
candidate's id / hash / generation as user attributes. With early stopping, each per-task
report is an intermediate value at step ``tasks_seen`` (the cheap pass of a low fidelity at step 0; as ``trial.report`` would give): the
space's first objective over the tasks seen (Optuna's intermediate values are single numbers);
every objective per report is in the user attribute ``task_reports``.

Optuna's journal file reader fails on a torn last line once another line is appended after
it (a crash in the middle of a write); :func:`repair_optuna_journal` truncates such a line
before Optuna opens the file.

Optuna's JournalFileBackend opens ``optuna.journal`` by its name, so the run directory's box
checks the name first (a link or a FIFO there is refused, as everywhere in the run directory);
what the box cannot prevent is a link put there while the search is running, by someone who
can write into the run directory anyway.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from evocl.errors import UnsafePathError, UserError
from evocl.records import Candidate, Result
from evocl.safefile import Box, open_fd

OPTUNA_JOURNAL = "optuna.journal"


def repair_optuna_journal(path: str | os.PathLike[str]) -> bool:
    """Truncate a torn last line (no newline, or not JSON) of an Optuna journal file.

    Returns True when something was cut. Only a file's tail is examined: Optuna appends whole
    lines with one write, so a crash can only damage the end. The file is an entry of its
    folder's box: a link or a FIFO there is refused (UnsafePathError), never read or cut.
    """
    path = Path(path)
    box = Box(path.parent)
    data = box.read_bytes(path.name, missing_ok=True)
    if data is None:
        return False
    good = len(data)
    if data and not data.endswith(b"\n"):
        good = data.rfind(b"\n") + 1
    # the last complete line must also parse (a torn write that happened to end in "\n")
    while good > 0:
        start = data.rfind(b"\n", 0, good - 1) + 1
        try:
            json.loads(data[start:good])
            break
        except (ValueError, RecursionError):  # not JSON, not UTF-8
            good = start
    if good == len(data):
        return False
    with box.open(path.name, "r+b") as f:
        f.truncate(good)
        f.flush()
        os.fsync(f.fileno())
    warnings.warn(f"{path}: torn last line dropped ({len(data) - good} bytes)", stacklevel=2)
    return True


def check_storage_url(url: str | None) -> None:
    """Refuse a ``--storage`` that Optuna cannot open (unknown scheme, missing driver), up
    front: UserError naming ``--storage``. Nothing is connected to."""
    if url is None:
        return
    hint = "expected an SQLAlchemy URL such as sqlite:///runs.db or postgresql://user@host/db"
    if "://" not in url:
        raise UserError(f"{hint}, got {url!r:.100}", field="--storage")
    try:
        from sqlalchemy.engine import make_url

        dialect = make_url(url).get_dialect()
        load_driver = getattr(dialect, "import_dbapi", None) or getattr(dialect, "dbapi")
        load_driver()
    except Exception as e:  # noqa: BLE001 - sqlalchemy raises several types here
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, ImportError) and "psycopg2" in why:
            hint = "its driver is an extra: pip install 'evocl[postgres]' (psycopg2-binary)"
        raise UserError(f"cannot use {url.split('://')[0]!r:.40} ({why:.120}); {hint}",
                        field="--storage") from None


def open_storage(url: str | None, timeout: float = 10.0) -> None:
    """Connect to ``--storage`` once, before a run directory exists: a database Optuna cannot
    open (a SQLite file in a missing folder, a server that refuses) is refused with one line
    instead of a warning once the search runs. Connecting creates an empty SQLite file, as
    the mirror would."""
    if url is None:
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    args = {} if parsed.get_backend_name() == "sqlite" else {"connect_timeout": int(timeout)}
    try:
        engine = create_engine(parsed, connect_args=args)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as e:  # noqa: BLE001 - drivers raise their own types
        why = str(getattr(e, "orig", None) or e).splitlines()
        raise UserError(f"cannot open {parsed.render_as_string(hide_password=True)!r:.160} "
                        f"({why[0] if why else type(e).__name__:.160}); nothing was created",
                        field="--storage") from None


class _FlockLock:
    """Optuna journal lock on ``fcntl.flock``: released by the kernel if the process dies.

    Optuna's default symlink lock survives a ``kill -9`` and then blocks the next writer for
    its grace period; a flock cannot go stale.
    """

    def __init__(self, path: str):
        self._path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        self._fd = open_fd(self._path, os.O_RDWR | os.O_CREAT, 0o644, follow=False,
                           inside="run directory")
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _distribution(param: Any) -> Any:
    from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                      IntDistribution)
    if param.type == "float":
        return FloatDistribution(float(param.low), float(param.high), log=bool(param.log),
                                 step=None if param.log or not param.step else float(param.step))
    if param.type == "int":
        return IntDistribution(int(param.low), int(param.high), log=bool(param.log),
                               step=1 if param.log or not param.step else int(param.step))
    if param.type == "bool":
        return CategoricalDistribution([False, True])
    return CategoricalDistribution(list(param.choices))


def _attr(v: Any) -> Any:
    """User attributes must be JSON: non-finite floats become strings."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _attr(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_attr(x) for x in v]
    return v


class OptunaMirror:
    """Adds told results to an Optuna study. A view: every error is a warning and the search
    goes on.

    A storage that stops answering (a server restarted, a network cut) is not the end of the
    mirror: the results told meanwhile wait in a backlog, in tell order, and every
    attempt (at most once per back-off period, 1 s doubling to 30 s) reconnects, rereads
    which candidates the study holds (a trial whose commit was in doubt is not added twice)
    and catches up. A database storage is written by a background thread, so the search
    never waits for it (Optuna itself retries a failed insert for seconds); the run's own
    journal file is written in place. The journal is the truth: a backlog lost with the
    process is what the next resume's :meth:`sync` adds. :meth:`close` tries once more and
    names what is still missing.
    A URL that can never work (unknown scheme, missing driver) disables the mirror at once.

    Study ownership in a shared storage: the study named after the run belongs to the run
    directory that created it (user attribute ``evocl_run_dir``, set by its creator right after
    Optuna's atomic create); another run of that name, or a concurrent one that lost the
    creation race, writes to ``<name>-<hash of its run directory>``.
    """

    RETRY_FIRST, RETRY_MAX = 1.0, 30.0

    def __init__(self, run_dir: str | os.PathLike[str], study_name: str, space: Any,
                 storage: Any = None, *, clock: Callable[[], float] = time.monotonic):
        self.ok = False
        self.study: Any = None
        self.study_name = study_name
        self._run_dir, self._wanted, self._space = Path(run_dir), study_name, space
        self._storage_arg = storage
        self._local = storage is None
        self._names = [o.name for o in space.objectives]
        self._dists = {p.name: _distribution(p) for p in space.parameters}
        self._seen: set[int] = set()
        self._backlog: dict[int, tuple[Candidate, Result, Sequence[Mapping[str, Any]]]] = {}
        self._clock = clock
        self._retry_at, self._delay = 0.0, self.RETRY_FIRST
        self._disabled = False
        self._outage: str | None = None
        self._engine: Any = None
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._connect()
        if not self._local and not self._disabled:
            self._thread = threading.Thread(target=self._writer, daemon=True,
                                            name="evocl-optuna-mirror")
            self._thread.start()

    @property
    def pending(self) -> int:
        """Told results not in the study yet (waiting for the storage to answer again)."""
        return len(self._backlog)

    # -- connection ------------------------------------------------------------------------
    def _connect(self) -> None:
        try:
            import optuna
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            storage = self._open_storage()
            directions = [o.direction for o in self._space.objectives]
            here = str(self._run_dir.resolve())
            if self._local:
                study = self._local_study(optuna, storage, directions, here)
            else:
                study = self._claim(optuna, storage, directions, here)
            if list(study.metric_names or []) != self._names:
                with warnings.catch_warnings():  # set_metric_names is "experimental"
                    warnings.simplefilter("ignore")
                    study.set_metric_names(self._names)
            seen = set()
            for t in study.get_trials(deepcopy=False):
                cid = t.user_attrs.get("candidate_id")
                if isinstance(cid, int):
                    seen.add(cid)
            self.study, self.study_name, self._seen, self.ok = study, study.study_name, seen, True
        except UnsafePathError:
            raise  # a link or a FIFO in the run directory: refused, as everywhere in it
        except Exception as e:  # noqa: BLE001 - a view must never stop the search
            self._failed(e)

    def _open_storage(self) -> Any:
        if self._local:
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend
            path = str(self._run_dir / OPTUNA_JOURNAL)
            # Optuna opens the file by its name: refuse a link or a FIFO there first
            Box(self._run_dir).check(OPTUNA_JOURNAL)
            repair_optuna_journal(path)
            return JournalStorage(JournalFileBackend(
                path, lock_obj=_FlockLock(path + ".flock")))  # type: ignore[arg-type]
        if not isinstance(self._storage_arg, str):
            return self._storage_arg  # a storage object (export): used as given
        from optuna.storages import RDBStorage
        self._dispose()
        kwargs: dict[str, Any] = {"pool_pre_ping": True}  # a restarted server: fresh connections
        if self._storage_arg.startswith(("postgresql", "mysql")):
            kwargs["connect_args"] = {"connect_timeout": 10}  # a vanished host: not minutes
        storage = RDBStorage(self._storage_arg, engine_kwargs=kwargs)
        self._engine = storage.engine
        return storage

    def _local_study(self, optuna: Any, storage: Any, directions: list[str], here: str) -> Any:
        """The run's own file holds its one study, even after the run was moved."""
        names = optuna.study.get_all_study_names(storage)
        name = names[0] if len(names) == 1 else self._wanted
        study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                    directions=directions)
        if study.user_attrs.get("evocl_run_dir") != here:
            study.set_user_attr("evocl_run_dir", here)
        return study

    def _claim(self, optuna: Any, storage: Any, directions: list[str], here: str) -> Any:
        """The study of this run directory in a shared storage (see the class docstring)."""
        from optuna.exceptions import DuplicatedStudyError
        mine = f"{self._wanted}-{hashlib.sha256(here.encode()).hexdigest()[:8]}"
        for name, own_if_unclaimed in ((self._wanted, False), (mine, True)):
            try:
                study = optuna.create_study(storage=storage, study_name=name,
                                            directions=directions)
                study.set_user_attr("evocl_run_dir", here)
                return study
            except DuplicatedStudyError:
                study = optuna.load_study(study_name=name, storage=storage)
                owner = study.user_attrs.get("evocl_run_dir")
                if owner == here or (own_if_unclaimed and owner is None):
                    if owner is None:
                        study.set_user_attr("evocl_run_dir", here)
                    return study
        raise RuntimeError(f"studies {self._wanted!r} and {mine!r} belong to other run "
                           "directories")

    def _failed(self, e: BaseException) -> None:
        self.ok, self.study = False, None
        why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
        permanent = self._permanent(e)
        if permanent or self._outage is None:
            if permanent:
                warnings.warn(f"optuna mirror disabled: {why}", stacklevel=3)
            else:
                warnings.warn(f"optuna mirror unavailable ({why}); results stay in the journal "
                              "and the mirror catches up when the storage answers again",
                              stacklevel=3)
        self._disabled = permanent
        self._outage = why
        self._retry_at = self._clock() + self._delay
        self._delay = min(self._delay * 2, self.RETRY_MAX)

    @staticmethod
    def _permanent(e: BaseException) -> bool:
        """Errors that no retry can cure: a URL SQLAlchemy cannot parse, a missing driver."""
        if isinstance(e, ImportError):
            return True
        try:
            from sqlalchemy.exc import ArgumentError
        except ImportError:
            return True
        return isinstance(e, ArgumentError)

    def _dispose(self) -> None:
        if self._engine is not None:
            try:
                self._engine.dispose()
            except Exception:  # noqa: BLE001 - its connections are dead anyway
                pass
            self._engine = None

    # -- results ---------------------------------------------------------------------------
    def add(self, candidate: Candidate, result: Result,
            reports: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Record one told result (skipped when the study already holds this candidate);
        ``reports``: its per-task reports, in order."""
        self.sync([(candidate, result)], {candidate.id: reports or ()})

    def sync(self, pairs: Iterable[tuple[Candidate, Result]],
             reports: Mapping[int, Sequence[Mapping[str, Any]]] | None = None) -> None:
        """Add every told result the study is missing (after a resume or a mirror outage)."""
        with self._cond:
            for cand, res in pairs:
                if not self._disabled and cand.id not in self._seen:
                    self._backlog[cand.id] = (cand, res,
                                              tuple((reports or {}).get(cand.id) or ()))
            self._cond.notify()
        if self._thread is None:
            self._flush()

    def _writer(self) -> None:
        """The background writer of a database storage: the search never waits for it."""
        while True:
            with self._cond:
                while not self._closing and not (
                        self._backlog and (self.ok or self._clock() >= self._retry_at)):
                    self._cond.wait(None if not self._backlog
                                    else max(0.01, self._retry_at - self._clock()))
                closing = self._closing
            self._flush(now=closing)
            if closing:
                return

    def _flush(self, now: bool = False) -> None:
        if self._disabled or not self._backlog:
            return
        if not self.ok:
            if not now and self._clock() < self._retry_at:
                return
            self._connect()
            if not self.ok:
                return
        try:
            if self._engine is not None:  # a server gone: fail now, not after Optuna's retries
                with self._engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
            with self._cond:
                todo = list(self._backlog.items())
            for cid, item in todo:
                if cid not in self._seen:
                    self.study.add_trial(self._trial(*item))
                with self._cond:
                    self._seen.add(cid)
                    del self._backlog[cid]
        except Exception as e:  # noqa: BLE001
            self._failed(e)
            return
        if self._outage is not None:
            warnings.warn(f"optuna mirror caught up after an outage ({self._outage})",
                          stacklevel=3)
            self._outage, self._delay = None, self.RETRY_FIRST

    def close(self, timeout: float = 30.0) -> None:
        """One last try for the backlog (at most ``timeout`` seconds); a warning names what
        is still missing; then the storage's connections are closed."""
        if self._thread is not None:
            with self._cond:
                self._closing = True
                self._cond.notify()
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._outage = self._outage or f"still writing after {timeout:g}s"
        else:
            self._flush(now=True)
        if self._backlog and not self._disabled:
            warnings.warn(f"optuna mirror: {len(self._backlog)} told result(s) not mirrored "
                          f"({self._outage}); they are in the journal, and resuming the run "
                          "adds them", stacklevel=2)
        if self._thread is None or not self._thread.is_alive():
            self._dispose()

    def _trial(self, candidate: Candidate, result: Result,
               reports: Sequence[Mapping[str, Any]] = ()) -> Any:
        import optuna
        from optuna.trial import TrialState
        values = [result.objectives.get(n) for n in self._names]
        complete = result.ok and all(v is not None and math.isfinite(v) for v in values)
        steps = {}
        for rep in reports:
            v = rep.get(self._names[0])
            if isinstance(v, (int, float)) and math.isfinite(v) and "tasks_seen" in rep:
                f = rep.get("fidelity")   # the cheap pass (every task at a fraction): step 0
                low = isinstance(f, (int, float)) and not isinstance(f, bool) and f < 1.0
                steps[0 if low else int(rep["tasks_seen"])] = float(v)
        attrs = {"candidate_id": candidate.id, "config_hash": candidate.config_hash,
                 "generation": candidate.generation, "origin": candidate.origin,
                 "parents": list(candidate.parents), "seed": candidate.seed,
                 "config": _attr(candidate.config), "wall_time": result.wall_time}
        if result.error:
            attrs["error"] = result.error
        if reports:
            keep = ("tasks_seen", "fidelity", "elapsed", *self._names)
            attrs["task_reports"] = [_attr({k: r[k] for k in keep if k in r}) for r in reports]
        for k, v in result.metrics.items():
            attrs.setdefault(f"metric:{k}" if k in attrs else k, _attr(v))
        for k, v in result.objectives.items():
            attrs.setdefault(f"objective:{k}", _attr(v))
        params = {k: v for k, v in candidate.config.items() if k in self._dists}
        state = TrialState.COMPLETE if complete else (
            TrialState.PRUNED if result.status == "pruned" else TrialState.FAIL)
        kw: dict[str, Any] = dict(
            state=state, intermediate_values=steps,
            values=[float(v) for v in values] if complete else None,  # type: ignore[arg-type]
            user_attrs=attrs)
        try:
            return optuna.trial.create_trial(
                params=params, distributions={k: self._dists[k] for k in params}, **kw)
        except ValueError:  # a value off the distribution's grid: keep the trial, drop params
            return optuna.trial.create_trial(**kw)
