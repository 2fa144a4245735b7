"""Parameter importance per objective: fANOVA (Hutter et al. 2014) through Optuna.

The study is built the way the run's Optuna mirror is (one trial per successful evaluation,
the space's distributions, the objectives' directions), from the journal, in memory. One
difference: fANOVA needs every parameter in every trial, so a parameter that is inactive in
a configuration (``ewc_lambda`` when ``ewc`` is off) takes its default there (its low bound,
or its first choice, when it has none). Its importance then also carries the effect of the
parent that switches it on and off; the parent's importance shows that effect directly.

Importance of a parameter for an objective = the share of that objective's variance (over
the random forest fitted to the evaluations) explained by the parameter alone; the shares
are normalised to sum to 1 per objective.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

from evocl.records import Candidate, Result

#: Fewer successful evaluations than this give no importance (the forest would be noise).
MIN_EVALUATIONS = 8

Evaluation = tuple[Candidate, Result]


def _fill(param: Any) -> Any:
    if param.default is not None:
        return param.default
    if param.type == "bool":
        return False
    if param.type == "categorical":
        return list(param.choices)[0]
    return param.low


def importance_study(evaluations: Sequence[Evaluation], space: Any) -> Any:
    """An in-memory Optuna study: one COMPLETE trial per successful evaluation with finite
    objectives; every parameter present (inactive ones at their default)."""
    import optuna
    from optuna.trial import TrialState

    from evocl.storage.optuna_mirror import _distribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objectives = list(space.objectives)
    dists = {p.name: _distribution(p) for p in space.parameters}
    study = optuna.create_study(directions=[o.direction for o in objectives])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.set_metric_names([o.name for o in objectives])
    trials = []
    for cand, res in evaluations:
        values = [res.objectives.get(o.name) for o in objectives]
        if not res.ok or any(v is None or not math.isfinite(float(v)) for v in values):
            continue
        params = {p.name: cand.config.get(p.name, _fill(p)) for p in space.parameters}
        try:
            trials.append(optuna.trial.create_trial(
                params=params, distributions=dists, values=[float(v) for v in values],
                state=TrialState.COMPLETE, user_attrs={"candidate_id": cand.id}))
        except ValueError:  # a value the space no longer holds: leave this trial out
            continue
    study.add_trials(trials)
    return study


def parameter_importance(evaluations: Sequence[Evaluation], space: Any,
                         seed: int = 0) -> tuple[dict[str, dict[str, float]], str | None]:
    """({objective: {parameter: importance}}, None), or ({}, why not) when it cannot be had."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    study = importance_study(evaluations, space)
    n = len(study.trials)
    if n < MIN_EVALUATIONS:
        return {}, (f"parameter importance needs at least {MIN_EVALUATIONS} successful "
                    f"evaluations; this run has {n}")
    out: dict[str, dict[str, float]] = {}
    ranked = []
    for i, o in enumerate(space.objectives):
        target = _target(study, i)
        if target is None:
            ranked.append(o.name)
            target = _rank_target(study, i)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                imp = optuna.importance.get_param_importances(
                    study, evaluator=FanovaImportanceEvaluator(seed=seed), target=target)
        except (ImportError, RuntimeError, ValueError, ArithmeticError, AssertionError) as e:
            return {}, f"parameter importance unavailable ({type(e).__name__}: {e})"
        out[o.name] = {k: float(v) for k, v in imp.items()}
    if ranked:
        return out, (f"objective(s) {', '.join(ranked)} hold values too large for a variance "
                     f"(|value| > {HUGE:g}): their importance is computed on ranks")
    return out, None


#: Objective values beyond this overflow fANOVA's variances (squares exceed float range).
HUGE = 1e150


def _target(study: Any, i: int) -> Any:
    """The objective itself, or None when its values are too large for a variance."""
    if max(abs(t.values[i]) for t in study.trials) > HUGE:
        return None
    return lambda t: t.values[i]


def _rank_target(study: Any, i: int) -> Any:
    order = sorted(study.trials, key=lambda t: t.values[i])
    rank = {t.number: r for r, t in enumerate(order)}
    return lambda t: float(rank[t.number])
