"""Mirror of a run into an Optuna storage, so ``optuna-dashboard`` can show a live search.

A view, never the source of truth: every failure here becomes a warning and the search goes
on. By default the mirror is ``run_dir/optuna.journal`` (Optuna's JournalFileBackend); a
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
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

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
    """Adds told results to an Optuna study; every error is a warning, after which it stops."""

    def __init__(self, run_dir: str | os.PathLike[str], study_name: str, space: Any,
                 storage: str | None = None):
        self.ok = False
        self._space = space
        self._names = [o.name for o in space.objectives]
        self._seen: set[int] = set()
        try:
            import optuna
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            local = storage is None
            if local:
                from optuna.storages import JournalStorage
                from optuna.storages.journal import JournalFileBackend
                path = str(Path(run_dir) / OPTUNA_JOURNAL)
                # Optuna opens the file by its name: refuse a link or a FIFO there first
                Box(run_dir).check(OPTUNA_JOURNAL)
                repair_optuna_journal(path)
                storage = JournalStorage(JournalFileBackend(
                    path, lock_obj=_FlockLock(path + ".flock")))  # type: ignore[arg-type]
            self._dists = {p.name: _distribution(p) for p in space.parameters}
            directions = [o.direction for o in space.objectives]
            here = str(Path(run_dir).resolve())
            if local:  # the run's own file: its one study, even after the run was moved
                names = optuna.study.get_all_study_names(storage)
                if len(names) == 1:
                    study_name = names[0]
            self.study = optuna.create_study(storage=storage, study_name=study_name,
                                             load_if_exists=True, directions=directions)
            owner = self.study.user_attrs.get("evocl_run_dir")
            if not local and owner not in (None, here):  # a shared storage has a run of that name
                study_name = f"{study_name}-{hashlib.sha256(here.encode()).hexdigest()[:8]}"
                self.study = optuna.create_study(storage=storage, study_name=study_name,
                                                 load_if_exists=True, directions=directions)
            if self.study.user_attrs.get("evocl_run_dir") is None or local and \
                    self.study.user_attrs.get("evocl_run_dir") != here:
                self.study.set_user_attr("evocl_run_dir", here)
            if list(self.study.metric_names or []) != self._names:
                with warnings.catch_warnings():  # set_metric_names is "experimental"
                    warnings.simplefilter("ignore")
                    self.study.set_metric_names(self._names)
            self.study_name = study_name
            for t in self.study.get_trials(deepcopy=False):
                cid = t.user_attrs.get("candidate_id")
                if isinstance(cid, int):
                    self._seen.add(cid)
            self.ok = True
        except UnsafePathError:
            raise  # a link or a FIFO in the run directory: refused, as everywhere in it
        except Exception as e:  # noqa: BLE001 - a view must never stop the search
            warnings.warn(f"optuna mirror disabled: {type(e).__name__}: {e}", stacklevel=2)

    def add(self, candidate: Candidate, result: Result,
            reports: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Record one told result (skipped when the study already holds this candidate);
        ``reports``: its per-task reports, in order."""
        if not self.ok or candidate.id in self._seen:
            return
        try:
            self.study.add_trial(self._trial(candidate, result, reports or ()))
            self._seen.add(candidate.id)
        except Exception as e:  # noqa: BLE001
            self.ok = False
            warnings.warn(f"optuna mirror disabled: {type(e).__name__}: {e}", stacklevel=2)

    def sync(self, pairs: Iterable[tuple[Candidate, Result]],
             reports: Mapping[int, Sequence[Mapping[str, Any]]] | None = None) -> None:
        """Add every told result the study is missing (after a resume or a mirror outage)."""
        for cand, res in pairs:
            self.add(cand, res, (reports or {}).get(cand.id))

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
