"""Optuna baselines behind evocl's ask/tell interface: ``optuna-tpe`` and ``optuna-nsga2``.

An in-memory study is driven with Optuna's ask/tell API; each trial suggests the space's
parameters define-by-run in dependency order, so a conditional parameter is suggested only
when it is active. Before every ``study.ask`` the sampler's random states are reseeded from
(seed, trial number): the same seed and the same tells give the same candidates, and an
engine rebuilt from ``state()`` (finished trials re-added with ``add_trial``, running ones
re-created) continues exactly. A suggestion that duplicates an evaluated configuration is
told the known values at once (a failed/in-flight duplicate is told FAIL) and another is
asked, up to ``max_tries`` times.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping

import numpy as np
import optuna
from optuna.distributions import (BaseDistribution, CategoricalDistribution,
                                  FloatDistribution, IntDistribution)
from optuna.trial import TrialState

from evocl.errors import UserError
from evocl.evolution import pareto
from evocl.evolution.base import Engine, Proto
from evocl.evolution.early_stop import as_result
from evocl.records import derive_seed

optuna.logging.set_verbosity(optuna.logging.WARNING)

_STATES = {"complete": TrialState.COMPLETE, "fail": TrialState.FAIL,
           "running": TrialState.RUNNING, "pruned": TrialState.PRUNED}


def distributions(space: Any) -> dict[str, BaseDistribution]:
    """Optuna distribution of each parameter (bool -> categorical [False, True])."""
    out: dict[str, BaseDistribution] = {}
    for p in space.parameters:
        if p.type == "float":
            out[p.name] = FloatDistribution(float(p.low), float(p.high), log=bool(p.log))
        elif p.type == "int":
            step = 1 if p.log else int(p.step or 1)
            out[p.name] = IntDistribution(int(p.low), int(p.high), log=bool(p.log), step=step)
        elif p.type == "bool":
            out[p.name] = CategoricalDistribution((False, True))
        else:
            out[p.name] = CategoricalDistribution(tuple(p.choices))
    return out


class OptunaEngine(Engine):
    """Base of the Optuna baselines; subclasses build the sampler."""

    algorithm: ClassVar[str] = "optuna"

    def __init__(self, space: Any, **kwargs: Any):
        super().__init__(space, **kwargs)
        self._dists = distributions(space)
        self.sampler = self._make_sampler()
        directions = ["maximize" if sign < 0 else "minimize" for _, sign in self._signs]
        self.study = optuna.create_study(directions=directions, sampler=self.sampler)
        self._trials: list[dict[str, Any]] = []    # one record per study trial, by number
        self._live: dict[int, optuna.Trial] = {}  # trial number -> running Trial
        self._number_of: dict[int, int] = {}      # candidate id -> trial number
        self._pruner: optuna.pruners.SuccessiveHalvingPruner | None = None
        self._pruner_options: dict[str, int] | None = None

    def _make_sampler(self) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def _reseed(self, number: int) -> None:
        for i, sampler in enumerate((self.sampler, getattr(self.sampler, "_random_sampler", None))):
            lazy = getattr(sampler, "_rng", None)
            if lazy is not None:
                lazy._rng = np.random.RandomState(derive_seed(self.seed, "optuna", number, i))

    def _suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for p in self.space.parameters:
            if p.when and not self.space.is_active(p.name, config):
                continue
            d = self._dists[p.name]
            if isinstance(d, FloatDistribution):
                config[p.name] = trial.suggest_float(p.name, d.low, d.high, log=d.log)
            elif isinstance(d, IntDistribution):
                config[p.name] = trial.suggest_int(p.name, d.low, d.high, log=d.log, step=d.step)
            else:
                config[p.name] = trial.suggest_categorical(p.name, d.choices)
        return config

    def _trial_attrs(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's system attributes (NSGA-II generation, constraints) for ``state()``;
        ``fixed_params`` (from enqueue_trial) is left out: the params are saved anyway."""
        attrs = dict(self.study._storage.get_trial_system_attrs(trial._trial_id))
        attrs.pop("fixed_params", None)
        return attrs

    def _ask_trial(self, fixed: Mapping[str, Any] | None) -> tuple[optuna.Trial, dict[str, Any]]:
        number = len(self._trials)
        if fixed is not None:
            self.study.enqueue_trial(dict(fixed))
        self._reseed(number)
        trial = self.study.ask()
        config = self._suggest(trial)
        self._trials.append({"params": dict(trial.params), "state": "running", "values": None,
                             "cid": None, "system_attrs": self._trial_attrs(trial)})
        self._live[trial.number] = trial
        return trial, config

    def _finish(self, number: int, values: list[float] | None,
                violations: list[float] | None = None, pruned: bool = False) -> None:
        trial = self._live.pop(number)
        rec = self._trials[number]
        if violations:
            for c, v in zip(self.space.constraints, violations):
                trial.set_constraint(c.name, min(v, 1e300))
        if pruned:   # single objective: Optuna keeps the last intermediate value as its value
            self.study.tell(trial, state=TrialState.PRUNED)
            frozen = self.study._storage.get_trial(trial._trial_id)
            rec["state"], rec["values"] = "pruned", frozen.values
        elif values is None:
            self.study.tell(trial, state=TrialState.FAIL)
            rec["state"] = "fail"
        else:
            self.study.tell(trial, values)
            rec["state"], rec["values"] = "complete", list(values)
        rec["system_attrs"] = self._trial_attrs(trial)

    def _next_proto(self) -> Proto | None:
        initial = self._take_initial()
        trial, config = self._ask_trial(None if initial is None else initial.config)
        proto = self._proto(config, origin="initial" if initial else "sample")
        tries = 1
        while initial is None and self._known(proto.config_hash):
            self._tell_known(trial.number, proto.config_hash)   # dedup: tell, ask again
            if tries < self.max_tries:
                trial, config = self._ask_trial(None)
            else:                  # the sampler keeps repeating itself: a new random sample
                rng = self._rng(4, trial.number)
                for _ in range(self.max_tries):
                    sample = self._proto(self.space.sample(rng))
                    if not self._known(sample.config_hash):
                        break
                trial, config = self._ask_trial(sample.config)
            proto = self._proto(config)
            tries += 1
            if tries > self.max_tries + 1:
                break              # exhausted space: ask the duplicate
        cid = len(self._candidates)
        self._number_of[cid] = trial.number
        self._trials[trial.number]["cid"] = cid
        return proto

    def _tell_known(self, number: int, config_hash: str) -> None:
        known = self._by_hash.get(config_hash)
        values = None
        if known is not None and known in self._fmin and known not in self._pruned:
            values = [float(self._results[known].objectives[n]) for n, _ in self._signs]
        self._finish(number, values)

    def _on_tell(self, cid: int) -> None:
        number = self._number_of[cid]
        result = self._results[cid]
        if result.status == "pruned":
            self._finish(number, None, pruned=True)
            super()._on_tell(cid)
            return
        values = None
        if cid in self._fmin:
            values = [float(result.objectives[n]) for n, _ in self._signs]
        violations = None
        if self.space.constraints and values is not None:
            violations = [pareto.violation([c], result) for c in self.space.constraints]
        self._finish(number, values, violations)
        super()._on_tell(cid)

    # ---------------------------------------------------------------- per-task reports
    def use_pruner(self, eta: int, min_tasks: int) -> bool:
        """Decide early stopping with Optuna's own ``SuccessiveHalvingPruner`` (rungs at
        ``min_tasks * eta**k`` tasks) where Optuna can: a single objective (Optuna cannot
        prune multi-objective studies). Returns whether the pruner is used; kept in
        ``state()``."""
        if len(self._signs) != 1:
            return False
        self._pruner = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=int(min_tasks), reduction_factor=int(eta))
        self._pruner_options = {"eta": int(eta), "min_tasks": int(min_tasks)}
        return True

    @property
    def prunes(self) -> bool:
        """Whether ``report`` decides early stopping (Optuna's pruner is in use)."""
        return self._pruner is not None

    def report(self, candidate_id: int, report: Mapping[str, Any]) -> bool | None:
        """A per-task report of a running candidate: its first objective over the tasks seen
        becomes the trial's intermediate value at step ``tasks_seen`` (``trial.report``; kept
        in the state, but not given to a multi-objective study, which Optuna refuses). With
        the pruner: True to continue, False to stop; otherwise None (no opinion)."""
        number = self._number_of.get(int(candidate_id))
        if number is None or number not in self._live:
            return None
        step = int(report["tasks_seen"])
        name = self._signs[0][0]
        value = pareto.min_vector([(name, 1.0)], as_result(report))
        value = math.nan if value is None else value[0]
        rec = self._trials[number]
        rec.setdefault("intermediate", {})[str(step)] = value if math.isfinite(value) else "nan"
        if len(self._signs) != 1:
            return None
        trial = self._live[number]
        trial.report(value, step)
        if self._pruner is None:
            return None
        prune = self._pruner.prune(self.study, self.study._storage.get_trial(trial._trial_id))
        rec["system_attrs"] = self._trial_attrs(trial)
        return not prune

    def _extra_state(self) -> dict[str, Any]:
        trials = []
        for rec in self._trials:
            rec = dict(rec)
            if rec["values"] is not None:
                rec["values"] = [v if math.isfinite(v) else str(v) for v in rec["values"]]
            trials.append(rec)
        storage = self.study._storage
        return {"trials": trials, "pruner": self._pruner_options,
                "study_system_attrs": dict(storage.get_study_system_attrs(self.study._study_id))}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        storage = self.study._storage
        if extra.get("pruner"):
            self.use_pruner(int(extra["pruner"]["eta"]), int(extra["pruner"]["min_tasks"]))
        for key, value in dict(extra.get("study_system_attrs", {})).items():
            storage.set_study_system_attr(self.study._study_id, key, value)
        for number, rec in enumerate(extra["trials"]):
            rec = dict(rec)
            dists = {k: self._dists[k] for k in rec["params"]}
            steps = {int(k): float(v) for k, v in dict(rec.get("intermediate", {})).items()}
            if len(self._signs) != 1:
                steps = {}   # kept in the state only: Optuna refuses them in multi-objective
            if rec["state"] == "running":
                self.study.enqueue_trial(dict(rec["params"]))
                self._reseed(number)
                trial = self.study.ask()
                self._suggest(trial)
                for step, value in sorted(steps.items()):
                    trial.report(value, step)
                for key, value in dict(rec.get("system_attrs", {})).items():
                    storage.set_trial_system_attr(trial._trial_id, key, value)
                self._live[trial.number] = trial
            else:
                values = None if rec["values"] is None else [float(v) for v in rec["values"]]
                self.study.add_trial(optuna.trial.create_trial(
                    state=_STATES[rec["state"]], params=dict(rec["params"]),
                    distributions=dists, values=values, intermediate_values=steps,
                    system_attrs=dict(rec.get("system_attrs", {}))))
            self._trials.append(rec)
            if rec["cid"] is not None:
                self._number_of[int(rec["cid"])] = number


class OptunaTPE(OptunaEngine):
    """Optuna's TPESampler (multivariate off by default, as Optuna's default)."""

    algorithm = "optuna-tpe"
    DEFAULTS = {"n_startup_trials": 10, "multivariate": False}

    def _make_sampler(self) -> optuna.samplers.BaseSampler:
        n, multi = self.options["n_startup_trials"], self.options["multivariate"]
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 0):
            raise UserError(f"must be an int >= 0, got {n!r}", source=self.algorithm,
                            field="n_startup_trials")
        if not isinstance(multi, bool):
            raise UserError(f"must be true or false, got {multi!r}", source=self.algorithm,
                            field="multivariate")
        return optuna.samplers.TPESampler(seed=derive_seed(self.seed, "tpe"),
                                          n_startup_trials=int(self.options["n_startup_trials"]),
                                          multivariate=bool(self.options["multivariate"]))


class OptunaNSGA2(OptunaEngine):
    """Optuna's NSGAIISampler with the engine's population size."""

    algorithm = "optuna-nsga2"
    DEFAULTS = {"crossover_prob": 0.9, "swapping_prob": 0.5}

    def _make_sampler(self) -> optuna.samplers.BaseSampler:
        for key in ("crossover_prob", "swapping_prob"):
            v = self.options[key]
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1):
                raise UserError(f"must be a probability in [0, 1], got {v!r}",
                                source=self.algorithm, field=key)
        return optuna.samplers.NSGAIISampler(population_size=self.population_size,
                                             seed=derive_seed(self.seed, "nsga2"),
                                             crossover_prob=float(self.options["crossover_prob"]),
                                             swapping_prob=float(self.options["swapping_prob"]))
