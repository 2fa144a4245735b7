"""`evocl export --format optuna`: the run's trials in an Optuna storage.

``OUT`` ending in ``.db``/``.sqlite``/``.sqlite3`` becomes a SQLite database, a URL with
``://`` is used as given, anything else a JournalFileBackend file. ``optuna-dashboard OUT``
and ``optuna.visualization.plot_pareto_front`` read it.
"""

from __future__ import annotations

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


def export_optuna(view, out: Path) -> Path:
    """Write every told evaluation of the run as a trial of a study named after the run
    (a pruned one as PRUNED, with its per-task intermediate values)."""
    import optuna

    from evocl.storage import OptunaMirror

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
    return out
