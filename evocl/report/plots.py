"""The report's figures, each a function from evaluations to one PNG file (matplotlib, Agg)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from evocl.records import Candidate, Result

Evaluation = tuple[Candidate, Result]


#: A told objective beyond this magnitude cannot be drawn (axis ranges and ticks overflow).
OFF_SCALE = 1e150


def plottable(evaluations: Sequence[Evaluation],
              objectives: Sequence) -> tuple[list[Evaluation], int]:
    """The evaluations a figure can draw, and how many were left out: those with an objective
    beyond +-``OFF_SCALE`` (a target may tell any finite float; the tables still list them)."""
    names = [o.name for o in objectives]
    kept = []
    for c, r in evaluations:
        values = [r.objectives.get(n) for n in names]
        if any(isinstance(v, (int, float)) and abs(float(v)) > OFF_SCALE for v in values):
            continue
        kept.append((c, r))
    return kept, len(evaluations) - len(kept)


def off_scale_note(n: int) -> str:
    return (f" ({n} evaluation(s) with an objective beyond +-{OFF_SCALE:g} left out of the "
            f"figures; the tables list them)") if n else ""


def _signs(objectives: Sequence) -> np.ndarray:
    return np.array([-1.0 if o.direction == "maximize" else 1.0 for o in objectives])


def reference_point(points_min: np.ndarray, objectives: Sequence) -> np.ndarray:
    """The hypervolume reference point in minimization form: each objective's declared ``ref``
    where the space gives one, else the engines' derived point (worst seen + 10% of the range)."""
    from evocl.evolution.pareto import derived_reference

    ref = np.array(derived_reference(points_min))
    signs = _signs(objectives)
    for i, o in enumerate(objectives):
        if getattr(o, "ref", None) is not None:
            ref[i] = float(o.ref) * signs[i]
    return ref


#: PNG text key naming the baseline a figure marks (checked by the tests: every figure of
#: evaluations marks it).
BASELINE_KEY = "evocl-baseline"


def save(fig: Any, path: Path, dpi: int, baseline: Evaluation | None, **kw: Any) -> None:
    """Write the figure as PNG (closing it); note in its metadata which baseline it marks."""
    import matplotlib.pyplot as plt

    meta = {"Software": "evocl"}
    if baseline is not None:
        meta[BASELINE_KEY] = f"candidate {baseline[0].id}"
    fig.savefig(path, dpi=dpi, metadata=meta, **kw)
    plt.close(fig)


BASELINE_STYLE = dict(marker="*", s=160, color="black", edgecolors="white", linewidths=0.6,
                      zorder=5)


def hypervolume_history(evaluations: Sequence[Evaluation], objectives: Sequence,
                        constraints: Sequence = (), ref: Sequence[float] | None = None,
                        ) -> tuple[list[int], list[float]]:
    """Hypervolume of the front of the first k evaluations, for each k with a successful one
    (``evolution.pareto``'s rule: failed and infeasible results add nothing, as in the
    engines; the derived reference point comes from every successful result unless ``ref``
    (minimization form) is given, e.g. one shared by several runs)."""
    from evocl.evolution.pareto import hypervolume

    scored = _scored(evaluations, objectives, constraints)
    if not scored:
        return [], []
    if ref is None:
        ref = reference_point(np.array([p for _, p, _ in scored]), objectives)
    xs, hv, feasible = [], [], []
    for k, p, ok in scored:
        if ok:
            feasible.append(p)
        xs.append(k)
        hv.append(hypervolume(np.array(feasible), ref) if feasible else 0.0)
    return xs, hv


def _scored(evaluations: Sequence[Evaluation], objectives: Sequence,
            constraints: Sequence = ()) -> list[tuple[int, np.ndarray, bool]]:
    """(1-based position, minimization vector, feasible) of each successful evaluation."""
    from evocl.evolution.pareto import min_vector, objective_signs, violation

    signs = objective_signs(objectives)
    out = []
    for k, (_, r) in enumerate(evaluations, start=1):
        fmin = min_vector(signs, r)
        if fmin is not None:
            out.append((k, np.array(fmin), violation(constraints, r) == 0.0))
    return out


def best_so_far(evaluations: Sequence[Evaluation], objective: Any) -> list[tuple[int, float]]:
    """(1-based position, best value of ``objective`` so far) at each successful evaluation."""
    best, out = None, []
    for k, (_, r) in enumerate(evaluations, start=1):
        v = r.objectives.get(objective.name)
        if not r.ok or v is None or not math.isfinite(float(v)):
            continue
        v = float(v)
        if best is None or (v > best if objective.direction == "maximize" else v < best):
            best = v
        out.append((k, best))
    return out


def _mark_baseline_value(ax: Any, value: float, label: str) -> None:
    ax.axhline(value, color="black", ls="--", lw=1, label=label)


def progress(evaluations: Sequence[Evaluation], objectives: Sequence, path: Path,
             constraints: Sequence = (), baseline: Evaluation | None = None,
             baseline_label: str = "baseline") -> str:
    """Hypervolume and each objective over evaluations; the baseline as a dashed line (its
    own hypervolume, its value of each objective)."""
    import matplotlib.pyplot as plt

    from evocl.evolution.pareto import hypervolume, min_vector, objective_signs

    n = len(objectives) + 1
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.2), squeeze=False)
    xs, hv = hypervolume_history(evaluations, objectives, constraints)
    axes[0][0].plot(xs, hv, drawstyle="steps-post", label="search")
    if baseline is not None and xs:
        scored = _scored(evaluations, objectives, constraints)
        ref = reference_point(np.array([p for _, p, _ in scored]), objectives)
        own = min_vector(objective_signs(objectives), baseline[1])
        if own is not None:
            _mark_baseline_value(axes[0][0], hypervolume(np.array([own]), ref),
                                 f"{baseline_label} alone")
    axes[0][0].set(title="hypervolume", xlabel="evaluations")
    axes[0][0].legend(fontsize=7)
    for ax, o in zip(axes[0][1:], objectives):
        pts = [(k, float(r.objectives[o.name])) for k, (_, r) in enumerate(evaluations, start=1)
               if r.ok and o.name in r.objectives and math.isfinite(float(r.objectives[o.name]))]
        seen = best_so_far(evaluations, o)
        if pts:
            ax.scatter(*zip(*pts), s=8, alpha=0.4, color="grey", label="evaluation")
            ax.plot(*zip(*seen), drawstyle="steps-post", color="C1", label="best so far")
        if baseline is not None and o.name in baseline[1].objectives:
            _mark_baseline_value(ax, float(baseline[1].objectives[o.name]), baseline_label)
        ax.set(title=f"{o.name} ({o.direction})", xlabel="evaluations")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    save(fig, path, 90, baseline)
    return path.name


def _pairs(objectives: Sequence) -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(objectives)) for j in range(i + 1, len(objectives))] or [(0, 0)]


def pareto(ok: Sequence[Evaluation], front: Sequence[Evaluation], objectives: Sequence, path: Path,
           baseline: Evaluation | None = None, baseline_label: str = "baseline") -> str:
    import matplotlib.pyplot as plt

    pairs = _pairs(objectives)
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.6), squeeze=False)
    names = [o.name for o in objectives]
    allv = np.array([[r.objectives[n] for n in names] for _, r in ok])
    frontv = np.array([[r.objectives[n] for n in names] for _, r in front]) if front else np.zeros((0, len(names)))
    for ax, (i, j) in zip(axes[0], pairs):
        ax.scatter(allv[:, i], allv[:, j], s=10, color="grey", alpha=0.5, label="evaluated")
        if len(frontv):
            order = np.argsort(frontv[:, i])
            ax.scatter(frontv[:, i], frontv[:, j], s=24, color="C3", label="Pareto front")
            if len(objectives) == 2:
                ax.plot(frontv[order, i], frontv[order, j], color="C3", lw=1)
        if baseline is not None:
            b = baseline[1].objectives
            ax.scatter([b[names[i]]], [b[names[j]]], label=baseline_label, **BASELINE_STYLE)
        ax.set(xlabel=f"{names[i]} ({objectives[i].direction})", ylabel=f"{names[j]} ({objectives[j].direction})")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save(fig, path, 90, baseline)
    return path.name


def accuracy_matrix(chosen: Evaluation, path: Path, baseline: Evaluation | None = None,
                    baseline_label: str = "baseline") -> str:
    """The chosen configuration's accuracy matrix, beside the baseline's when there is one."""
    import matplotlib.pyplot as plt

    panels = [(chosen, f"candidate {chosen[0].id}")]
    marked = None
    if baseline is not None and baseline[0].id == chosen[0].id:
        panels, marked = [(chosen, f"{baseline_label} (candidate {chosen[0].id})")], baseline
    elif baseline is not None and baseline[1].metrics.get("accuracy_matrix"):
        panels.insert(0, (baseline, f"{baseline_label} (candidate {baseline[0].id})"))
        marked = baseline
    first = np.array(chosen[1].metrics["accuracy_matrix"], dtype=float)
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(len(panels) * (0.8 * first.shape[1] + 1.4) + 0.8,
                                      0.7 * first.shape[0] + 1.4))
    for ax, ((cand, res), title) in zip(axes[0], panels):
        r = np.array(res.metrics["accuracy_matrix"], dtype=float)
        im = ax.imshow(r, vmin=0, vmax=1, cmap="viridis")
        for (i, j), v in np.ndenumerate(r):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=8)
        ax.set(xlabel="evaluated on task", ylabel="after training task", title=title,
               xticks=range(r.shape[1]), yticks=range(r.shape[0]))
    fig.colorbar(im, ax=list(axes[0]), fraction=0.046, label=metric_name(chosen[1]))
    save(fig, path, 90, marked, bbox_inches="tight")
    return path.name


def metric_name(res: Any) -> str:
    """What R[i][j] is: a classifier's accuracy, or a generative stream's task metric(s)."""
    m = res.metrics
    if m.get("metric") in (None, "accuracy"):
        return "accuracy"
    if m["metric"] == "mixed":
        return "score (" + ", ".join(m.get("task_metrics", [])) + ")"
    return m["metric"]


def retention(chosen: Evaluation, path: Path, baseline: Evaluation | None = None,
              baseline_label: str = "baseline") -> str:
    """The retention set's score before training and after each task, for the chosen
    configuration and the baseline."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    runs = [(chosen, f"candidate {chosen[0].id}", "C3")]
    if baseline is not None and baseline[0].id != chosen[0].id \
            and baseline[1].metrics.get("retention"):
        runs.insert(0, (baseline, f"{baseline_label} (candidate {baseline[0].id})", "black"))
    info = chosen[1].metrics["retention"]
    for (_, res), label, color in runs:
        scores = res.metrics["retention"]["scores"]
        ax.plot(range(len(scores)), scores, marker="o", color=color, label=label)
    n = len(info["scores"])
    ax.set(xticks=range(n), xticklabels=["untrained"] + [f"after {t}" for t in range(n - 1)],
           ylabel=f"{info['metric']} on {info['set']}", title="Retention of general ability")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, path, 90, baseline)
    return path.name


def _axis_value(p: Any, value: Any) -> float:
    """A parameter value on a [0, 1] axis (categorical and bool by index; log scales logged)."""
    if p.type in ("categorical", "bool"):
        choices = list(p.choices) if p.type == "categorical" else [False, True]
        idx = next((i for i, c in enumerate(choices) if c == value and type(c) is type(value)),
                   choices.index(value) if value in choices else 0)
        return idx / max(1, len(choices) - 1)
    lo, hi, v = float(p.low), float(p.high), float(value)
    if getattr(p, "log", False):
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return (v - lo) / (hi - lo) if hi > lo else 0.5


def parameters(ok: Sequence[Evaluation], space, objectives: Sequence, path: Path,
               baseline: Evaluation | None = None, baseline_label: str = "baseline") -> str:
    """One scatter per (parameter, objective); categorical and bool values on an index axis;
    the baseline as a star where the parameter is active in it."""
    import matplotlib.pyplot as plt

    params = list(space.parameters)
    fig, axes = plt.subplots(len(params), len(objectives), squeeze=False,
                             figsize=(3.2 * len(objectives), 1.9 * len(params)))
    rng = np.random.default_rng(0)
    for row, p in enumerate(params):
        have = [(c.config[p.name], r) for c, r in ok if p.name in c.config]
        choices = (list(p.choices) if p.type == "categorical" else [False, True]
                   if p.type == "bool" else None)

        def x_of(v: Any, jitter: bool = True) -> float:
            if choices is None:
                return v
            return choices.index(v) + (rng.uniform(-0.15, 0.15) if jitter else 0.0)

        for col, o in enumerate(objectives):
            ax = axes[row][col]
            if not have:
                ax.set_axis_off()
                continue
            ys = [r.objectives[o.name] for _, r in have]
            if choices is not None:
                ax.set_xticks(range(len(choices)))
                ax.set_xticklabels([str(c) for c in choices], fontsize=7, rotation=20)
            elif getattr(p, "log", False):
                ax.set_xscale("log")
            ax.scatter([x_of(v) for v, _ in have], ys, s=8, alpha=0.6)
            if baseline is not None and p.name in baseline[0].config \
                    and o.name in baseline[1].objectives:
                ax.scatter([x_of(baseline[0].config[p.name], False)],
                           [baseline[1].objectives[o.name]],
                           label=baseline_label if row == col == 0 else None, **BASELINE_STYLE)
            ax.tick_params(labelsize=7)
            ax.set_xlabel(p.name, fontsize=8)
            if col == 0 or row == 0:
                ax.set_ylabel(o.name, fontsize=8)
    if baseline is not None:
        fig.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    save(fig, path, 80, baseline)
    return path.name


def parallel_coordinates(front: Sequence[Evaluation], near: Sequence[Evaluation], space: Any,
                         path: Path, baseline: Evaluation | None = None,
                         baseline_label: str = "baseline") -> str:
    """Objectives then parameters, each on its own [0, 1] axis: the front (rank 1) in colour,
    the near-front (rank 2) in grey, the baseline dashed. An inactive parameter breaks the
    line (no value). Objective axes run from the worst shown value (bottom) to the best."""
    import matplotlib.pyplot as plt

    objectives = list(space.objectives)
    params = list(space.parameters)
    shown = list(front) + list(near) + ([baseline] if baseline is not None else [])
    bounds = {}
    for o in objectives:
        vals = [float(r.objectives[o.name]) for _, r in shown]
        bounds[o.name] = (min(vals), max(vals))
    labels = [f"{o.name}\n({'max' if o.direction == 'maximize' else 'min'})" for o in objectives]
    labels += [p.name for p in params]

    def row(ev: Evaluation) -> list[float]:
        cand, res = ev
        out = []
        for o in objectives:
            lo, hi = bounds[o.name]
            v = (float(res.objectives[o.name]) - lo) / (hi - lo) if hi > lo else 0.5
            out.append(v if o.direction == "maximize" else 1.0 - v)
        for p in params:
            out.append(_axis_value(p, cand.config[p.name]) if p.name in cand.config else np.nan)
        return out

    xs = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(8.0, 0.62 * len(labels)), 4.4))

    def draw(ev: Evaluation, **style: Any) -> None:
        ys = np.array(row(ev))
        keep = ~np.isnan(ys)  # an inactive parameter is skipped, the line goes on
        ax.plot(xs[keep], ys[keep], **style)

    for i, ev in enumerate(near):
        draw(ev, color="grey", alpha=0.45, lw=1, label="near-front (rank 2)" if i == 0 else None)
    cmap = plt.get_cmap("viridis")
    for i, ev in enumerate(front):
        draw(ev, color=cmap(0.85 * i / max(1, len(front) - 1)), lw=1.8, marker="o", ms=3,
             label="Pareto front" if i == 0 else None)
    if baseline is not None:
        draw(baseline, color="black", ls="--", lw=1.6, marker="*", ms=9,
             label=f"{baseline_label} (candidate {baseline[0].id})")
    for x in xs:
        ax.axvline(x, color="#bbb", lw=0.6, zorder=0)

    def ends(x: int, top: str, bottom: str) -> None:
        ax.text(x, 1.03, top, ha="center", fontsize=6.5)
        ax.text(x, -0.05, bottom, ha="center", va="top", fontsize=6.5)

    for x, o in enumerate(objectives):
        lo, hi = bounds[o.name]
        ends(x, *((f"{hi:.3g}", f"{lo:.3g}") if o.direction == "maximize" else
                  (f"{lo:.3g}", f"{hi:.3g}")))
    for x, p in enumerate(params, start=len(objectives)):
        if p.type in ("float", "int"):
            ends(x, f"{p.high:.3g}", f"{p.low:.3g}")
        else:
            choices = list(p.choices) if p.type == "categorical" else [False, True]
            for c in choices:
                ax.text(x + 0.06, _axis_value(p, c), str(c)[:10], fontsize=6, va="center",
                        color="#555")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.12, 1.1)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    save(fig, path, 90, baseline)
    return path.name


def importance(imp: dict[str, dict[str, float]], objectives: Sequence, path: Path,
               top: int = 15) -> str:
    """One horizontal bar chart per objective: each parameter's share of the variance."""
    import matplotlib.pyplot as plt

    names = [o.name for o in objectives if o.name in imp]
    n_rows = min(top, max(len(imp[n]) for n in names))
    fig, axes = plt.subplots(1, len(names), squeeze=False,
                             figsize=(4.2 * len(names), 0.32 * n_rows + 1.4))
    for ax, name in zip(axes[0], names):
        items = sorted(imp[name].items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
        ax.barh([k for k, _ in items], [v for _, v in items], color="C0")
        ax.set(title=f"{name}", xlabel="fANOVA importance (share of variance)", xlim=(0, 1))
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    save(fig, path, 90, None)
    return path.name
