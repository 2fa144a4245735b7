"""``--early-stop model``: model-based stopping. A candidate stops at a rung only when a model
of final results, given its configuration and its partial report, says that its final point
cannot reach the front of the results so far, within the model's uncertainty.

Successive halving (``asha``) keeps a fixed share (1 / eta) of each rung's members: with a
large eta it prunes candidates that would have reached the front, with a small one it keeps
many that cannot. Here there is no eta. At each rung (the cheap pass of ``low_fidelity``,
and the task counts of ``rungs``):

1. **The model.** An ensemble of extremely randomized trees (scikit-learn's
   ExtraTreesRegressor, as ``sa-nsga2``'s surrogate, on the same features of the
   configuration: `evocl.evolution.genome.GenomeCodec.features`) with the candidate's partial
   objectives at this rung as further inputs, fitted on every finished candidate that reported
   at this rung: inputs (its configuration, its report there) -> the change from that report
   to its final objectives (minimization, scaled by their range over the finished results):
   trees cannot predict beyond the values they were fitted on, so predicting the final
   values themselves would cap every prediction at the current front. So the prediction from
   the configuration, which the engine's surrogate makes before a candidate starts, is
   corrected by what the candidate has shown so far, as learning-curve extrapolation does
   (Domhan et al. 2015; LC-PFN, Adriaensen et al. 2023) but for every objective at once.
2. **The model's own errors.** Each decision records the trees' mean prediction of the
   candidate's final point; when a continued candidate finishes, |final - prediction| per
   objective joins the rung's residuals: a prequential (predict, then see) measure of how
   wrong the model is, which the spread of the trees alone underestimates.
3. **The decision.** The candidate's optimistic point is, per objective, the mean prediction
   minus the larger of ``kappa`` x the trees' standard deviation and the ``quantile`` (0.9)
   of the rung's residuals (minus ``margin``, scaled units). The candidate stops iff a
   finished feasible result dominates that optimistic point: even at its best plausible
   outcome it would not join the front. Anything else continues, however many members the
   rung has.
4. **Until the model can judge** (fewer than ``min_results`` finished candidates that reported
   at this rung, or fewer than ``min_residuals`` residuals) every candidate continues. A
   report missing an objective, or with a non-finite one, stops the candidate (as in
   ``asha``).

The model is the scheduler's own, fitted only on what the runner journals and hands it in
journal order (each report, each told result), never on the engine's state: so it works with
every engine, its decisions are a pure function of the journal, and a resumed run re-derives
each one exactly (the trees are seeded by the rung and the number of rows they are fitted
on, one thread). ``lcpfn`` / ``ifbo`` (PFN curve extrapolators on PyPI) are not used: both
download their weights at run time (evocl contacts nothing at run time), and both model one
increasing learning curve over epochs, not forgetting, which falls as tasks arrive.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping

import numpy as np

from evocl.errors import UserError
from evocl.evolution import pareto
from evocl.evolution.early_stop import (LOW_RUNG, Scheduler, as_result, check_fraction,
                                        is_low_fidelity)
from evocl.records import Result, derive_seed


class ModelStop(Scheduler):
    """``model``: stop a candidate at a rung only if the model says it cannot reach the front."""

    name = "model"
    DEFAULTS: ClassVar[dict[str, Any]] = {"rungs": None, "low_fidelity": None, "kappa": 1.0,
                                          "quantile": 0.9, "min_residuals": 5, "margin": 0.0,
                                          "min_results": 8, "n_trees": 64}

    def __init__(self, space: Any, **options: Any):
        super().__init__(space, **options)
        o, src = self.options, "early stop model"
        if o["low_fidelity"] is not None:
            o["low_fidelity"] = check_fraction(o["low_fidelity"], src)
        rungs = o["rungs"]
        if rungs is None:
            o["rungs"] = [] if o["low_fidelity"] is not None else [2]
        elif (not isinstance(rungs, (list, tuple)) or not all(
                isinstance(r, int) and not isinstance(r, bool) and r >= 2 for r in rungs)
                or list(rungs) != sorted(set(rungs))
                or (not rungs and o["low_fidelity"] is None)):
            raise UserError(f"must be an increasing list of task counts >= 2 (empty only with "
                            f"low_fidelity), got {rungs!r}", source=src, field="rungs")
        else:
            o["rungs"] = [int(r) for r in rungs]
        for key in ("kappa", "margin"):
            v = o[key]
            if not (isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v) and v >= 0):
                raise UserError(f"must be a number >= 0, got {v!r}", source=src, field=key)
        q = o["quantile"]
        if not (isinstance(q, (int, float)) and not isinstance(q, bool) and 0.0 < q <= 1.0):
            raise UserError(f"must be a number in (0, 1], got {q!r}", source=src,
                            field="quantile")
        for key, low in (("min_results", 2), ("n_trees", 1), ("min_residuals", 1)):
            v = o[key]
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= low):
                raise UserError(f"must be an int >= {low}, got {v!r}", source=src, field=key)
        self._signs = pareto.objective_signs(space)
        if not self._signs:
            raise UserError("the space declares no objective", source=src, field="objectives")
        from evocl.evolution.genome import GenomeCodec
        self._codec = GenomeCodec(space)
        # rung -> {candidate id: (genome features, partial min vector)}
        self._seen: dict[int, dict[int, tuple[list[float], tuple[float, ...]]]] = {}
        self._final: dict[int, tuple[float, ...]] = {}    # finished, feasible, finite
        self._models: dict[int, tuple[int, Any, np.ndarray, np.ndarray]] = {}
        # (candidate, rung) -> the mean prediction of its final point when it was decided;
        # rung -> |final - that prediction| of each candidate that finished since
        self._pred: dict[tuple[int, int], tuple[float, ...]] = {}
        self._resid: dict[int, list[tuple[float, ...]]] = {}

    def rungs(self, n_tasks: int) -> list[int]:
        return [r for r in self.options["rungs"] if r < n_tasks]

    # ------------------------------------------------------------------ the runner's hooks
    def observe(self, candidate_id: int, config: Mapping[str, Any], result: Result) -> None:
        """A told result: a finished (ok, feasible, finite) one becomes a training target."""
        if not result.ok:
            return
        fmin = pareto.min_vector(self._signs, result)
        if fmin is None or pareto.violation(self.space.constraints, result) > 0:
            return
        cid = int(candidate_id)
        self._final[cid] = tuple(float(x) for x in fmin)
        for rung in sorted(self._seen):
            pred = self._pred.get((cid, rung))
            if pred is not None:
                self._resid.setdefault(rung, []).append(
                    tuple(abs(a - b) for a, b in zip(self._final[cid], pred)))

    # ------------------------------------------------------------------ the rule
    def _decide(self, cid: int, tasks_seen: int, n_tasks: int,
                report: Mapping[str, Any]) -> bool:
        low = is_low_fidelity(report)
        if not low and tasks_seen not in self.rungs(n_tasks):
            return True
        rung = LOW_RUNG if low else tasks_seen
        part = pareto.min_vector(self._signs, as_result(report))
        if part is None:
            return False
        if self._config is None:
            raise UserError("the model scheduler needs the candidate's configuration",
                            source="early stop model", field="config")
        feats = self._features(cid, self._config)
        self._seen.setdefault(rung, {})[cid] = (feats, tuple(part))
        model = self._model(rung)
        if model is None:
            return True
        _, trees, lo, span = model
        x = np.array([feats + list(part)])
        P = np.stack([t.predict(x) for t in trees.estimators_])[:, 0]     # (trees, m)
        P = P.reshape(len(trees.estimators_), -1)
        mu = P.mean(axis=0) + (np.array(part) - lo) / span      # partial + predicted change
        self._pred[(cid, rung)] = tuple(float(v) for v in mu * span + lo)
        resid = self._resid.get(rung, [])
        if len(resid) < int(self.options["min_residuals"]):
            return True          # not calibrated yet: the model's errors are unknown
        err = np.quantile(np.array(resid), float(self.options["quantile"]), axis=0) / span
        best = mu - np.maximum(self.options["kappa"] * P.std(axis=0), err) \
            - self.options["margin"]
        finals = (np.array([self._final[i] for i in sorted(self._final)]) - lo) / span
        dominated = np.any(np.all(finals <= best, axis=1) & np.any(finals < best, axis=1))
        return not bool(dominated)

    def _features(self, cid: int, config: Mapping[str, Any]) -> list[float]:
        genome = self.space.encode(config, rng=np.random.default_rng(
            derive_seed(0, "model-stop", cid)))
        return [float(v) for v in self._codec.features(np.array([genome]))[0]]

    def _model(self, rung: int) -> tuple[int, Any, np.ndarray, np.ndarray] | None:
        """The trees of this rung, refitted when its training rows have changed."""
        rows = [i for i in sorted(self._seen.get(rung, {})) if i in self._final]
        if len(rows) < int(self.options["min_results"]):
            return None
        have = self._models.get(rung)
        if have is not None and have[0] == len(rows):
            return have
        from sklearn.ensemble import ExtraTreesRegressor

        F = np.array([self._final[i] for i in sorted(self._final)])
        lo, hi = F.min(axis=0), F.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        X = np.array([self._seen[rung][i][0] + list(self._seen[rung][i][1]) for i in rows])
        # the change from the partial report to the final point: trees cannot predict past
        # the targets they have seen, so a candidate better than every finished one at this
        # rung is predicted better than them at the end too (not capped at the front)
        Y = (np.array([self._final[i] for i in rows])
             - np.array([self._seen[rung][i][1] for i in rows])) / span
        trees = ExtraTreesRegressor(n_estimators=int(self.options["n_trees"]),
                                    min_samples_leaf=1, max_features=1.0, bootstrap=False,
                                    random_state=derive_seed(0, "model-stop", rung, len(rows)),
                                    n_jobs=1).fit(X, Y)
        self._models[rung] = (len(rows), trees, lo, span)
        return self._models[rung]

    # ------------------------------------------------------------------ state
    def _extra_state(self) -> dict[str, Any]:
        return {"seen": {str(r): [[c, f, list(p)] for c, (f, p) in sorted(m.items())]
                         for r, m in self._seen.items()},
                "final": [[c, list(v)] for c, v in sorted(self._final.items())],
                "pred": [[c, r, list(v)] for (c, r), v in sorted(self._pred.items())],
                "resid": {str(r): [list(v) for v in vs] for r, vs in self._resid.items()}}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        self._seen = {int(r): {int(c): ([float(x) for x in f], tuple(float(x) for x in p))
                               for c, f, p in ms} for r, ms in dict(extra.get("seen", {})).items()}
        self._final = {int(c): tuple(float(x) for x in v) for c, v in extra.get("final", [])}
        self._pred = {(int(c), int(r)): tuple(float(x) for x in v)
                      for c, r, v in extra.get("pred", [])}
        self._resid = {int(r): [tuple(float(x) for x in v) for v in vs]
                       for r, vs in dict(extra.get("resid", {})).items()}
        self._models = {}

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "finished": len(self._final),
                "rung_members": {r: len(m) for r, m in sorted(self._seen.items())}}


__all__ = ["ModelStop"]
