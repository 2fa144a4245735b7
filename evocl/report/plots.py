"""The report's figures, each a function from evaluations to one PNG file (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from evocl.records import Candidate, Result

Evaluation = tuple[Candidate, Result]


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


def hypervolume_history(evaluations: Sequence[Evaluation], objectives: Sequence,
                        constraints: Sequence = ()) -> tuple[list[int], list[float]]:
    """Hypervolume of the front of the first k evaluations, for each k with a successful one
    (``evolution.pareto``'s rule: failed and infeasible results add nothing, as in the
    engines; the derived reference point comes from every successful result)."""
    from evocl.evolution.pareto import hypervolume, min_vector, objective_signs, violation

    signs = objective_signs(objectives)
    scored = []
    for k, (_, r) in enumerate(evaluations, start=1):
        fmin = min_vector(signs, r)
        if fmin is not None:
            scored.append((k, np.array(fmin), violation(constraints, r) == 0.0))
    if not scored:
        return [], []
    ref = reference_point(np.array([p for _, p, _ in scored]), objectives)
    xs, hv, feasible = [], [], []
    for k, p, ok in scored:
        if ok:
            feasible.append(p)
        xs.append(k)
        hv.append(hypervolume(np.array(feasible), ref) if feasible else 0.0)
    return xs, hv


def progress(evaluations: Sequence[Evaluation], objectives: Sequence, path: Path,
             constraints: Sequence = ()) -> str:
    import matplotlib.pyplot as plt

    from evocl.evolution.pareto import min_vector, objective_signs

    n = len(objectives) + 1
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.2), squeeze=False)
    xs, hv = hypervolume_history(evaluations, objectives, constraints)
    axes[0][0].plot(xs, hv, drawstyle="steps-post")
    axes[0][0].set(title="hypervolume", xlabel="evaluations")
    signs = objective_signs(objectives)
    succeeded = [min_vector(signs, r) is not None for _, r in evaluations]
    for ax, o in zip(axes[0][1:], objectives):
        best, seen, pts = None, [], []
        for k, (_, r) in enumerate(evaluations, start=1):
            if succeeded[k - 1]:
                v = float(r.objectives[o.name])
                pts.append((k, v))
                better = best is None or (v > best if o.direction == "maximize" else v < best)
                best = v if better else best
                seen.append((k, best))
        if pts:
            ax.scatter(*zip(*pts), s=8, alpha=0.4, color="grey", label="evaluation")
            ax.plot(*zip(*seen), drawstyle="steps-post", color="C1", label="best so far")
        ax.set(title=f"{o.name} ({o.direction})", xlabel="evaluations")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def pareto(ok: Sequence[Evaluation], front: Sequence[Evaluation], objectives: Sequence, path: Path) -> str:
    import matplotlib.pyplot as plt

    pairs = [(i, j) for i in range(len(objectives)) for j in range(i + 1, len(objectives))] or [(0, 0)]
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
        ax.set(xlabel=f"{names[i]} ({objectives[i].direction})", ylabel=f"{names[j]} ({objectives[j].direction})")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def accuracy_matrix(chosen: Evaluation, path: Path) -> str:
    import matplotlib.pyplot as plt

    cand, res = chosen
    r = np.array(res.metrics["accuracy_matrix"], dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 * r.shape[1] + 2, 1.0 * r.shape[0] + 1.5))
    im = ax.imshow(r, vmin=0, vmax=1, cmap="viridis")
    for (i, j), v in np.ndenumerate(r):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=8)
    ax.set(xlabel="evaluated on task", ylabel="after training task", title=f"candidate {cand.id}",
           xticks=range(r.shape[1]), yticks=range(r.shape[0]))
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def parameters(ok: Sequence[Evaluation], space, objectives: Sequence, path: Path) -> str:
    """One scatter per (parameter, objective); categorical and bool values on an index axis."""
    import matplotlib.pyplot as plt

    params = list(space.parameters)
    fig, axes = plt.subplots(len(params), len(objectives), squeeze=False,
                             figsize=(3.2 * len(objectives), 1.9 * len(params)))
    rng = np.random.default_rng(0)
    for row, p in enumerate(params):
        have = [(c.config[p.name], r) for c, r in ok if p.name in c.config]
        for col, o in enumerate(objectives):
            ax = axes[row][col]
            if not have:
                ax.set_axis_off()
                continue
            ys = [r.objectives[o.name] for _, r in have]
            if p.type in ("categorical", "bool"):
                choices = list(p.choices) if p.type == "categorical" else [False, True]
                xs = [choices.index(v) + rng.uniform(-0.15, 0.15) for v, _ in have]
                ax.set_xticks(range(len(choices)))
                ax.set_xticklabels([str(c) for c in choices], fontsize=7, rotation=20)
            else:
                xs = [v for v, _ in have]
                if getattr(p, "log", False):
                    ax.set_xscale("log")
            ax.scatter(xs, ys, s=8, alpha=0.6)
            ax.tick_params(labelsize=7)
            ax.set_xlabel(p.name, fontsize=8)
            if col == 0 or row == 0:
                ax.set_ylabel(o.name, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path.name
