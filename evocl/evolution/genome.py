"""Genomes as numpy arrays: activity, model features and NSGA-II's variation, vectorized.

A genome has one gene in [0, 1] per parameter of a search space (``SearchSpace.encode``):
the position in [low, high] (log scale for log parameters), the centre of a choice's bin, or
0.25 / 0.75 for a bool. ``GenomeCodec`` works on whole arrays of genomes at once, which is
what an engine that breeds and scores hundreds of proposals per candidate needs (the space's
own operators work on one configuration dict at a time).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from evocl.evolution.parts import SBXPolynomial
from evocl.space.params import same_choice

_EPS = 1.0e-14   # parents closer than this are not crossed (as in evocl.space.operators)


class GenomeCodec:
    """Vectorized views of a space's genomes: which genes are active, the model's features,
    and NSGA-II's variation (bounded SBX, polynomial mutation, categorical swap / resample,
    bool flip) on whole arrays of genomes.

    The operators are those of ``evocl.space.operators`` on the genome's normalized numeric
    scale (SBX and polynomial mutation are invariant to the affine map from z to the gene);
    genes of inactive parameters are carried along (latent), so a child that switches a
    strategy on inherits a parent's setting of it rather than a fresh draw."""

    def __init__(self, space: Any):
        self.space = space
        specs = list(space._specs)
        self.d = len(specs)
        self.numeric = np.array([s.kind in ("float", "int") for s in specs])
        self.n_choices = np.array([s.n if s.kind == "categorical" else 2 for s in specs])
        self.is_cat = np.array([s.kind == "categorical" for s in specs])
        self.is_bool = np.array([s.kind == "bool" for s in specs])
        # conditions: (param index, [(parent index, matcher)])
        self._conds: list[tuple[int, list[tuple[int, Any]]]] = []
        for s in specs:
            if not s.param.when:
                continue
            conds = []
            for parent, allowed in s.param.when.items():
                ps = space._by_name[parent]
                conds.append((ps.index, self._matcher(ps, allowed)))
            self._conds.append((s.index, conds))

    def _matcher(self, ps: Any, allowed: Sequence[Any]) -> Any:
        if ps.kind == "categorical":
            ok = np.array([any(same_choice(c, a) for a in allowed) for c in ps.param.choices])
            n = ps.n
            return lambda u: ok[np.minimum((u * n).astype(int), n - 1)]
        if ps.kind == "bool":
            want = {bool(a) for a in allowed if isinstance(a, bool)}
            return lambda u: np.isin(u >= 0.5, list(want))

        def numeric(u: np.ndarray) -> np.ndarray:  # rare: a condition on a number
            vals = [self.space._from_z(ps, ps.zlow + float(x) * (ps.zhigh - ps.zlow)) for x in u]
            return np.array([any(same_choice(v, a) for a in allowed) for v in vals], dtype=bool)
        return numeric

    def active(self, G: np.ndarray) -> np.ndarray:
        """(n, d) bool: which parameters are active in each genome (decode's rule)."""
        act = np.ones(G.shape, dtype=bool)
        for i, conds in self._conds:
            a = np.ones(len(G), dtype=bool)
            for j, match in conds:
                a &= act[:, j] & match(np.clip(G[:, j], 0.0, 1.0))
            act[:, i] = a
        return act

    def features(self, G: np.ndarray, act: np.ndarray | None = None) -> np.ndarray:
        """The model's inputs: genes snapped to their choice's bin centre (categorical) or
        0.25 / 0.75 (bool), numeric genes as they are, and -1 where inactive."""
        G = np.clip(G, 0.0, 1.0)
        act = self.active(G) if act is None else act
        k = self.n_choices
        snapped = (np.minimum((G * k).astype(int), k - 1) + 0.5) / k
        X = np.where(self.numeric, G, snapped)
        return np.where(act, X, -1.0)

    def vary(self, A: np.ndarray, B: np.ndarray, rng: np.random.Generator,
             v: SBXPolynomial) -> np.ndarray:
        """One child per row pair (the first of SBX's two children), mutated."""
        n, d = A.shape
        r = rng.random((5, n, d))
        cross = (rng.random(n) < v.crossover_prob)[:, None]
        lo, hi = np.minimum(A, B), np.maximum(A, B)
        diff = hi - lo
        do = cross & self.numeric & (r[0] < v.prob_var) & (diff > _EPS)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            safe = np.where(diff > _EPS, diff, 1.0)
            c1 = _sbx_child(lo, hi, safe, lo, r[1], v.eta_c, lower=True)
            c2 = _sbx_child(lo, hi, safe, 1.0 - hi, r[1], v.eta_c, lower=False)
        c1, c2 = np.clip(c1, 0.0, 1.0), np.clip(c2, 0.0, 1.0)
        near_a = np.where(A <= B, c1, c2)        # the child that starts near parent A
        near_b = np.where(A <= B, c2, c1)
        childA = np.where(do, near_a, A)
        childB = np.where(do, near_b, B)
        swap = cross & (r[2] < 0.5)
        child = np.where(swap, childB, childA)
        return self.mutate(child, r[3], r[4], v)

    def mutate(self, G: np.ndarray, r_do: np.ndarray, r_val: np.ndarray,
               v: SBXPolynomial) -> np.ndarray:
        """Polynomial mutation of numeric genes, a different choice for categorical ones, a
        flip for bools; each active gene with probability indpb (default 1 / active genes)."""
        act = self.active(G)
        if v.indpb is None:
            indpb = 1.0 / np.maximum(act.sum(axis=1, keepdims=True), 1)
        else:
            indpb = np.full((len(G), 1), float(v.indpb))
        do = act & (r_do < indpb)
        out = G.copy()
        pm = _pm(G, r_val, v.eta_m)
        out = np.where(do & self.numeric, pm, out)
        k = self.n_choices
        cur = np.minimum((G * k).astype(int), k - 1)
        j = (r_val * (k - 1)).astype(int)
        new = np.where(j >= cur, j + 1, j)
        out = np.where(do & self.is_cat & (k > 1), (new + 0.5) / k, out)
        out = np.where(do & self.is_bool, np.where(G >= 0.5, 0.25, 0.75), out)
        return out


def _sbx_child(lo: np.ndarray, hi: np.ndarray, d: np.ndarray, room: np.ndarray,
               u: np.ndarray, eta: float, lower: bool) -> np.ndarray:
    """Bounded SBX (``operators._sbx_pair``) on arrays: the child near ``lo`` (lower) or
    near ``hi``; ``room`` is the distance from that parent to its bound."""
    beta = 1.0 + 2.0 * room / d
    alpha = 2.0 - beta ** -(eta + 1.0)
    inv = 1.0 / (eta + 1.0)
    bq = np.where(u <= 1.0 / alpha, (u * alpha) ** inv, (1.0 / (2.0 - u * alpha)) ** inv)
    return 0.5 * (lo + hi - bq * d) if lower else 0.5 * (lo + hi + bq * d)


def _pm(z: np.ndarray, u: np.ndarray, eta: float) -> np.ndarray:
    """Bounded polynomial mutation (``operators._pm``) of genes in [0, 1], on arrays."""
    z = np.clip(z, 0.0, 1.0)
    p = eta + 1.0
    low = 2.0 * u + (1.0 - 2.0 * u) * (1.0 - z) ** p
    high = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * (1.0 - (1.0 - z)) ** p
    dq = np.where(u <= 0.5, low ** (1.0 / p) - 1.0, 1.0 - high ** (1.0 / p))
    return np.clip(z + dq, 0.0, 1.0)
