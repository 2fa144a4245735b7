"""`evocl report`: PNG plots and an index.html, read from the run directory only.

Works on a run that is still going (the run directory is read without taking its lock).
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Sequence

from evocl.errors import RunDirError
from evocl.evolution import pareto
from evocl.export.select import knee
from evocl.records import Candidate, Result
from evocl.storage.atomic import atomic_write_text

Evaluation = tuple[Candidate, Result]


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the plots and ``index.html`` into ``out`` (default RUN_DIR/report); return the page."""
    import matplotlib

    matplotlib.use("Agg")
    from evocl.report import plots
    from evocl.storage import read_run

    view = read_run(run_dir)
    out_dir = Path(out) if out is not None else Path(run_dir) / "report"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create the report folder: {exc.strerror}", source=str(out_dir)) from None
    objectives = list(view.space.objectives)
    evaluations = list(view.evaluations)
    ok = [(c, r) for c, r, _, _ in pareto.scored(evaluations, view.space)]   # the one rule
    front = sorted(view.pareto_front(), key=lambda e: e[0].id)
    chosen = knee(front, objectives) if front else None

    images: list[tuple[str, str]] = []
    if ok:
        images.append(("Hypervolume and best objectives over evaluations",
                       plots.progress(evaluations, objectives, out_dir / "progress.png",
                                      view.space.constraints)))
        images.append(("Pareto front" if len(objectives) <= 2 else "Pareto front (2-D projections)",
                       plots.pareto(ok, front, objectives, out_dir / "pareto.png")))
        images.append(("Each parameter against each objective",
                       plots.parameters(ok, view.space, objectives, out_dir / "parameters.png")))
    if chosen is not None and chosen[1].metrics.get("accuracy_matrix"):
        images.append((f"Accuracy matrix of the knee configuration (candidate {chosen[0].id})",
                       plots.accuracy_matrix(chosen, out_dir / "accuracy_matrix.png")))

    page = out_dir / "index.html"
    atomic_write_text(page, _html(view, evaluations, front, chosen, objectives, images))
    return page


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _html(view, evaluations: Sequence[Evaluation], front: Sequence[Evaluation],
          chosen: Evaluation | None, objectives: Sequence, images: Sequence[tuple[str, str]]) -> str:
    from evocl.evolution.early_stop import seconds_saved

    cfg = view.config
    e = html.escape
    n_failed = sum(1 for _, r in evaluations if r.status == "failed")
    n_pruned = sum(1 for _, r in evaluations if r.status == "pruned")
    pruned = (f", {n_pruned} pruned early by <b>{e(cfg.early_stop)}</b> (about "
              f"{seconds_saved(r for _, r in evaluations):.0f} s of evaluation saved)"
              if n_pruned else "")
    rows = []
    for c, r in front:
        mark = " (knee)" if chosen is not None and c.id == chosen[0].id else ""
        objs = "".join(f"<td>{_fmt(r.objectives.get(o.name))}</td>" for o in objectives)
        rows.append(f"<tr><td>{c.id}{mark}</td>{objs}<td><code>{e(json.dumps(c.config))}</code></td></tr>")
    failures = [f"<tr><td>{c.id}</td><td>{e(str(r.error))}</td></tr>" for c, r in evaluations
                if r.status == "failed"]
    obj_heads = "".join(f"<th>{e(o.name)} ({o.direction})</th>" for o in objectives)
    figs = "".join(f"<figure><img src='{e(name)}' alt='{e(title)}'><figcaption>{e(title)}</figcaption></figure>"
                   for title, name in images)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>evocl run {e(Path(cfg.run_dir).name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px;text-align:left}}img{{max-width:100%}}
code{{font-size:12px}}</style></head><body>
<h1>evocl run: {e(str(cfg.run_dir))}</h1>
<p>algorithm <b>{e(cfg.algorithm)}</b>, population {cfg.population}, seed {cfg.seed};
stream <b>{e(cfg.stream)}</b>, backbone <b>{e(cfg.backbone)}</b>, space <code>{e(cfg.space)}</code></p>
<p>{len(evaluations)} evaluations ({n_failed} failed{pruned}), {len(view.pending)} in flight or pending,
{len(front)} on the Pareto front.</p>
{figs}
<h2>Pareto front</h2>
<table><tr><th>id</th>{obj_heads}<th>configuration</th></tr>{''.join(rows)}</table>
<h2>Failed evaluations</h2>
<table><tr><th>id</th><th>reason</th></tr>{''.join(failures) or '<tr><td colspan=2>none</td></tr>'}</table>
</body></html>
"""
