"""``sa-nsga2``: surrogate-assisted steady-state NSGA-II for expensive evaluations.

An evaluation of a continual-learning configuration costs seconds to minutes; a model of the
results so far costs milliseconds. This engine spends the model's time to save evaluations,
in the manner of surrogate-assisted evolution (pre-screening, Emmerich et al. 2006; Jin 2011)
and ParEGO's scalarised acquisition (Knowles 2006), with a random-forest-style model as in
SMAC (Hutter et al. 2011):

1. **Space-filling start.** The first ``n_initial`` candidates (after the run's initial
   configurations) are points of a scrambled Sobol sequence over the genome (one gene in
   [0, 1] per parameter, ``SearchSpace.encode``), not uniform draws: the first results cover
   the space evenly. Until ``n_initial`` results are told (and two are successful), every
   candidate is a design point.
2. **Pre-screening.** Then each candidate is chosen from a pool of ``pool_size`` proposals:
   children of the steady-state population (NSGA-II's binary tournament, SBX crossover and
   polynomial mutation on genomes), mutants of the Pareto front (model-guided local search)
   and uniform samples (exploration). An ensemble of extremely randomized trees
   (scikit-learn's ExtraTreesRegressor), fitted on every result so far (failed and pruned ones
   at the worst values seen), predicts each proposal's objectives, normalized to [0, 1], and
   its constraint violation. A random Chebyshev weighting of the objectives, drawn per
   candidate (ParEGO), scalarises each tree's prediction; the proposal with the largest
   expected improvement over the best scalarised result, times the share of trees that
   predict it feasible, is asked (the next best when it duplicates a known configuration).
3. **Steady-state survival.** A successful result joins the population at once; when it
   overflows ``population_size``, the member worst by non-dominated rank then crowding
   distance leaves (``RankAndCrowding.reduce``, as ``async-nsga2``). No generation barrier:
   every free worker gets a candidate at once.

The model is refitted when the told results have grown by ``refit`` (a share, at least one)
since the last fit, on the ``max_train`` newest results. Everything random draws from
generators seeded by (seed, purpose, candidate id or fit size) and the model is a pure
function of the results it was fitted on (trees seeded likewise, one thread), so ``ask(n)``
equals n ``ask(1)`` and an engine rebuilt from ``state()`` (which records the fitted ids)
continues exactly, with the same scikit-learn version.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from evocl.errors import UserError
from evocl.evolution.base import Proto
from evocl.evolution.parts import SBXPolynomial
from evocl.evolution.steady import AsyncNSGA2
from evocl.records import derive_seed
from evocl.space.params import same_choice

_POOL = 7         # rng purpose tags (see Engine._rng; 0-5 are taken by the other engines)
_LATENT = 8
_EPS = 1.0e-14
_RHO = 0.05      # augmentation of the Chebyshev scalarisation (ParEGO)


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


class ParzenRatio:
    """TPE's density ratio over genomes (Bergstra et al. 2011; Optuna's univariate
    estimator): per gene, a Parzen mixture of the good results' values l and of the others'
    g (truncated Gaussians on [0, 1] with the neighbour-gap bandwidths and the uniform-ish
    prior kernel of Optuna's ``_ParzenEstimator``; smoothed frequencies for choices).
    ``score`` sums log l - log g over each genome's active genes; ``sample`` draws from l."""

    def __init__(self, codec: GenomeCodec, good: np.ndarray, good_act: np.ndarray,
                 bad: np.ndarray, bad_act: np.ndarray):
        self.codec = codec
        self.l = [self._fit(j, good[good_act[:, j], j]) for j in range(codec.d)]
        self.g = [self._fit(j, bad[bad_act[:, j], j]) for j in range(codec.d)]

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

    def score(self, G: np.ndarray, act: np.ndarray) -> np.ndarray:
        G = np.clip(G, 0.0, 1.0)
        total = np.zeros(len(G))
        for j in range(self.codec.d):
            on = act[:, j]
            if on.any():
                x = G[on, j]
                total[on] += self._log_density(self.l[j], j, x) - self._log_density(self.g[j], j, x)
        return total

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        from scipy.special import ndtr, ndtri

        out = np.empty((n, self.codec.d))
        for j, (a, b) in enumerate(self.l):
            if not self.codec.numeric[j]:
                k = int(b[0])
                out[:, j] = (rng.choice(k, size=n, p=a / a.sum()) + 0.5) / k
                continue
            pick = rng.integers(len(a), size=n)
            mu, sd = a[pick], b[pick]
            lo, hi = ndtr(-mu / sd), ndtr((1.0 - mu) / sd)
            u = lo + rng.random(n) * (hi - lo)
            out[:, j] = np.clip(mu + sd * ndtri(np.clip(u, 1e-12, 1 - 1e-12)), 0.0, 1.0)
        return out


class SurrogateNSGA2(AsyncNSGA2):
    """Steady-state NSGA-II (``async-nsga2``'s population, parts and survival) whose every
    candidate is the best of a pre-screened pool (see the module docstring). Options beyond NSGA-II's variation: ``n_initial`` (Sobol design
    points; default ``population_size``), ``pool_size``, ``local_share`` and
    ``random_share`` (the pool's shares of front mutants and uniform samples; the rest are
    children), ``n_trees``, ``refit`` and ``max_train``."""

    algorithm = "sa-nsga2"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        **AsyncNSGA2.DEFAULTS,
        "n_initial": None,      # Sobol design points (None: population_size)
        "pool_size": 256,       # proposals scored by the model per candidate
        "local_share": 0.25,    # share of the pool: mutants of the elite
        "random_share": 0.25,   # share of the pool: uniform samples
        "model": "parzen",      # "parzen" (TPE's density ratio) or "trees" (extra-trees + EI)
        "parzen_share": 0.25,   # share of the pool: draws from the good results' density
        "gamma": 0.1,           # share of the results that are "good" for the density ratio
        "elite": 4,             # results mutated for the local share (best under the weights)
        "refine_top": 4,        # best proposals mutated again ...
        "refine": 32,           # ... this many times each, and scored too
        "n_trees": 64,          # trees of the model
        "refit": 0.1,           # refit when the told results grew by this share (>= 1)
        "max_train": 500,       # the model learns from the newest results only
    }

    def __init__(self, space: Any, **kwargs: Any):
        super().__init__(space, **kwargs)
        self._check_options()
        self.codec = GenomeCodec(space)
        self._n_design = 0                       # Sobol points issued so far
        self._design: np.ndarray | None = None   # cached Sobol points
        self._genomes: dict[int, np.ndarray] = {}
        self._model_ids: list[int] = []          # the ids the current model was fitted on
        self._fit_n = 0                          # results told when it was fitted
        self._model: Any = None
        self._norm: tuple[np.ndarray, np.ndarray] | None = None
        self._parzen: ParzenRatio | None = None
        self._parzen_n = -1

    def _check_options(self) -> None:
        o = self.options
        n0 = o["n_initial"]
        if n0 is not None and not (_is_int(n0) and n0 >= 1):
            raise UserError(f"must be an int >= 1 or null, got {n0!r}", source=self.algorithm,
                            field="n_initial")
        for key, low in (("pool_size", 1), ("n_trees", 1), ("max_train", 2), ("elite", 1),
                         ("refine_top", 0), ("refine", 0)):
            if not (_is_int(o[key]) and o[key] >= low):
                raise UserError(f"must be an int >= {low}, got {o[key]!r}",
                                source=self.algorithm, field=key)
        if o["model"] not in ("parzen", "trees"):
            raise UserError(f"must be 'parzen' or 'trees', got {o['model']!r}",
                            source=self.algorithm, field="model")
        for key in ("local_share", "random_share", "refit", "parzen_share", "gamma"):
            if not (_is_number(o[key]) and 0.0 <= o[key] <= 1.0):
                raise UserError(f"must be a number in [0, 1], got {o[key]!r}",
                                source=self.algorithm, field=key)
        shares = o["local_share"] + o["random_share"] + o["parzen_share"]
        if shares > 1.0:
            raise UserError("local_share + random_share + parzen_share must be <= 1, got "
                            f"{shares}", source=self.algorithm, field="random_share")

    @property
    def n_initial(self) -> int:
        n0 = self.options["n_initial"]
        return self.population_size if n0 is None else int(n0)

    # ------------------------------------------------------------------------ ask
    def _next_proto(self) -> Proto | None:
        proto = self._take_initial()
        if proto is not None:
            return proto
        cid = len(self._candidates)
        rng = self._rng(_POOL, cid)
        if self.n_told < self.n_initial or len(self._fmin) < 2:
            return self._fresh(self._design_proto, rng)
        if self.options["model"] == "trees":
            self._refit_if_due()
        else:
            self._parzen_if_due()
        ranked = iter(self._ranked_pool(cid, rng))

        def best() -> Proto:
            genome = next(ranked, None)
            if genome is None:
                return self._proto(self.space.sample(rng))
            return self._proto(self.space.decode(genome), origin="offspring")
        return self._fresh(best, rng)

    def _design_proto(self) -> Proto:
        k = self._n_design
        self._n_design += 1
        if self._design is None or k >= len(self._design):
            self._design = _sobol(self.codec.d, max(64, 2 * (k + 1)),
                                  derive_seed(self.seed, "sobol"))
        return self._proto(self.space.decode(self._design[k]), origin="design")

    def _genome(self, cid: int) -> np.ndarray:
        g = self._genomes.get(cid)
        if g is None:
            g = np.array(self.space.encode(self._candidates[cid].config,
                                           rng=self._rng(_LATENT, cid)))
            self._genomes[cid] = g
        return g

    def _ranked_pool(self, cid: int, rng: np.random.Generator) -> list[np.ndarray]:
        """The pool's genomes, best acquisition first: children of the population, mutants
        of the best results under this candidate's scalarisation, uniform samples; then
        mutants of the ``refine_top`` best of those, scored as well."""
        o, d = self.options, self.codec.d
        w = rng.dirichlet(np.ones(len(self._signs)))
        n_pool = int(o["pool_size"])
        n_local = int(round(n_pool * o["local_share"]))
        n_rand = int(round(n_pool * o["random_share"]))
        n_parzen = int(round(n_pool * o["parzen_share"])) if self._parzen is not None else 0
        n_child = max(0, n_pool - n_local - n_rand - n_parzen)
        parts = []
        if n_child and len(self._population) >= 2:
            if self._rc is None:
                self._rc = self._fit.rank_and_crowding(self._population, self._inds)
            choose = self.selection.chooser(self._population, self._fit, self._rc)
            ids = [choose(rng) for _ in range(2 * n_child)]
            G = np.array([self._genome(i) for i in ids])
            parts.append(self.codec.vary(G[:n_child], G[n_child:], rng, self.variation))
        else:
            n_rand += n_child
        elite = self._elite(w, int(o["elite"]))
        if n_local and elite:
            picks = [elite[int(i)] for i in rng.integers(len(elite), size=n_local)]
            G = np.array([self._genome(i) for i in picks])
            r = rng.random((2, n_local, d))
            parts.append(self.codec.mutate(G, r[0], r[1], self.variation))
        else:
            n_rand += n_local
        if n_parzen:
            parts.append(self._parzen.sample(n_parzen, rng))
        if n_rand:
            parts.append(rng.random((n_rand, d)))
        pool = np.vstack(parts)
        acq = self._acquisition(pool, w)
        top, n_ref = int(o["refine_top"]), int(o["refine"])
        if top and n_ref:
            best = pool[np.argsort(-acq, kind="stable")[:top]]
            G = np.repeat(best, n_ref, axis=0)
            r = rng.random((2, len(G), d))
            more = self.codec.mutate(G, r[0], r[1], self.variation)
            pool = np.vstack([pool, more])
            acq = np.concatenate([acq, self._acquisition(more, w)])
        order = np.argsort(-acq, kind="stable")
        return [pool[i] for i in order]

    def _elite(self, w: np.ndarray, k: int) -> list[int]:
        """The k feasible results best under the Chebyshev weights ``w`` (all successful
        ones when none is feasible), by id on ties."""
        ids = [i for i in self._fmin if self._cv[i] == 0.0] or list(self._fmin)
        if not ids or k < 1:
            return []
        F = np.array([self._fmin[i] for i in self._fmin], dtype=float)
        lo, hi = F.min(axis=0), F.max(axis=0)
        Z = (np.array([self._fmin[i] for i in ids]) - lo) / np.where(hi > lo, hi - lo, 1.0)
        s = _chebyshev(Z, w)
        order = sorted(range(len(ids)), key=lambda j: (s[j], ids[j]))
        return [ids[j] for j in order[:k]]

    # ------------------------------------------------------------------------ model
    def _refit_if_due(self) -> None:
        n = self.n_told
        if self._model is not None and n - self._fit_n < max(
                1, math.ceil(self.options["refit"] * self._fit_n)):
            return
        ids = sorted(self._results)[-int(self.options["max_train"]):]
        self._fit_model(ids, n)

    def _fit_model(self, ids: list[int], n_told: int) -> None:
        """Fit the trees on ``ids``: targets are the objectives (minimization, each scaled to
        [0, 1] over the successful results) and, with constraints, log(1 + violation) scaled
        likewise; failed and pruned results get the worst value of each."""
        from sklearn.ensemble import ExtraTreesRegressor

        ok = [i for i in ids if i in self._fmin]
        F = np.array([self._fmin[i] for i in ok], dtype=float)
        lo, hi = F.min(axis=0), F.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        cons = bool(self.space.constraints)
        rows = []
        for i in ids:
            if i in self._fmin:
                y = list((np.array(self._fmin[i]) - lo) / span)
                v = math.log1p(self._cv[i])
            else:
                y, v = [1.0] * len(lo), math.inf
            rows.append(y + ([v] if cons else []))
        Y = np.array(rows)
        if cons:
            col = Y[:, -1]
            finite = col[np.isfinite(col)]
            top = float(finite.max()) if len(finite) and finite.max() > 0 else 1.0
            Y[:, -1] = np.where(np.isfinite(col), col / top, 1.0)
        X = self.codec.features(np.array([self._genome(i) for i in ids]))
        model = ExtraTreesRegressor(n_estimators=int(self.options["n_trees"]),
                                    min_samples_leaf=1, max_features=1.0, bootstrap=False,
                                    random_state=derive_seed(self.seed, "fit", len(ids)),
                                    n_jobs=1)
        self._model = model.fit(X, Y[:, 0] if Y.shape[1] == 1 else Y)
        self._model_ids = list(ids)
        self._fit_n = n_told
        self._norm = (lo, span)

    def _acquisition(self, pool: np.ndarray, w: np.ndarray) -> np.ndarray:
        if self.options["model"] == "parzen":
            return self._parzen.score(pool, self.codec.active(pool))
        return self._tree_acquisition(pool, w)

    def _parzen_if_due(self) -> None:
        """The density ratio of the results told so far (recomputed when they changed):
        good = the best ceil(gamma * n) successful results by constrained non-dominated rank,
        then crowding distance, then id (NSGA-II's order); the rest, failed and pruned ones
        included, are bad."""
        if self._parzen is not None and self._parzen_n == self.n_told:
            return
        ids = sorted(self._results)[-int(self.options["max_train"]):]
        ok = [i for i in ids if i in self._fmin]
        n_good = max(1, math.ceil(self.options["gamma"] * len(ids)))
        rc = self._fit.rank_and_crowding(ok) if ok else {}
        good = set(sorted(ok, key=lambda i: (rc[i][0], -rc[i][1], i))[:n_good])
        G = np.array([self._genome(i) for i in ids])
        act = self.codec.active(G)
        is_good = np.array([i in good for i in ids])
        self._parzen = ParzenRatio(self.codec, G[is_good], act[is_good], G[~is_good],
                                   act[~is_good])
        self._parzen_n = self.n_told

    def _tree_acquisition(self, pool: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Expected improvement of a random Chebyshev scalarisation, over the trees, times
        the share of trees predicting the proposal feasible."""
        m = len(self._signs)
        X = self.codec.features(pool)
        P = np.stack([t.predict(X) for t in self._model.estimators_])   # (trees, n, targets)
        if P.ndim == 2:
            P = P[:, :, None]
        S = _chebyshev(P[:, :, :m], w)                                    # (trees, n)
        mu, sd = S.mean(axis=0), S.std(axis=0)
        lo, span = self._norm
        feasible = [i for i in self._model_ids if i in self._fmin and self._cv[i] == 0.0]
        if feasible:
            Z = (np.array([self._fmin[i] for i in feasible]) - lo) / span
            best = float(_chebyshev(Z[None], w)[0].min())
        else:
            best = float(mu.min())
        ei = _expected_improvement(best - mu, sd)
        if self.space.constraints:
            ei = ei * (P[:, :, m] <= 1e-12).mean(axis=0)
        return ei

    # ------------------------------------------------------------------------ state
    def _extra_state(self) -> dict[str, Any]:
        return {**super()._extra_state(), "n_design": self._n_design,
                "model_ids": list(self._model_ids), "fit_n": self._fit_n}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        super()._load_extra(extra)
        self._n_design = int(extra["n_design"])
        ids = [int(i) for i in extra["model_ids"]]
        if ids:
            self._fit_model(ids, int(extra["fit_n"]))


def _chebyshev(Z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Augmented Chebyshev scalarisation (ParEGO) over the last axis; smaller is better."""
    weighted = Z * w
    return weighted.max(axis=-1) + _RHO * weighted.sum(axis=-1)


def _expected_improvement(gain: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """EI of a Gaussian with mean improvement ``gain`` and standard deviation ``sd``."""
    from scipy.special import erf

    sd = np.maximum(sd, 1e-12)
    u = gain / sd
    cdf = 0.5 * (1.0 + erf(u / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)
    return gain * cdf + sd * pdf


def _sobol(d: int, n: int, seed: int) -> np.ndarray:
    """The first n points of a scrambled Sobol sequence in [0, 1]^d (scipy.stats.qmc)."""
    import warnings

    from scipy.stats import qmc

    rng = np.random.default_rng(seed)
    try:
        sampler = qmc.Sobol(d, scramble=True, rng=rng)
    except TypeError:                       # scipy < 1.15 names it seed
        sampler = qmc.Sobol(d, scramble=True, seed=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # n need not be a power of two here
        return sampler.random(n)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
