"""TPE's density ratio over genomes, for pre-screening and model-guided mutation.

The tree-structured Parzen estimator (Bergstra et al. 2011) splits the results into good and
bad and models each group's genes independently; a proposal is promising where the good
density l is large against the bad one g. ``ParzenRatio`` is Optuna's univariate estimator
on the genome's scale (``evocl.evolution.genome``); ``good_split`` is MOTPE's split of a
multi-objective result set (Ozaki et al. 2020).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from evocl.evolution.genome import GenomeCodec

_GRID = np.linspace(0.0, 1.0, 201)   # where the ratio of a numeric gene is tabulated


class ParzenRatio:
    """TPE's density ratio over genomes (Bergstra et al. 2011; Optuna's univariate
    estimator): per gene, a Parzen mixture of the good results' values l and of the others'
    g (truncated Gaussians on [0, 1] with the neighbour-gap bandwidths and the uniform-ish
    prior kernel of Optuna's ``_ParzenEstimator``; smoothed frequencies for choices).
    ``gain`` is log l - log g of one gene, ``guided`` mutates by it, ``sample`` draws
    from l."""

    def __init__(self, codec: GenomeCodec, good: np.ndarray, good_act: np.ndarray,
                 bad: np.ndarray, bad_act: np.ndarray):
        self.codec = codec
        self.l = [self._fit(j, good[good_act[:, j], j]) for j in range(codec.d)]
        g = [self._fit(j, bad[bad_act[:, j], j]) for j in range(codec.d)]
        # log l - log g of every gene, tabulated (numeric genes on a grid, interpolated)
        self._gain = [self._log_density(self.l[j], j, self._points(j))
                      - self._log_density(g[j], j, self._points(j)) for j in range(codec.d)]

    def _points(self, j: int) -> np.ndarray:
        if self.codec.numeric[j]:
            return _GRID
        k = int(self.codec.n_choices[j])
        return (np.arange(k) + 0.5) / k

    def gain(self, j: int, x: np.ndarray) -> np.ndarray:
        """log l(x) - log g(x) of gene j."""
        if self.codec.numeric[j]:
            return np.interp(np.clip(x, 0.0, 1.0), _GRID, self._gain[j])
        k = int(self.codec.n_choices[j])
        return self._gain[j][np.minimum((np.clip(x, 0, 1) * k).astype(int), k - 1)]

    def _fit(self, j: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mus, sigmas) with the prior kernel last (numeric), or (probs, k) (choices)."""
        if not self.codec.numeric[j]:
            k = int(self.codec.n_choices[j])
            idx = np.minimum((np.clip(x, 0, 1) * k).astype(int), k - 1)
            counts = np.bincount(idx, minlength=k).astype(float)
            return (counts + 1.0 / k) / (len(x) + 1.0), np.array([k])
        mus = np.sort(np.clip(x, 0.0, 1.0))
        ends = np.concatenate([[0.0], mus, [1.0]])
        sig = np.maximum(ends[1:-1] - ends[:-2], ends[2:] - ends[1:-1])
        sig = np.clip(sig, 1.0 / min(100.0, len(x) + 2.0), 1.0)
        return np.append(mus, 0.5), np.append(sig, 1.0)

    def _log_density(self, est: tuple[np.ndarray, np.ndarray], j: int,
                     x: np.ndarray) -> np.ndarray:
        from scipy.special import ndtr

        a, b = est
        if not self.codec.numeric[j]:
            k = int(b[0])
            return np.log(a[np.minimum((np.clip(x, 0, 1) * k).astype(int), k - 1)])
        z = (x[:, None] - a[None, :]) / b[None, :]
        mass = ndtr((1.0 - a) / b) - ndtr(-a / b)                      # truncation to [0, 1]
        dens = np.exp(-0.5 * z * z) / (math.sqrt(2 * math.pi) * b * mass)
        return np.log(np.maximum(dens.mean(axis=1), 1e-300))

    def guided(self, G: np.ndarray, mask: np.ndarray, k: int,
               rng: np.random.Generator) -> np.ndarray:
        """Model-guided mutation: each masked gene takes, of k draws from l, the one with
        the largest ratio l / g (univariate TPE's choice, Bergstra et al. 2011)."""
        out = G.copy()
        for j in range(self.codec.d):
            rows = np.flatnonzero(mask[:, j])
            if not len(rows):
                continue
            x = self._draw(j, len(rows) * k, rng)
            best = self.gain(j, x).reshape(len(rows), k).argmax(axis=1)
            out[rows, j] = x.reshape(len(rows), k)[np.arange(len(rows)), best]
        return out

    def _draw(self, j: int, n: int, rng: np.random.Generator) -> np.ndarray:
        from scipy.special import ndtr, ndtri

        a, b = self.l[j]
        if not self.codec.numeric[j]:
            k = int(b[0])
            return (rng.choice(k, size=n, p=a / a.sum()) + 0.5) / k
        pick = rng.integers(len(a), size=n)
        mu, sd = a[pick], b[pick]
        lo, hi = ndtr(-mu / sd), ndtr((1.0 - mu) / sd)
        u = lo + rng.random(n) * (hi - lo)
        return np.clip(mu + sd * ndtri(np.clip(u, 1e-12, 1 - 1e-12)), 0.0, 1.0)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([self._draw(j, n, rng) for j in range(self.codec.d)], axis=1)


def good_split(ids: Sequence[int], fmin: Mapping[int, tuple[float, ...]],
               cv: Mapping[int, float], k: int) -> list[int]:
    """The k best of ``ids`` as MOTPE splits them: whole non-dominated fronts (Deb's
    constrained domination) while they fit, then from the next front a subset of large
    hypervolume: its least contributor dropped until k fit (SMS-EMOA's greedy reduction;
    Optuna's ``_split_complete_trials_multi_objective`` adds greedily instead), with each
    objective scaled to [0, 1] over ``ids`` and the reference point at 1.1."""
    ids = list(ids)
    if len(ids) <= k:
        return ids
    fronts = _fronts(ids, fmin, cv, k)
    F = np.array([fmin[i] for i in ids], dtype=float)
    lo, hi = F.min(axis=0), F.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    ref = np.full(len(lo), 1.1)
    out: list[int] = []
    for front in fronts:
        if len(out) + len(front) <= k:
            out += front
            continue
        keep = list(front)                      # drop the least contributor until k fit
        while len(out) + len(keep) > k:
            pts = np.array([(np.array(fmin[i]) - lo) / span for i in keep])
            contrib = _contributions(pts, ref)
            order = sorted(range(len(keep)), key=lambda j: (contrib[j], -keep[j]))
            drop = max(1, len(out) + len(keep) - k - 16)   # a large front: many at once
            gone = set(order[:drop])
            keep = [i for j, i in enumerate(keep) if j not in gone]
        out += keep
        break
    return out


def _fronts(ids: list[int], fmin: Mapping[int, tuple[float, ...]], cv: Mapping[int, float],
            k: int) -> list[list[int]]:
    """The first non-dominated fronts of ``ids`` (Deb's constrained domination, as
    ``pareto.dominates``), peeled until they hold k ids; each front in id order. Vectorized:
    the ranking runs on every result told, so it must stay cheap at hundreds of them."""
    F = np.array([fmin[i] for i in ids], dtype=float)
    V = np.array([cv[i] for i in ids], dtype=float)
    le = np.all(F[:, None, :] <= F[None, :, :], axis=2)
    lt = np.any(F[:, None, :] < F[None, :, :], axis=2)
    same_cv = V[:, None] == V[None, :]
    by_cv = (V[:, None] == 0.0) | ((V[None, :] != 0.0) & (V[:, None] < V[None, :]))
    dom = np.where(same_cv, le & lt, by_cv & ~same_cv)       # dom[a, b]: a dominates b
    left = np.ones(len(ids), dtype=bool)
    fronts: list[list[int]] = []
    taken = 0
    while taken < k and left.any():
        beaten = (dom[left][:, left]).any(axis=0)
        idx = np.flatnonzero(left)[~beaten]
        fronts.append(sorted(ids[i] for i in idx))
        left[idx] = False
        taken += len(idx)
    return fronts


def _contributions(points: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Each point's exclusive hypervolume contribution (0 for points dominated or outside)."""
    import moocore

    if points.shape[1] == 1:
        order = np.argsort(points[:, 0], kind="stable")
        out = np.zeros(len(points))
        best = order[0]
        nxt = points[order[1], 0] if len(points) > 1 else ref[0]
        out[best] = max(nxt - points[best, 0], 0.0)
        return out
    return np.asarray(moocore.hv_contributions(points, ref=ref), dtype=float)
