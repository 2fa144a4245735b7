"""`evocl export --format optuna`: the run's trials in an Optuna storage.

``OUT`` ending in ``.db``/``.sqlite``/``.sqlite3`` becomes a SQLite database, a URL with
``://`` is used as given, anything else a JournalFileBackend file. ``optuna-dashboard OUT``
and ``optuna.visualization.plot_pareto_front`` read it.
"""

from __future__ import annotations

import json
from pathlib import Path

from evocl.errors import UserError


def storage_for(out: Path | str) -> tuple[object, str]:
    """An Optuna storage (URL or JournalStorage) for ``out`` and how to open it again."""
    text = str(out)
    if "://" in text:
        return text, text
    out = Path(out)
    if out.suffix in (".db", ".sqlite", ".sqlite3"):
        out.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{out.resolve()}"
        return url, url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    out.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(out))), str(out)


#: How an Optuna storage file begins: SQLite's header, or a journal's first JSON operation.
_SQLITE = b"SQLite format 3\x00"


def _check_out(view, out: Path, force: bool) -> None:
    """``--out`` names an Optuna storage, a new file, or (``force``) any regular file; inside
    the run directory no link is followed on the way; never a FIFO or a device."""
    from evocl.safefile import Box, read_bytes
    from evocl.storage.outdir import path_inside

    if "://" in str(out):
        return
    rel = path_inside(out, view.path)
    try:
        if rel is not None:
            box = Box(view.path)
            head = box.read_bytes(rel, limit=4096) if box.check(rel) else None
        else:
            head = read_bytes(out, 4096) if out.exists() else None
    except OSError as exc:
        raise UserError(f"cannot read ({exc.strerror or exc})", source=str(out),
                        field="--out") from None
    if not head or force:
        return
    first = head.split(b"\n", 1)[0]
    try:
        journal = b"op_code" in first and isinstance(json.loads(first), dict)
    except ValueError:
        journal = False
    if not (head.startswith(_SQLITE) or journal):
        raise UserError("exists and is not an Optuna storage evocl can add a study to; choose "
                        "another --out or add --force", source=str(out), field="--out")


def export_optuna(view, out: Path, *, force: bool = False) -> Path:
    """Write every told evaluation of the run as a trial of a study named after the run
    (a pruned one as PRUNED, with its per-task intermediate values)."""
    import optuna

    from evocl.storage import OptunaMirror

    _check_out(view, out, force)
    storage, where = storage_for(out)
    name = Path(view.config.run_dir).resolve().name
    try:
        existing = optuna.study.get_all_study_names(storage)
    except Exception:  # noqa: BLE001 - a new storage has no studies table yet
        existing = []
    if name in existing:
        raise UserError(f"{where} already holds a study named {name!r}; choose another --out",
                        field="--out")
    mirror = OptunaMirror(view.path, name, view.space, storage=storage)
    if not mirror.ok:
        raise UserError(f"cannot write an Optuna study to {where}", field="--out")
    mirror.sync(view.evaluations, view.reports)
    mirror.close()
    missing = mirror.pending
    if missing:
        raise UserError(f"{where} stopped answering; {missing} trial(s) not written",
                        field="--out")
    return out
