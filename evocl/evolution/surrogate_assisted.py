"""``sa-nsga2``: surrogate-assisted steady-state NSGA-II for expensive evaluations.

An evaluation of a continual-learning configuration costs seconds to minutes; a model of the
results so far costs milliseconds. This engine spends the model's time to save evaluations,
as surrogate-assisted evolution does (pre-screening: Emmerich et al. 2006, Jin 2011), with
a tree ensemble for a model as SMAC does (Hutter et al. 2011), ParEGO's random
scalarisations for several objectives (Knowles 2006) and TPE's density ratio (Bergstra et
al. 2011) to guide mutation. Genomes have one gene in [0, 1] per parameter
(``SearchSpace.encode``; ``evocl.evolution.genome``).

1. **Space-filling start.** After the run's initial configurations, the first candidates
   are points of a scrambled Sobol sequence over the genome, not uniform draws, until
   ``n_initial`` results are told (two of them successful).
2. **A pool of proposals per candidate** (``pool_size``):
   - children of the steady-state population (NSGA-II's binary tournament, SBX crossover and
     polynomial mutation), each gene of which is then, with probability ``guide_rate``,
     replaced by TPE's choice: of ``n_ei`` draws from the good results' density l, the one
     with the largest ratio l / g (model-guided mutation; ``evocl.evolution.density``);
   - draws from l (``parzen_share`` of the pool) and uniform samples (``random_share``).
   TPE's split: the best ``gamma`` of the successful results are good (MOTPE's split), the
   others, the pruned ones and the candidates in flight are bad (Optuna's constant liar);
   failed ones are left out, as Optuna leaves them.
3. **Pre-screening.** An ensemble of extremely randomized trees (scikit-learn's
   ExtraTreesRegressor), fitted on the results so far (pruned ones at the worst value of each
   objective), predicts every proposal's objectives scaled to [0, 1] and its constraint
   violation. A random Chebyshev weighting of the objectives, drawn per candidate (ParEGO),
   scalarises each tree's prediction; the proposal with the best optimistic value (mean minus
   ``kappa`` standard deviations over the trees; ``acquisition: ei`` for expected
   improvement), penalized by the share of trees that predict it infeasible, is asked (the
   next best when it duplicates a known configuration).
4. **Steady-state survival**, as ``async-nsga2``: a successful result joins the population
   at once; when it overflows ``population_size``, the member worst by non-dominated rank
   then crowding distance leaves. No generation barrier: every free worker gets a candidate.

   With ``cost_aware`` (``evocl search --cost-aware``), a second ensemble of the same trees,
   fitted on the same results, predicts log(seconds of a full evaluation) from the genes
   (steps, rank, targets, replay, strategies...: the measured wall times; a pruned result's
   scaled up by its planned / trained tasks), and proposals are ranked by expected
   improvement of the scalarised prediction per predicted second (Snoek et al. 2012); where
   no proposal is expected to improve, the plain acquisition decides.
5. **Hand-over** (``model_until``, default 1,000 told results): from then on the candidates
   are plain ``async-nsga2`` children. The pool's model-guided genes buy sample efficiency
   in the expensive regime but keep children from converging finely on long runs (measured:
   below pymoo's NSGA-II on ZDT1/ZDT2/DTLZ2 at 5,000 evaluations without it, above it at
   1,000), and a candidate costs the model tens of milliseconds.

The trees are refitted when the told results have grown by ``refit`` (a share, at least one)
since the last fit, on the ``max_train`` newest results. Every random draw comes from a
generator seeded by (seed, purpose, candidate id or fit size), and the trees are a pure
function of the results they were fitted on (seeded likewise, one thread), so ``ask(n)``
equals n ``ask(1)`` and an engine rebuilt from ``state()`` (which records the fitted ids)
continues exactly, with the same scikit-learn version.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping

import numpy as np

from evocl.errors import UserError
from evocl.evolution.base import Proto
from evocl.evolution.density import ParzenRatio, good_split
from evocl.evolution.genome import GenomeCodec
from evocl.evolution.steady import AsyncNSGA2
from evocl.records import derive_seed

_POOL = 7         # rng purpose tags (see Engine._rng; 0-5 are taken by the other engines)
_LATENT = 8
_RHO = 0.05       # augmentation of the Chebyshev scalarisation (ParEGO)


class SurrogateNSGA2(AsyncNSGA2):
    """Steady-state NSGA-II (``async-nsga2``'s population, parts and survival) whose every
    candidate is the best of a pool of proposals pre-screened by a model of the results so
    far (see the module docstring for the options)."""

    algorithm = "sa-nsga2"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        **AsyncNSGA2.DEFAULTS,
        "n_initial": 10,        # Sobol design points before the model is used
        "pool_size": 256,       # proposals scored by the model per candidate
        "parzen_share": 0.25,   # share of the pool: draws from the good results' density
        "random_share": 0.25,   # share of the pool: uniform samples (the rest: children)
        "guide_rate": 0.5,      # per-gene probability of a model-guided mutation of a child
        "n_ei": 24,             # draws from the good density per guided gene (TPE's default)
        "gamma": 0.1,           # share of the successful results that are good
        "acquisition": "lcb",   # "lcb" (mean - kappa * sd over the trees) or "ei"
        "kappa": 1.0,
        "n_trees": 64,          # trees of the model
        "refit": 0.1,           # refit when the told results grew by this share (>= 1)
        "max_train": 500,       # the model learns from the newest results only
        "model_until": 1000,    # from this many told results on, plain async-nsga2 children (0: never)
        "cost_aware": False,    # rank by expected improvement per predicted second (issue 22)
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
        self._good_ids: set[int] = set()
        self._good_n = -1
        self._cost_model: Any = None

    def _check_options(self) -> None:
        o = self.options
        for key, low in (("n_initial", 1), ("pool_size", 1), ("n_ei", 1), ("n_trees", 1),
                         ("max_train", 2), ("model_until", 0)):
            if not (_is_int(o[key]) and o[key] >= low):
                raise UserError(f"must be an int >= {low}, got {o[key]!r}",
                                source=self.algorithm, field=key)
        for key in ("parzen_share", "random_share", "guide_rate", "gamma", "refit"):
            if not (_is_number(o[key]) and 0.0 <= o[key] <= 1.0):
                raise UserError(f"must be a number in [0, 1], got {o[key]!r}",
                                source=self.algorithm, field=key)
        if o["parzen_share"] + o["random_share"] > 1.0:
            raise UserError("parzen_share + random_share must be <= 1, got "
                            f"{o['parzen_share'] + o['random_share']}", source=self.algorithm,
                            field="random_share")
        if o["acquisition"] not in ("lcb", "ei"):
            raise UserError(f"must be 'lcb' or 'ei', got {o['acquisition']!r}",
                            source=self.algorithm, field="acquisition")
        if not isinstance(o["cost_aware"], bool):
            raise UserError(f"must be true or false, got {o['cost_aware']!r}",
                            source=self.algorithm, field="cost_aware")
        if not (_is_number(o["kappa"]) and o["kappa"] >= 0.0):
            raise UserError(f"must be a number >= 0, got {o['kappa']!r}",
                            source=self.algorithm, field="kappa")

    # ------------------------------------------------------------------------ ask
    def _next_proto(self) -> Proto | None:
        proto = self._take_initial()
        if proto is not None:
            return proto
        cid = len(self._candidates)
        rng = self._rng(_POOL, cid)
        n_ok = len(self._fmin) - len(self._pruned)
        if self.n_told < int(self.options["n_initial"]) or n_ok < 2:
            return self._fresh(self._design_proto, rng)
        until = int(self.options["model_until"])
        if until and self.n_told >= until:
            return super()._next_proto()
        self._refit_if_due()
        self._density()
        ranked = iter(self._ranked_pool(rng))

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

    def _successful(self, cid: int) -> bool:
        """Told, ok and with finite objectives (a pruned result is in ``_fmin`` too)."""
        return cid in self._fmin and cid not in self._pruned

    def _genome(self, cid: int) -> np.ndarray:
        """A candidate's genome: its configuration's genes, inactive ones drawn from
        (seed, id) so that they are latent values a child can inherit."""
        g = self._genomes.get(cid)
        if g is None:
            g = np.array(self.space.encode(self._candidates[cid].config,
                                           rng=self._rng(_LATENT, cid)))
            self._genomes[cid] = g
        return g

    def _ranked_pool(self, rng: np.random.Generator) -> list[np.ndarray]:
        """The pool's genomes, best acquisition first."""
        o, d = self.options, self.codec.d
        w = rng.dirichlet(np.ones(len(self._signs)))
        n_pool = int(o["pool_size"])
        n_parzen = int(round(n_pool * o["parzen_share"]))
        n_rand = int(round(n_pool * o["random_share"]))
        n_child = max(0, n_pool - n_parzen - n_rand)
        parts = []
        if n_child and len(self._population) >= 2:
            if self._rc is None:
                self._rc = self._fit.rank_and_crowding(self._population, self._inds)
            choose = self.selection.chooser(self._population, self._fit, self._rc)
            G = np.array([self._genome(choose(rng)) for _ in range(2 * n_child)])
            kids = self.codec.vary(G[:n_child], G[n_child:], rng, self.variation)
            if o["guide_rate"] > 0:
                mask = rng.random(kids.shape) < o["guide_rate"]
                kids = self._parzen.guided(kids, mask, int(o["n_ei"]), rng)
            parts.append(kids)
        else:
            n_rand += n_child
        if n_parzen:
            parts.append(self._parzen.sample(n_parzen, rng))
        if n_rand:
            parts.append(rng.random((n_rand, d)))
        pool = np.vstack(parts)
        order = np.argsort(-self._acquisition(pool, w), kind="stable")
        return [pool[i] for i in order]

    # ------------------------------------------------------------------------ models
    def _density(self) -> None:
        """TPE's density ratio for the next candidate (see the module docstring)."""
        ids = [i for i in sorted(self._results)[-int(self.options["max_train"]):]
               if i in self._fmin or self._results[i].status == "pruned"]
        if self._good_n != self.n_told:
            ok = [i for i in ids if self._successful(i)]
            k = max(1, math.ceil(self.options["gamma"] * len(ok)))
            self._good_ids = set(good_split(ok, self._fmin, self._cv, k))
            self._good_n = self.n_told
        ids += [c.id for c in self.in_flight]
        G = np.array([self._genome(i) for i in ids])
        act = self.codec.active(G)
        good = np.array([i in self._good_ids for i in ids])
        self._parzen = ParzenRatio(self.codec, G[good], act[good], G[~good], act[~good])

    def _refit_if_due(self) -> None:
        n = self.n_told
        if self._model is not None and n - self._fit_n < max(
                1, math.ceil(self.options["refit"] * self._fit_n)):
            return
        ids = [i for i in sorted(self._results)[-int(self.options["max_train"]):]
               if i in self._fmin or self._results[i].status == "pruned"]
        self._fit_model(ids, n)

    def _fit_model(self, ids: list[int], n_told: int) -> None:
        """Fit the trees on ``ids``: targets are the objectives (minimization, each scaled to
        [0, 1] over the successful results) and, with constraints, log(1 + violation) scaled
        likewise; pruned results get the worst value of each (they rank below every full
        evaluation)."""
        from sklearn.ensemble import ExtraTreesRegressor

        ok = [i for i in ids if self._successful(i)]
        F = np.array([self._fmin[i] for i in ok], dtype=float)
        lo, hi = F.min(axis=0), F.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        cons = bool(self.space.constraints)
        rows = []
        for i in ids:
            if self._successful(i):
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
        self._cost_model = self._fit_cost(ids, X) if self.options["cost_aware"] else None

    def _fit_cost(self, ids: list[int], X: np.ndarray) -> Any:
        """Trees of log(seconds of a full evaluation) on the same features: an ok result's
        wall time; a pruned one's scaled by the tasks it was planned / trained (a cheap
        pass's: not used). None with fewer than two such results."""
        from sklearn.ensemble import ExtraTreesRegressor

        rows, y = [], []
        for k, i in enumerate(ids):
            r = self._results[i]
            secs = r.wall_time
            if r.status == "pruned":
                try:
                    trained, planned = int(r.metrics["tasks_trained"]), int(r.metrics["tasks_planned"])
                except (KeyError, TypeError, ValueError):
                    continue
                if trained < 1 or planned < trained:
                    continue
                secs = secs * planned / trained
            if isinstance(secs, (int, float)) and math.isfinite(secs) and secs > 0:
                rows.append(k)
                y.append(math.log(secs))
        if len(rows) < 2:
            return None
        model = ExtraTreesRegressor(n_estimators=int(self.options["n_trees"]),
                                    min_samples_leaf=2, max_features=1.0, bootstrap=False,
                                    random_state=derive_seed(self.seed, "cost", len(ids)),
                                    n_jobs=1)
        return model.fit(X[rows], np.array(y))

    def predicted_seconds(self, configs: list[Mapping[str, Any]]) -> np.ndarray | None:
        """The cost model's seconds for these configurations (None before it is fitted)."""
        if getattr(self, "_cost_model", None) is None:
            return None
        rng = np.random.default_rng(0)
        G = np.array([self.space.encode(c, rng=rng) for c in configs])
        return np.exp(self._cost_model.predict(self.codec.features(G)))

    def _acquisition(self, pool: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Larger is better: the optimistic Chebyshev value under weights ``w`` (``lcb``) or
        its expected improvement over the best result (``ei``), over the trees; lowered by
        the share of trees that predict the proposal infeasible."""
        m = len(self._signs)
        X = self.codec.features(pool)
        P = np.stack([t.predict(X) for t in self._model.estimators_])   # (trees, n, targets)
        if P.ndim == 2:
            P = P[:, :, None]
        S = _chebyshev(P[:, :, :m], w)                                    # (trees, n)
        mu, sd = S.mean(axis=0), S.std(axis=0)
        feas = (P[:, :, m] <= 1e-12).mean(axis=0) if self.space.constraints else 1.0
        cost = getattr(self, "_cost_model", None)
        if cost is not None:
            # expected improvement per predicted second (Snoek et al. 2012, "EI per second");
            # where no proposal is expected to improve, the plain acquisition decides
            ei = self._ei(mu, sd, w) * feas
            if float(np.max(ei)) > 1e-12:
                return ei / np.exp(cost.predict(X))
        if self.options["acquisition"] == "lcb":
            return -(mu - self.options["kappa"] * sd) - 2.0 * (1.0 - feas)
        return self._ei(mu, sd, w) * feas

    def _ei(self, mu: np.ndarray, sd: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Expected improvement of the scalarised prediction over the best feasible result
        the model was fitted on (its own best prediction when there is none)."""
        lo, span = self._norm
        feasible = [i for i in self._model_ids if i in self._fmin and self._cv[i] == 0.0]
        if feasible:
            Z = (np.array([self._fmin[i] for i in feasible]) - lo) / span
            best = float(_chebyshev(Z[None], w)[0].min())
        else:
            best = float(mu.min())
        return _expected_improvement(best - mu, sd)

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
