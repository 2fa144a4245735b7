"""`evocl export`: chosen configurations of a run, written for evocl itself and for other trainers.

Formats: ``yaml`` / ``json`` (evocl's own configuration with provenance; ``evocl train`` reads
it), ``peft`` (an ``adapter_config.json`` that ``peft.LoraConfig.from_pretrained`` loads), ``hf``
(``transformers.TrainingArguments`` fields plus the continual-learning settings beside them),
``avalanche`` (strategy and plugin keyword arguments), ``trl`` / ``axolotl`` / ``llamafactory``
(the LLM trainers' configs, the stream's data in their format and notes; `trainers.py`),
``optuna`` (the run's trials in an Optuna
storage for ``optuna-dashboard`` and ``optuna.visualization.plot_pareto_front``).
"""

from __future__ import annotations

import os
from pathlib import Path

from evocl.errors import UserError
from evocl.export.formats import FORMATS, write_selected
from evocl.export.select import select

__all__ = ["export_run", "FORMATS"]


def export_run(run_dir: str | os.PathLike, *, select: str = "knee", fmt: str = "yaml",
               out: str | os.PathLike, force: bool = False) -> list[Path]:
    """Export the configurations ``select`` picks from the run in ``run_dir`` as ``fmt`` to
    ``out``; return the paths written. One selected configuration is written to ``out``
    itself; several (``--select pareto``) to ``out/candidate-<id>...``. ``out`` may replace
    only what evocl wrote (``evocl.storage.outdir``) unless ``force``."""
    from evocl.storage import read_run

    if fmt not in FORMATS:
        raise UserError(f"must be one of {list(FORMATS)}, got {fmt!r}", field="--format")
    run_dir = Path(run_dir)
    out = Path(out)
    _refuse_inside_run(run_dir, out)
    view = read_run(run_dir)
    if fmt == "optuna":
        from evocl.export.optuna_export import export_optuna

        return [export_optuna(view, out, force=force)]
    chosen = _select(view, select)
    return write_selected(view, chosen, fmt, out, force=force)


def _select(view, selector: str):
    return select(selector, list(view.evaluations), list(view.pareto_front()), list(view.space.objectives))


def _refuse_inside_run(run_dir: Path, out: Path) -> None:
    """Never write over a run's own files: inside the run directory only ``exports/`` is ours
    (checked on the path as written and with links resolved)."""
    rels = []
    for a, b in ((Path(os.path.abspath(out)), Path(os.path.abspath(run_dir))),
                 (out.resolve(), run_dir.resolve())):
        try:
            rels.append(a.relative_to(b))
        except ValueError:
            continue
    if any(not rel.parts or rel.parts[0] != "exports" for rel in rels):
        raise UserError(f"would write inside the run directory {run_dir}; use a path outside it "
                        f"or under {run_dir / 'exports'}", field="--out")
