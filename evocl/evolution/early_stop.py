"""Early stopping over tasks seen: schedulers beside the engine that decide, after each task of
a candidate's stream, whether to train it on the next task (``--early-stop none|asha``).

The evaluator reports after every task but the last (``evocl.cl.evaluation.task_report``: the
accuracy rows so far, acc / forgetting / bwt / fwt / plasticity over the tasks seen,
``trainable_params``, ``wall_time``); the runner journals the report and the decision, then
answers the worker. A scheduler is pure Python: its decisions are a pure function of the
reports it was given, in order, so replaying a run's journal gives the same decisions, and its
state is JSON.

``asha``: asynchronous successive halving (Li et al. 2020, "A System for Massively Parallel
Hyperparameter Tuning") with multi-objective promotion as in MO-ASHA (Schmucker et al. 2021):

- rungs at task counts: ``min_tasks * eta**k`` below the number of tasks (2, 6, 18, ... for the
  defaults), or the given ``rungs``; the lowest at 2 tasks or more, since forgetting is
  undefined after one;
- a candidate reaching a rung joins that rung's members (every candidate that reached it so
  far) and continues iff it is among the best ``max(1, n // eta)`` of the ``n`` members, ranked
  by non-dominated sorting, then crowding distance (NSGA-II's order, with Deb's constrained
  domination over the space's objectives and constraints, read from the report), the newcomer
  first on a tie, then the smaller candidate id. With one objective this is Optuna's
  ``SuccessiveHalvingPruner`` rule. A report missing an objective, or with a non-finite one,
  stops the candidate;
- a decision is made once per (candidate, task count): asked again (a candidate re-run after a
  crash or a resume), the scheduler answers what it answered before.

- ``low_fidelity=f`` (issue 22) adds a rung below the task rungs: the evaluator first trains
  every task at a fraction f of its steps and reports once (``fidelity`` = f, ``tasks_seen``
  = ``n_tasks``, forgetting over the whole stream; `evocl.cl.evaluation.evaluate`); its
  members are kept under ``LOW_RUNG`` and promoted by the same rule; a promoted candidate is
  trained again at full steps. ``rungs=[]`` then leaves the cheap pass as the only rung.

``none`` continues every candidate (and keeps no state). ``model``
(`evocl.evolution.model_stop`) stops only a candidate whose predicted final point cannot
reach the front. A scheduler sees each told result too (``observe``, in journal order), and
the candidate's configuration with each report (``decide(id, report, config)``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from evocl.errors import UserError
from evocl.evolution import pareto
from evocl.records import Result

STATE_FORMAT = "evocl.early_stop/1"
#: the rung key of the cheap pass (every task at a fraction of its steps) in rung tables
LOW_RUNG = 0


class Scheduler:
    """Base of the early-stopping schedulers: ``decide(candidate_id, report) -> continue?``."""

    name: ClassVar[str] = "base"
    DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(self, space: Any, **options: Any):
        unknown = sorted(set(options) - set(self.DEFAULTS))
        if unknown:
            known = ", ".join(sorted(self.DEFAULTS)) or "none"
            raise UserError(f"unknown option {', '.join(map(repr, unknown))} (known: {known})",
                            source=f"early stop {self.name}", field="early_stop_options")
        self.space = space
        self.options = {**self.DEFAULTS, **options}
        self._decisions: dict[tuple[int, int], bool] = {}
        self._config: Mapping[str, Any] | None = None   # the deciding candidate's

    @property
    def active(self) -> bool:
        """Whether this scheduler can stop anything (``none`` cannot)."""
        return True

    def decision(self, candidate_id: int, tasks_seen: int) -> bool | None:
        """The decision already made for this candidate at this task count, else None."""
        return self._decisions.get((int(candidate_id), int(tasks_seen)))

    def decide(self, candidate_id: int, report: Mapping[str, Any],
               config: Mapping[str, Any] | None = None) -> bool:
        """True: train the candidate on its next task; False: stop it (a pruned result).
        ``config``: the candidate's configuration (a model-based scheduler reads it)."""
        tasks_seen = _count(report, "tasks_seen")
        known = self.decision(candidate_id, tasks_seen)
        if known is not None:
            return known
        self._config = config
        ok = bool(self._decide(int(candidate_id), tasks_seen, _count(report, "n_tasks"), report))
        self._decisions[(int(candidate_id), tasks_seen)] = ok
        return ok

    def _decide(self, cid: int, tasks_seen: int, n_tasks: int,
                report: Mapping[str, Any]) -> bool:
        return True

    def rungs(self, n_tasks: int) -> list[int]:
        """Task counts at which this scheduler may stop a candidate of ``n_tasks`` tasks."""
        return []

    def observe(self, candidate_id: int, config: Mapping[str, Any], result: Result) -> None:
        """A told result, in journal order (a model-based scheduler learns from them)."""

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "name": self.name, "options": dict(self.options),
                "decisions": [[c, t, ok] for (c, t), ok in self._decisions.items()],
                "extra": self._extra_state()}

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        pass

    def summary(self) -> dict[str, Any]:
        """Counts for reports: decisions made, candidates stopped (by task count)."""
        stopped: dict[int, int] = {}
        for (_, t), ok in self._decisions.items():
            if not ok:
                stopped[t] = stopped.get(t, 0) + 1
        return {"name": self.name, "reports": len(self._decisions),
                "stopped": sum(stopped.values()), "stopped_at": dict(sorted(stopped.items()))}


class NoEarlyStop(Scheduler):
    """``none``: every candidate is trained on every task."""

    name = "none"

    @property
    def active(self) -> bool:
        return False


class ASHA(Scheduler):
    """``asha``: asynchronous successive halving over tasks seen, multi-objective promotion."""

    name = "asha"
    DEFAULTS: ClassVar[dict[str, Any]] = {"eta": 3, "min_tasks": 2, "rungs": None,
                                          "low_fidelity": None}

    def __init__(self, space: Any, **options: Any):
        super().__init__(space, **options)
        eta, min_tasks, rungs = (self.options[k] for k in ("eta", "min_tasks", "rungs"))
        src = "early stop asha"
        if self.options["low_fidelity"] is not None:
            self.options["low_fidelity"] = check_fraction(self.options["low_fidelity"], src)
        if not (_is_int(eta) and eta >= 2):
            raise UserError(f"must be an int >= 2, got {eta!r}", source=src, field="eta")
        if not (_is_int(min_tasks) and min_tasks >= 2):
            raise UserError(f"must be an int >= 2 (forgetting is undefined after one task), "
                            f"got {min_tasks!r}", source=src, field="min_tasks")
        if rungs is not None:
            if (not isinstance(rungs, (list, tuple))
                    or (not rungs and self.options["low_fidelity"] is None)
                    or not all(_is_int(r) and r >= 2 for r in rungs)
                    or list(rungs) != sorted(set(rungs))):
                raise UserError(f"must be an increasing list of task counts >= 2 (empty only "
                                f"with low_fidelity), got {rungs!r}", source=src, field="rungs")
            self.options["rungs"] = [int(r) for r in rungs]
        self._signs = pareto.objective_signs(space)
        if not self._signs:
            raise UserError("the space declares no objective", source=src, field="objectives")
        # rung (task count) -> members in arrival order: (candidate id, min vector or None, cv)
        self._members: dict[int, list[tuple[int, tuple[float, ...] | None, float]]] = {}

    def rungs(self, n_tasks: int) -> list[int]:
        if self.options["rungs"] is not None:
            return [r for r in self.options["rungs"] if r < n_tasks]
        out, r = [], int(self.options["min_tasks"])
        while r < n_tasks:
            out.append(r)
            r *= int(self.options["eta"])
        return out

    def _decide(self, cid: int, tasks_seen: int, n_tasks: int,
                report: Mapping[str, Any]) -> bool:
        low = is_low_fidelity(report)
        if not low and tasks_seen not in self.rungs(n_tasks):
            return True
        as_res = as_result(report)
        fmin = pareto.min_vector(self._signs, as_res)
        cv = pareto.violation(self.space.constraints, as_res) if fmin is not None else math.inf
        members = self._members.setdefault(LOW_RUNG if low else tasks_seen, [])
        members.append((cid, fmin, cv))
        if fmin is None:
            return False
        return cid in promoted(members, int(self.options["eta"]), newcomer=cid)

    def _extra_state(self) -> dict[str, Any]:
        return {"members": {str(t): [[c, None if f is None else list(f), _json_num(v)]
                                     for c, f, v in ms] for t, ms in self._members.items()}}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        self._members = {
            int(t): [(int(c), None if f is None else tuple(float(x) for x in f), float(v))
                     for c, f, v in ms] for t, ms in dict(extra.get("members", {})).items()}

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "eta": self.options["eta"],
                "rung_members": {t: len(ms) for t, ms in sorted(self._members.items())}}


def promoted(members: Sequence[tuple[int, tuple[float, ...] | None, float]], eta: int,
             newcomer: int | None = None) -> list[int]:
    """The ids of the best ``max(1, n // eta)`` of a rung's ``n`` members (MO-ASHA's
    promotion): by non-dominated rank (constrained domination), then larger crowding
    distance, then ``newcomer`` first, then smaller id. Members without a vector never are."""
    valid = [(c, f, v) for c, f, v in members if f is not None]
    if not valid:
        return []
    k = max(1, len(members) // eta)
    ids = [c for c, _, _ in valid]
    rc = pareto.rank_and_crowding(ids, {c: f for c, f, _ in valid}, {c: v for c, _, v in valid})
    order = sorted(ids, key=lambda i: (rc[i][0], -rc[i][1], i != newcomer, i))
    return order[:k]


def as_result(report: Mapping[str, Any]) -> Result:
    """A report's numbers as a Result, so the Pareto module's rules apply to it unchanged: an
    objective missing or not finite is a failed vector, a constrained value missing or not
    finite an infinite violation. ``wall_time`` falls back on the report's ``elapsed``."""
    numbers = {k: v for k, v in report.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if "wall_time" not in numbers and "elapsed" in numbers:
        numbers["wall_time"] = numbers["elapsed"]
    return Result(objectives=numbers)


def seconds_saved(results: Iterable[Result]) -> float:
    """Training time that early stopping saved, estimated from the results: a candidate pruned
    after some tasks saved its wall time per task trained times the planned tasks it did not
    train; one pruned after the cheap pass (every task at a fraction f of its steps) saved a
    full evaluation's estimate (its training seconds / f plus the rest) minus what it spent;
    a promoted one spent its cheap pass's seconds in addition (counted against the saving)."""
    total = 0.0
    for r in results:
        low = r.metrics.get("low_fidelity") if isinstance(r.metrics, Mapping) else None
        if isinstance(low, Mapping):
            try:
                f, spent = float(low["fidelity"]), float(low["seconds"])
                train = float(low.get("train_seconds", spent))
            except (KeyError, TypeError, ValueError):
                continue
            if r.status == "pruned" and r.metrics.get("tasks_trained") == 0:
                if 0.0 < f < 1.0 and math.isfinite(train):
                    total += train * (1.0 / f - 1.0)   # full steps' training not done
                continue
            if math.isfinite(spent):
                total -= spent                          # promoted: the cheap pass was extra
        if r.status != "pruned":
            continue
        try:
            trained = int(r.metrics["tasks_trained"])
            planned = int(r.metrics["tasks_planned"])
        except (KeyError, TypeError, ValueError):
            continue
        if trained > 0 and planned > trained and math.isfinite(r.wall_time):
            total += r.wall_time / trained * (planned - trained)
    return total


# ------------------------------------------------------------------------------ building
def create(name: str, space: Any, **options: Any) -> Scheduler:
    """A new scheduler from the registry ``evocl.registry.SCHEDULERS`` (``none``, ``asha``)."""
    from evocl.registry import SCHEDULERS
    return SCHEDULERS.load(name)(space, **options)


def from_state(space: Any, state: Mapping[str, Any]) -> Scheduler:
    """Rebuild a scheduler from ``state()``: it decides on exactly as the original."""
    if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
        raise UserError(f"not an early-stop state (format must be {STATE_FORMAT!r})",
                        source="early stop state", field="format")
    sched = create(str(state["name"]), space, **dict(state.get("options", {})))
    for c, t, ok in state.get("decisions", []):
        sched._decisions[(int(c), int(t))] = bool(ok)
    sched._load_extra(dict(state.get("extra", {})))
    return sched


def check_fraction(value: Any, source: str = "early stop", field: str = "low_fidelity") -> float:
    """``value`` as a fraction of a task's steps in (0, 1), else a one-line UserError."""
    if not (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0.0 < float(value) < 1.0):
        raise UserError(f"must be a number in (0, 1) (a fraction of each task's steps), got "
                        f"{value!r}", source=source, field=field)
    return float(value)


def is_low_fidelity(report: Mapping[str, Any]) -> bool:
    """Whether ``report`` is the cheap pass's (every task at a fraction of its steps)."""
    f = report.get("fidelity")
    return isinstance(f, (int, float)) and not isinstance(f, bool) and f < 1.0


def _count(report: Mapping[str, Any], key: str) -> int:
    value = report.get(key)
    if not _is_int(value) or value < 1:
        raise UserError(f"must be an int >= 1, got {value!r}", source="task report", field=key)
    return int(value)


def _json_num(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


__all__ = ["ASHA", "NoEarlyStop", "STATE_FORMAT", "Scheduler", "create", "from_state",
           "as_result", "promoted", "seconds_saved"]
