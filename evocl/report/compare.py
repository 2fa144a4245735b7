"""`evocl compare RUN1 RUN2 ...`: one HTML page comparing searches on the same stream.

How a user decides between engines (``nsga2``, ``async-nsga2``, ``optuna-tpe``, ``random``...)
or settings: hypervolume and the best value of the main objective (``acc`` when the runs
have it, else their first objective) against evaluations and against wall time, the final
fronts overlaid, and a table of each run's best configuration with its test accuracy (never
a fitness: reported only). Every hypervolume uses one reference point for all runs (the
objectives' declared ``ref``, else derived from every run's results), so they compare.

The runs must have the same objectives (names and directions) and, for CL runs, the same
stream; anything else differing (backbone, space, fitness tasks) is shown in the runs table.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from evocl.errors import UserError
from evocl.evolution import pareto
from evocl.records import Candidate, Result

Evaluation = tuple[Candidate, Result]


def _labels(paths: Sequence[Path]) -> list[str]:
    """Short unique names: the folder's name, with its parent's when two names collide."""
    names = [p.resolve().name for p in paths]
    if len(set(names)) < len(names):
        names = [f"{p.resolve().parent.name}/{p.resolve().name}" for p in paths]
    if len(set(names)) < len(names):
        names = [f"{n} ({i + 1})" for i, n in enumerate(names)]
    return names


def _check_comparable(views: Sequence[Any], labels: Sequence[str]) -> None:
    first = [(o.name, o.direction) for o in views[0].space.objectives]
    for view, label in zip(views[1:], labels[1:]):
        objs = [(o.name, o.direction) for o in view.space.objectives]
        if objs != first:
            raise UserError(f"objectives {objs} differ from {labels[0]}'s {first}; compare runs "
                            "with the same objectives", source=str(view.path), field="objectives")
    streams = {(v.config.stream, (v.meta.get("fingerprints") or {}).get("stream"))
               for v in views if v.config.objective == "cl"}
    if len(streams) > 1:
        names = ", ".join(f"{label}: {v.config.stream}" for v, label in zip(views, labels))
        raise UserError(f"the runs searched different streams ({names}); compare searches on the "
                        "same stream", field="stream")


def held_out_accuracy(result: Result) -> float | None:
    """Mean test-split accuracy of an evaluation, when the evaluator measured it."""
    t = result.metrics.get("test_acc")
    v = t.get("mean") if isinstance(t, dict) else t
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def best_by(evaluations: Sequence[Evaluation], space: Any, objective: Any) -> Evaluation | None:
    """The successful, feasible evaluation best in ``objective`` (ties: lower id)."""
    cands = [(c, r) for c, r, _, cv in pareto.scored(evaluations, space) if cv == 0.0]
    if not cands:
        return None
    sign = -1.0 if objective.direction == "maximize" else 1.0
    return min(cands, key=lambda e: (sign * float(e[1].objectives[objective.name]), e[0].id))


def write_compare(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                  force: bool = False) -> Path:
    """Write ``index.html`` and its PNGs into ``out`` (new, empty or evocl's own unless
    ``force``: ``evocl.storage.outdir``); return the page."""
    from evocl.storage import read_run
    from evocl.storage.outdir import OutputFolder, staging

    paths = [Path(p) for p in run_dirs]
    if len(paths) < 2:
        raise UserError(f"give at least two run directories to compare, got {len(paths)}",
                        field="RUN")
    views = [read_run(p) for p in paths]
    labels = _labels(paths)
    _check_comparable(views, labels)
    runs = [(label, view, list(view.evaluations)) for label, view in zip(labels, views)]
    if not any(pareto.scored(ev, v.space) for _, v, ev in runs):
        raise UserError("no run has a successful evaluation yet; nothing to compare", field="RUN")
    folder = OutputFolder(out, "compare", force=force)
    with staging("evocl-compare-") as out_dir:
        _draw(runs, out_dir)
        folder.add_tree(out_dir)
    return folder.path / "index.html"


def _draw(runs: list[tuple[str, Any, list[Evaluation]]], out_dir: Path) -> None:
    """The comparison's PNGs and index.html in ``out_dir`` (a private staging folder)."""
    import matplotlib

    matplotlib.use("Agg")
    from evocl.report import STYLE, baseline_label, baseline_of, figures, plots

    views = [view for _, view, _ in runs]
    space = views[0].space
    objectives = list(space.objectives)
    main = next((o for o in objectives if o.name == "acc"), objectives[0])
    table_runs = runs
    drawn = [(label, view, plots.plottable(ev, objectives)) for label, view, ev in runs]
    runs = [(label, view, kept) for label, view, (kept, _) in drawn]
    off_scale = plots.off_scale_note(sum(n for _, _, (_, n) in drawn))

    all_points = [f for _, v, ev in runs for _, _, f, _ in pareto.scored(ev, v.space)]
    ref = plots.reference_point(np.array(all_points), objectives)
    base, base_run = None, None
    for label, view, ev in runs:
        base = baseline_of(ev, view.space)
        if base is not None:
            base_run = label
            break
    blabel = baseline_label(views[0].config.objective)

    images = [
        ("Hypervolume against evaluations and against wall time (one reference point for all "
         "runs)" + off_scale, _curves(runs, ref, out_dir / "compare_hypervolume.png", "hypervolume", base,
                          blabel)),
        (f"Best {main.name} ({main.direction}) so far against evaluations and against wall time",
         _curves(runs, ref, out_dir / "compare_best.png", main, base, blabel)),
        ("Final Pareto fronts overlaid" + (" (2-D projections)" if len(objectives) > 2 else ""),
         _fronts(runs, objectives, out_dir / "compare_fronts.png", base, blabel)),
    ]
    (out_dir / "index.html").write_text(_html(table_runs, objectives, main, ref, images, base,
                                              base_run, blabel, figures, STYLE),
                                        encoding="utf-8")


def _series(view: Any, evaluations: Sequence[Evaluation], ref: np.ndarray, what: Any,
            ) -> tuple[list[float], list[float], list[float]]:
    """(evaluations axis, wall-time axis, values) of hypervolume or a best-so-far objective;
    wall time is NaN where the journal did not record it."""
    from evocl.report.plots import best_so_far, hypervolume_history

    if what == "hypervolume":
        xs, ys = hypervolume_history(evaluations, view.space.objectives,
                                     view.space.constraints, ref=ref)
    else:
        pts = best_so_far(evaluations, what)
        xs, ys = [k for k, _ in pts], [v for _, v in pts]
    elapsed = view.elapsed
    ts = [elapsed[k - 1] if elapsed[k - 1] is not None else math.nan for k in xs]
    return xs, ts, ys


def _curves(runs: Sequence[tuple[str, Any, list[Evaluation]]], ref: np.ndarray, path: Path,
            what: Any, base: Evaluation | None = None, blabel: str = "baseline") -> str:
    import matplotlib.pyplot as plt

    from evocl.report.plots import save

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), squeeze=False)
    name = "hypervolume" if what == "hypervolume" else f"best {what.name}"
    for i, (label, view, ev) in enumerate(runs):
        xs, ts, ys = _series(view, ev, ref, what)
        style = dict(drawstyle="steps-post", color=f"C{i % 10}", label=label)
        axes[0][0].plot(xs, ys, **style)
        if ts and not all(math.isnan(t) for t in ts):
            axes[0][1].plot(ts, ys, **style)
    marked = None
    if base is not None:
        if what == "hypervolume":
            from evocl.evolution.pareto import hypervolume, min_vector, objective_signs

            own = min_vector(objective_signs(runs[0][1].space.objectives), base[1])
            value = hypervolume(np.array([own]), ref) if own is not None else None
        else:
            value = float(base[1].objectives.get(what.name, math.nan))
        if value is not None and math.isfinite(value):
            for ax in axes[0]:
                ax.axhline(value, color="black", ls="--", lw=1, label=f"{blabel} alone"
                           if what == "hypervolume" else blabel)
            marked = base
    axes[0][0].set(xlabel="evaluations", ylabel=name, title=f"{name} against evaluations")
    axes[0][1].set(xlabel="wall time (s)", ylabel=name, title=f"{name} against wall time")
    for ax in axes[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, path, 90, marked)
    return path.name


def _fronts(runs: Sequence[tuple[str, Any, list[Evaluation]]], objectives: Sequence, path: Path,
            base: Evaluation | None, blabel: str) -> str:
    import matplotlib.pyplot as plt

    from evocl.report.plots import BASELINE_STYLE, _pairs, save

    pairs = _pairs(objectives)
    names = [o.name for o in objectives]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.6 * len(pairs) + 1.5, 4.0), squeeze=False)
    for i, (label, view, ev) in enumerate(runs):
        front = sorted(pareto.front(ev, view.space), key=lambda e: float(e[1].objectives[names[0]]))
        v = np.array([[float(r.objectives[n]) for n in names] for _, r in front])
        for ax, (a, b) in zip(axes[0], pairs):
            if len(v):
                order = np.argsort(v[:, a])
                ax.plot(v[order, a], v[order, b], marker="o", ms=4, color=f"C{i % 10}",
                        label=label, lw=1 if len(objectives) == 2 else 0)  # a projection
                # of a 3-objective front is no curve: points only
    for ax, (a, b) in zip(axes[0], pairs):
        if base is not None:
            ax.scatter([base[1].objectives[names[a]]], [base[1].objectives[names[b]]],
                       label=blabel, **BASELINE_STYLE)
        ax.set(xlabel=f"{names[a]} ({objectives[a].direction})",
               ylabel=f"{names[b]} ({objectives[b].direction})")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    save(fig, path, 90, base)
    return path.name


def _fmt(v: Any) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return html.escape(str(v))


def _html(runs: Sequence[tuple[str, Any, list[Evaluation]]], objectives: Sequence, main: Any,
          ref: np.ndarray, images: Sequence[tuple[str, str]], base: Evaluation | None,
          base_run: str | None, blabel: str, figures: Any, style: str) -> str:
    from evocl.report.plots import hypervolume_history

    e = html.escape
    run_rows, best_rows = [], []
    obj_heads = "".join(f"<th>{e(o.name)} ({o.direction})</th>" for o in objectives)
    for label, view, ev in runs:
        cfg = view.config
        n_failed = sum(1 for _, r in ev if not r.ok)
        _, hv = hypervolume_history(ev, view.space.objectives, view.space.constraints, ref=ref)
        elapsed = [t for t in view.elapsed if t is not None]
        wall = f"{max(elapsed):.0f} s" if elapsed else None
        run_rows.append(
            f"<tr><td><b>{e(label)}</b></td><td><code>{e(str(view.path))}</code></td>"
            f"<td>{e(cfg.algorithm)}</td><td>{cfg.seed}</td><td>{cfg.population}</td>"
            f"<td>{len(ev)} ({n_failed} failed)</td><td>{_fmt(wall)}</td>"
            f"<td>{_fmt(hv[-1] if hv else None)}</td><td>{e(cfg.backbone)}</td>"
            f"<td>{_fmt(cfg.fitness_tasks)}</td><td><code>{e(Path(cfg.space).name)}</code></td></tr>")
        best = best_by(ev, view.space, main)
        if best is None:
            best_rows.append(f"<tr><td><b>{e(label)}</b></td><td colspan='{len(objectives) + 3}'>"
                             "no successful evaluation</td></tr>")
            continue
        c, r = best
        objs = "".join(f"<td>{_fmt(r.objectives.get(o.name))}</td>" for o in objectives)
        best_rows.append(f"<tr><td><b>{e(label)}</b></td><td>{c.id}</td>{objs}"
                         f"<td>{_fmt(held_out_accuracy(r))}</td>"
                         f"<td><code>{e(json.dumps(c.config))}</code></td></tr>")
    if base is not None:
        c, r = base
        objs = "".join(f"<td>{_fmt(r.objectives.get(o.name))}</td>" for o in objectives)
        best_rows.insert(0, f"<tr class='baseline'><td>{e(blabel)} ({e(base_run or '')})</td>"
                            f"<td>{c.id}</td>{objs}<td>{_fmt(held_out_accuracy(r))}</td>"
                            f"<td><code>{e(json.dumps(c.config))}</code></td></tr>")
    stream = runs[0][1].config.stream
    ref_txt = ", ".join(f"{o.name} {(-v if o.direction == 'maximize' else v):.4g}"
                        for o, v in zip(objectives, ref))
    base_txt = (f"<p>The black star and dashed lines are <b>{e(blabel)}</b> (candidate "
                f"{base[0].id} of {e(base_run or '')}), the baseline every search should beat.</p>"
                if base is not None else f"<p class='note'>No run holds {e(blabel)}.</p>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>evocl compare</title>
<style>{style}</style></head><body>
<h1>evocl compare: {len(runs)} searches on stream <b>{e(stream)}</b></h1>
<table><tr><th>run</th><th>directory</th><th>algorithm</th><th>seed</th><th>population</th>
<th>evaluations</th><th>wall time</th><th>hypervolume</th><th>backbone</th><th>fitness tasks</th>
<th>space</th></tr>{''.join(run_rows)}</table>
<p class='note'>Hypervolume reference point (every run): {e(ref_txt)}.</p>
{base_txt}
{figures(images)}
<h2>Each run's best by {e(main.name)}, with its test accuracy</h2>
<table><tr><th>run</th><th>id</th>{obj_heads}<th>test accuracy (reported only)</th>
<th>configuration</th></tr>{''.join(best_rows)}</table>
</body></html>
"""
