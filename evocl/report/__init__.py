"""`evocl report`: PNG plots and an index.html, read from the run directory only.

Works on a run that is still going (the run directory is read without taking its lock). The
pages are drawn in a private staging folder, then written into the output folder
(``evocl.storage.outdir``: new, empty or evocl's own unless ``--force``; no link followed).
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from evocl.evolution import pareto
from evocl.export.select import knee
from evocl.records import Candidate, Result

Evaluation = tuple[Candidate, Result]


def baseline_of(evaluations: Sequence[Evaluation], space: Any) -> Evaluation | None:
    """The run's baseline: its first successful evaluation of an ``initial`` candidate (the
    space's defaults; for the CL spaces every strategy off, i.e. sequential fine-tuning)."""
    for cand, res, _, _ in sorted(pareto.scored(evaluations, space), key=lambda e: e[0].id):
        if cand.origin == "initial":
            return cand, res
    return None


def baseline_label(objective: str) -> str:
    """What the baseline is called in plots and tables."""
    return "sequential fine-tuning" if objective == "cl" else "baseline (space defaults)"


def front_ranks(evaluations: Sequence[Evaluation], space: Any,
                near_limit: int = 40) -> tuple[list[Evaluation], list[Evaluation]]:
    """(front, near-front): the successful evaluations of non-domination rank 1 and rank 2
    (Deb's constrained domination, as the engines sort), each in candidate-id order; the
    near-front cut to its ``near_limit`` best by crowding."""
    scored = pareto.scored(evaluations, space)
    fmin = {i: tuple(f) for i, (_, _, f, _) in enumerate(scored)}
    cv = {i: float(v) for i, (_, _, _, v) in enumerate(scored)}
    ranks = pareto.rank_and_crowding(list(fmin), fmin, cv)
    front = [i for i in fmin if ranks[i][0] == 0 and cv[i] == 0.0]
    near = sorted((i for i in fmin if ranks[i][0] == 1 and cv[i] == 0.0),
                  key=lambda i: -ranks[i][1])[:near_limit]
    pick = lambda ids: sorted((scored[i][:2] for i in ids), key=lambda e: e[0].id)  # noqa: E731
    return pick(front), pick(near)


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *,
                 force: bool = False) -> Path:
    """Write the plots and ``index.html`` into ``out`` (default RUN_DIR/report); return the page.

    ``out`` must be new, empty or a folder evocl wrote (``evocl.storage.outdir``) unless
    ``force``; a link inside the run directory is never followed to get there."""
    from evocl.storage import read_run
    from evocl.storage.outdir import OutputFolder, staging

    view = read_run(run_dir)
    folder = OutputFolder(out if out is not None else Path(run_dir) / "report", "report",
                          force=force, run_dir=run_dir)
    with staging("evocl-report-") as out_dir:
        page = _write_pages(view, out_dir)
        folder.add_tree(out_dir)
    return folder.path / page


def _write_pages(view: Any, out_dir: Path) -> str:
    """The report's PNGs and index.html in ``out_dir`` (a private staging folder); the page's
    name."""
    import matplotlib

    matplotlib.use("Agg")
    from evocl.report import plots
    from evocl.report.importance import parameter_importance

    space = view.space
    objectives = list(space.objectives)
    evaluations = list(view.evaluations)
    drawn, off_scale = plots.plottable(evaluations, objectives)
    ok = [(c, r) for c, r, _, _ in pareto.scored(drawn, space)]   # the one rule
    front = sorted(view.pareto_front(), key=lambda e: e[0].id)
    chosen = knee(front, objectives) if front else None
    front_drawn = plots.plottable(front, objectives)[0]
    base = baseline_of(evaluations, space)
    label = baseline_label(view.config.objective)
    mark = {"baseline": base, "baseline_label": label}

    images: list[tuple[str, str]] = []
    imp, imp_note = ({}, None)
    if ok:
        images.append(("Hypervolume and best objectives over evaluations"
                       + plots.off_scale_note(off_scale),
                       plots.progress(drawn, objectives, out_dir / "progress.png",
                                      space.constraints, **mark)))
        images.append(("Pareto front" if len(objectives) <= 2 else "Pareto front (2-D projections)",
                       plots.pareto(ok, front_drawn, objectives, out_dir / "pareto.png", **mark)))
        rank1, rank2 = front_ranks(drawn, space)
        if rank1:
            images.append(("Parallel coordinates of the Pareto front and the near-front "
                           "(objectives, then parameters; each axis scaled to [0, 1])",
                           plots.parallel_coordinates(rank1, rank2, space,
                                                      out_dir / "parallel.png", **mark)))
        imp, imp_note = parameter_importance(evaluations, space)
        if imp:
            images.append(("What matters: fANOVA importance of each parameter for each objective",
                           plots.importance(imp, objectives, out_dir / "importance.png")))
        images.append(("Each parameter against each objective",
                       plots.parameters(ok, space, objectives, out_dir / "parameters.png", **mark)))
    if chosen is not None and chosen[1].metrics.get("accuracy_matrix"):
        what = plots.metric_name(chosen[1])
        images.append((f"{what[0].upper() + what[1:]} matrix R[i][j] of the knee configuration "
                       f"(candidate {chosen[0].id})"
                       + (f" beside {label}" if base is not None else ""),
                       plots.accuracy_matrix(chosen, out_dir / "accuracy_matrix.png", **mark)))
    if chosen is not None and chosen[1].metrics.get("retention"):
        r = chosen[1].metrics["retention"]
        images.append((f"Retention set {r['set']!r} ({r['metric']}, {r['rows']} rows) before "
                       "training and after each task",
                       plots.retention(chosen, out_dir / "retention.png", **mark)))

    (out_dir / "index.html").write_text(_html(view, evaluations, front, chosen, objectives,
                                              images, base, label, imp, imp_note),
                                        encoding="utf-8")
    return "index.html"


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto}
table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:3px 6px;
font-size:13px;text-align:left}img{max-width:100%}code{font-size:12px}
tr.baseline td{background:#f3f3f3}.note{color:#555}"""


def figures(images: Sequence[tuple[str, str]]) -> str:
    e = html.escape
    return "".join(f"<figure><img src='{e(name)}' alt='{e(title)}'><figcaption>{e(title)}"
                   "</figcaption></figure>\n" for title, name in images)


def importance_table(imp: dict[str, dict[str, float]], objectives: Sequence) -> str:
    """Parameters (rows, by their largest importance) x objectives, as percentages."""
    e = html.escape
    names = [o.name for o in objectives if o.name in imp]
    params = sorted({p for n in names for p in imp[n]},
                    key=lambda p: -max(imp[n].get(p, 0.0) for n in names))
    heads = "".join(f"<th>{e(n)}</th>" for n in names)
    rows = "".join(f"<tr><td>{e(p)}</td>" + "".join(
        f"<td>{100 * imp[n].get(p, 0.0):.1f}%</td>" for n in names) + "</tr>" for p in params)
    return f"<table><tr><th>parameter</th>{heads}</tr>{rows}</table>"


def _efficiency_html(cfg: Any, evaluations: Sequence[Evaluation],
                     reports: Any) -> str:
    """What the run did to spend less (issue 22): the cheap pass's stops and promotions,
    model-based stopping, cost-aware proposals; empty when none was on."""
    parts = []
    low = cfg.early_stop_options.get("low_fidelity") if cfg.early_stop != "none" else None
    if low is not None:
        cheap = [r for reps in (reports or {}).values() for r in reps
                 if r.get("fidelity") is not None]
        stopped = sum(1 for _, r in evaluations
                      if r.status == "pruned" and r.metrics.get("tasks_trained") == 0)
        spent = sum(float(r.get("elapsed", 0.0)) for r in cheap)
        parts.append(f"cheap pass (every task at {float(low):g} of its steps): {len(cheap)} "
                     f"candidates, {stopped} stopped there, {len(cheap) - stopped} promoted to "
                     f"full evaluation (retrained from the start), {spent:.0f} s in cheap passes")
    if cfg.early_stop == "model":
        parts.append("model-based stopping: a candidate stopped only when a finished result "
                     "dominated its predicted final point (optimistic by kappa "
                     f"{cfg.early_stop_options.get('kappa', 1.0)} standard deviations)")
    if cfg.algorithm_options.get("cost_aware"):
        ok = [r.wall_time for _, r in evaluations if r.ok and math.isfinite(r.wall_time)]
        mean = f", mean {sum(ok) / len(ok):.1f} s per full evaluation" if ok else ""
        parts.append(f"cost-aware proposals: expected improvement per predicted second{mean}")
    if not parts:
        return ""
    return "<p>Search efficiency: " + "; ".join(html.escape(p) for p in parts) + ".</p>"


def _html(view, evaluations: Sequence[Evaluation], front: Sequence[Evaluation],
          chosen: Evaluation | None, objectives: Sequence, images: Sequence[tuple[str, str]],
          base: Evaluation | None, label: str, imp: dict[str, dict[str, float]],
          imp_note: str | None) -> str:
    from evocl.evolution.early_stop import seconds_saved

    cfg = view.config
    e = html.escape
    n_failed = sum(1 for _, r in evaluations if r.status == "failed")
    n_pruned = sum(1 for _, r in evaluations if r.status == "pruned")
    pruned = (f", {n_pruned} pruned early by <b>{e(cfg.early_stop)}</b> (about "
              f"{seconds_saved(r for _, r in evaluations):.0f} s of evaluation saved)"
              if n_pruned else "")
    efficiency = _efficiency_html(cfg, evaluations, getattr(view, "reports", None))
    obj_heads = "".join(f"<th>{e(o.name)} ({o.direction})</th>" for o in objectives)

    def row(c: Candidate, r: Result, mark: str = "", cls: str = "") -> str:
        objs = "".join(f"<td>{_fmt(r.objectives.get(o.name))}</td>" for o in objectives)
        return (f"<tr class='{cls}'><td>{c.id}{e(mark)}</td>{objs}"
                f"<td><code>{e(json.dumps(c.config))}</code></td></tr>")

    rows = [row(c, r, " (knee)" if chosen is not None and c.id == chosen[0].id else "")
            for c, r in front]
    if base is not None:
        rows.insert(0, row(*base, f" ({label})", "baseline"))
    failures = [f"<tr><td>{c.id}</td><td>{e(str(r.error))}</td></tr>" for c, r in evaluations
                if r.status == "failed"]
    base_txt = (f"<p>The black star and dashed lines in every plot are <b>{e(label)}</b> "
                f"(candidate {base[0].id}, the space's defaults), so each point reads against "
                "it.</p>" if base is not None else
                f"<p class='note'>No {e(label)} in this run (searched with --no-baseline, or it "
                "failed): nothing is marked as the baseline.</p>")
    imp_html = (importance_table(imp, objectives) + "<p class='note'>fANOVA (Hutter et al. "
                "2014, via optuna.importance) on the successful evaluations: each parameter's "
                "share of an objective's variance. A parameter inactive in a configuration "
                "counts at its default there.</p>" if imp else "") + (
                    f"<p class='note'>{e(imp_note)}</p>" if imp_note else "")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>evocl run {e(Path(cfg.run_dir).name)}</title>
<style>{STYLE}</style></head><body>
<h1>evocl run: {e(str(cfg.run_dir))}</h1>
<p>algorithm <b>{e(cfg.algorithm)}</b>, population {cfg.population}, seed {cfg.seed};
stream <b>{e(cfg.stream)}</b>, backbone <b>{e(cfg.backbone)}</b>, space <code>{e(cfg.space)}</code></p>
<p>{len(evaluations)} evaluations ({n_failed} failed{pruned}), {len(view.pending)} in flight or pending,
{len(front)} on the Pareto front.</p>
{efficiency}
{base_txt}
{figures(images)}
<h2>What matters</h2>
{imp_html}
<h2>Pareto front</h2>
<table><tr><th>id</th>{obj_heads}<th>configuration</th></tr>{''.join(rows)}</table>
<h2>Failed evaluations</h2>
<table><tr><th>id</th><th>reason</th></tr>{''.join(failures) or '<tr><td colspan=2>none</td></tr>'}</table>
</body></html>
"""
