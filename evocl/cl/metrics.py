"""Continual-learning metrics from an accuracy matrix (pure functions, no torch).

``R[i][j]`` = accuracy on task j's validation split after training task i (all j, including
future tasks); ``b[j]`` = accuracy of the untrained model (random head, LoRA B = 0) on task j.
With a single task, BWT, FWT and forgetting are 0 (nothing to forget or transfer to).
"""

from __future__ import annotations

from typing import Sequence

Matrix = Sequence[Sequence[float]]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def average_accuracy(R: Matrix) -> float:
    """ACC = mean_j R[T-1][j]."""
    return _mean([float(v) for v in R[-1]])


def backward_transfer(R: Matrix) -> float:
    """BWT = 1/(T-1) sum_{j<T-1} (R[T-1][j] - R[j][j])  (Lopez-Paz & Ranzato 2017)."""
    T = len(R)
    return _mean([R[T - 1][j] - R[j][j] for j in range(T - 1)])


def forward_transfer(R: Matrix, b: Sequence[float]) -> float:
    """FWT = 1/(T-1) sum_{j>=1} (R[j-1][j] - b[j])  (Lopez-Paz & Ranzato 2017)."""
    return _mean([R[j - 1][j] - b[j] for j in range(1, len(R))])


def forgetting(R: Matrix) -> float:
    """Average forgetting (Chaudhry et al. 2018): mean over j < T-1 of
    max_{j <= l < T-1} R[l][j] - R[T-1][j].

    The max runs over evaluations after task j was learned (l >= j): accuracy on a task before
    training on it is not knowledge that can be forgotten.
    """
    T = len(R)
    return _mean([max(R[l][j] for l in range(j, T - 1)) - R[T - 1][j] for j in range(T - 1)])


def plasticity(R: Matrix) -> float:
    """Mean accuracy on each task right after learning it: mean_i R[i][i]."""
    return _mean([R[i][i] for i in range(len(R))])


def summarize(R: Matrix, b: Sequence[float]) -> dict[str, float]:
    """acc, bwt, fwt, forgetting and plasticity of ``R`` (square, T x T) and ``b`` (T)."""
    return {"acc": average_accuracy(R), "bwt": backward_transfer(R),
            "fwt": forward_transfer(R, b), "forgetting": forgetting(R),
            "plasticity": plasticity(R)}
