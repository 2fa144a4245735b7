"""The one place that wires engine + executor + storage + progress: ``run_search``.

Loop: ``engine.ask(free slots)`` -> journal ask (fsync) -> ``executor.submit``;
``executor.results`` -> journal tell (fsync) -> ``engine.tell`` -> Optuna mirror -> progress;
an engine snapshot every generation (or every ``snapshot_every`` results). With early stopping
(``early_stop`` other than ``none``) each per-task report of a running candidate -> the
scheduler (or the engine's own pruner) decides -> journal report + decision (fsync) -> the
worker continues or stops (a ``pruned`` result, told like any other).

Resume loads the newest good snapshot, replays the journal after it (every ask call with its
original ``n``, checked against the journal; every tell with its stored result, never
re-evaluated), then re-submits the candidates asked but never told. With the same seed and a
deterministic evaluator the resumed run ends exactly like an uninterrupted one for the
generational engines (they breed from a completed generation in candidate-id order) and for
any engine with one worker; the engines that learn from each result as it arrives
(``async-nsga2``, ``rl``, the Optuna samplers) depend on arrival order with several workers,
so their resumed run is valid but not bit-identical.

Early stopping on resume: the scheduler is rebuilt from every report in the journal (each
decision re-derived and checked against the one recorded); a re-submitted candidate that
reports a task count again gets the recorded decision, so no decision is ever made twice.
With one worker a killed and resumed run equals an uninterrupted one, kills between rungs
included; with several workers rung decisions depend on the order reports arrive (as for
``async-nsga2``), and a resumed run keeps every recorded decision.
"""

from __future__ import annotations

import collections
import json
import math
import time
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Collection, Mapping

from evocl.errors import RunDirError, UserError
from evocl.evolution.early_stop import seconds_saved
from evocl.execution import create_executor, resolve_kind
from evocl.records import Candidate, Result, RunConfig
from evocl.storage import OptunaMirror, RunDir

#: Fields that identify a run: a resume that changes one of them is refused.
IDENTITY_FIELDS = ("space", "stream", "backbone", "objective", "seed", "algorithm",
                   "algorithm_options", "early_stop", "early_stop_options", "population")
#: The target that evaluates ``objective="cl"``.
CL_TARGET = "evocl.cl:CLEvaluator"


@dataclass(frozen=True)
class RunSummary:
    """What a finished (or stopped) search reports."""

    run_dir: str
    pareto_front: list[tuple[Candidate, Result]]
    n_evaluated: int
    n_failed: int
    hypervolume: float
    wall_time: float
    stop_reason: str
    resumed: bool = False
    n_pending: int = 0
    n_pruned: int = 0
    seconds_saved: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir, "n_evaluated": self.n_evaluated,
                "n_failed": self.n_failed, "n_pruned": self.n_pruned,
                "seconds_saved": self.seconds_saved, "hypervolume": self.hypervolume,
                "wall_time": self.wall_time, "stop_reason": self.stop_reason,
                "resumed": self.resumed, "n_pending": self.n_pending,
                "pareto_front": [{"candidate": c.to_dict(), "result": r.to_dict()}
                                 for c, r in self.pareto_front]}


# ------------------------------------------------------------------------------ progress
class _Progress:
    """Adapts ``progress``: None (silent), an object with optional ``started`` / ``told`` /
    ``finished`` methods, or a callable ``progress(event, payload)``. Its errors are warnings."""

    def __init__(self, target: Any):
        self.target = target

    def emit(self, event: str, *args: Any) -> None:
        if self.target is None:
            return
        try:
            method = getattr(self.target, event, None)
            if callable(method):
                method(*args)
            elif callable(self.target) and not hasattr(self.target, "started"):
                self.target(event, *args)
        except Exception as e:  # noqa: BLE001 - a display must never stop the search
            warnings.warn(f"progress display failed on {event}: {type(e).__name__}: {e}",
                          stacklevel=2)


# ------------------------------------------------------------------------------ targets
def evaluation_target(cfg: RunConfig) -> tuple[str, dict[str, Any]]:
    """("module:Class", kwargs) that evaluates candidates of this run. With early stopping at
    a low fidelity (``low_fidelity`` of the scheduler's options) the target is built with
    ``low_fidelity=f``: it runs the cheap pass first and reports it (`evocl.cl.evaluation`)."""
    low = ({} if cfg.early_stop == "none" or cfg.early_stop_options.get("low_fidelity") is None
           else {"low_fidelity": cfg.early_stop_options["low_fidelity"]})
    if cfg.objective == "cl":
        return CL_TARGET, {"stream": cfg.stream, "backbone": cfg.backbone, "device": cfg.device,
                           "fitness_tasks": cfg.fitness_tasks, **cfg.evaluator_options, **low}
    if ":" not in cfg.objective:
        raise UserError(f"must be 'cl' or 'module:attr', got {cfg.objective!r}", field="objective")
    return cfg.objective, {**cfg.evaluator_options, **low}


def _fingerprints(cfg: RunConfig) -> dict[str, Any]:
    """Stream / backbone identity where cheaply known. A backbone or stream that cannot be used
    (or that do not fit each other) is the user's one-line error before the run exists."""
    out: dict[str, Any] = {"backbone": cfg.backbone if cfg.objective == "cl" else None}
    if cfg.objective == "cl":
        from evocl.cl.backbone import check_backbone, check_pairing
        kind = check_backbone(cfg.backbone)  # packages and files, no weights: one line, no run
        try:
            from evocl.streams import load_stream
            seed = int(cfg.evaluator_options.get("stream_seed", 0))  # as CLEvaluator loads it
            stream = load_stream(cfg.stream, seed=seed)
            check_pairing(stream.scenario, kind, stream=cfg.stream, backbone=cfg.backbone)
            from evocl.cl.names import Options
            from evocl.streams.retention import apply_options, describe

            opts = Options.from_mapping(cfg.evaluator_options)
            stream = apply_options(stream, task_metric=opts.task_metric,
                                   retention=opts.retention,
                                   retention_metric=opts.retention_metric)
            out["stream"] = stream.fingerprint
            out["retention"] = describe(stream)
        except UserError:
            raise  # a stream that cannot be loaded: the user's one-line error, no run created
        except Exception as e:  # noqa: BLE001 - the evaluator will report a real problem
            warnings.warn(f"stream fingerprint unknown ({type(e).__name__}: {e})", stacklevel=2)
    return out


def _check_cl_space(space: Any, source: str, backbone: str) -> None:
    """A CL search's space may name only parameters, objectives and constraints the evaluator
    knows (``perplexity`` only with a causal LM): a typo is a one-line error up front, not a
    run of failed evaluations."""
    import difflib

    from evocl.cl.backbone import backbone_kind
    from evocl.cl.names import ALL_OBJECTIVES, OBJECTIVES
    from evocl.cl.params import KNOWN_PARAMETERS
    from evocl.errors import SpaceError

    reported = ALL_OBJECTIVES if backbone_kind(backbone) == "causal_lm" else OBJECTIVES
    checks = ([("parameters", p.name, KNOWN_PARAMETERS) for p in space.parameters]
              + [("objectives", o.name, reported) for o in space.objectives]
              + [("constraints", c.name, reported) for c in space.constraints])
    for section, name, known in checks:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(known)}"
            raise SpaceError(f"not known to the continual-learning evaluator{hint}",
                             source=source, field=f"{section}.{name}")


def _check_retention(space: Any, source: str, fingerprints: dict[str, Any]) -> None:
    """``retention`` / ``retention_drop`` in a space need a stream with a retention set."""
    from evocl.cl.names import RETENTION_OBJECTIVES
    from evocl.errors import SpaceError

    named = [("objectives", o.name) for o in space.objectives] + \
        [("constraints", c.name) for c in space.constraints]
    named = [(s, n) for s, n in named if n in RETENTION_OBJECTIVES]
    if named and "retention" in fingerprints and fingerprints["retention"] is None:
        section, name = named[0]
        raise SpaceError("the stream has no retention set to score (give one with --retention "
                         "FILE or a `retention:` entry in the stream spec)", source=source,
                         field=f"{section}.{name}")


# ------------------------------------------------------------------------------ resume
def _check_identity(stored: RunConfig, given: RunConfig, meta: dict[str, Any]) -> Any:
    """The run's SearchSpace; RunDirError naming what differs when an identity field changed."""
    from evocl.space import load
    from evocl.storage.view import space_of
    space = space_of(meta, given.run_dir)
    diffs = [f"{f}: {getattr(stored, f)!r} -> {getattr(given, f)!r}" for f in IDENTITY_FIELDS
             if f != "space" and getattr(stored, f) != getattr(given, f)]
    if Path(given.space).exists():
        current = load(given.space)
        if current.fingerprint != space.fingerprint:
            diffs.append(f"space: {given.space} no longer matches the run's space "
                         f"(fingerprint {space.fingerprint} -> {current.fingerprint})")
    elif given.space != stored.space:
        diffs.append(f"space: {stored.space!r} -> {given.space!r} (file not found)")
    if diffs:
        raise RunDirError(f"{given.run_dir}: cannot resume with changed run identity ("
                          + "; ".join(diffs) + "); start a new run instead")
    return space


def _resume_config(stored: RunConfig, given: RunConfig, n_told: int,
                   extend_budget: int | None, extend_generations: int | None) -> RunConfig:
    new = given
    if extend_budget is not None:
        base = given.budget if given.budget is not None else n_told
        new = new.replace(budget=base + int(extend_budget))
    if extend_generations is not None:
        base_g = given.generations if given.generations is not None else 0
        new = new.replace(generations=base_g + int(extend_generations))
    return new


def _replay(space: Any, cfg: RunConfig, rd: RunDir, use_snapshot: bool) -> tuple[Any, "_Fidelity"]:
    """Engine rebuilt from a snapshot (or from scratch) plus the journal events after it;
    the early-stopping state rebuilt from every report in the journal.

    RunDirError naming the journal event when the events do not replay (an ask that gives
    other candidates, a tell of a candidate never asked or told twice, a recorded early-stop
    decision the scheduler no longer makes).
    """
    from evocl.evolution import from_state
    state, start = (rd.load_snapshot(_snapshot_check(space, cfg, rd)) if use_snapshot
                    else (None, 0))
    engine = from_state(space, state) if state is not None else _new_engine(space, cfg)
    fidelity = _Fidelity(_new_scheduler(space, cfg), engine, rd)
    by_id: dict[int, Candidate] = {}
    for e in rd.events:
        if e["event"] == "ask":
            for d in e["candidates"]:
                c = Candidate.from_dict(d)
                by_id[c.id] = c
    for i, e in enumerate(rd.events):
        if e["event"] == "report":
            cand = by_id.get(int(e["id"]))
            fidelity.replay(i, e, into_engine=i >= start,
                            config=None if cand is None else cand.config)
        elif e["event"] == "tell" and fidelity.active and int(e["id"]) in by_id:
            fidelity.observe(by_id[int(e["id"])], Result.from_dict(e["result"]))
        if i < start:
            continue
        if e["event"] == "ask":
            got = engine.ask(int(e["n"]))
            want = [(d["id"], d["config_hash"]) for d in e["candidates"]]
            if [(c.id, c.config_hash) for c in got] != want:
                raise RunDirError(
                    f"event {i}: engine.ask({e['n']}) gave "
                    f"{[(c.id, c.config_hash) for c in got]} but the run had asked {want} "
                    "(nondeterministic engine, changed code or a lost event); cannot resume "
                    "exactly", source=str(rd.journal.path))
        elif e["event"] == "tell":
            cand = by_id.get(int(e["id"]))
            if cand is None:
                raise RunDirError(f"event {i}: tell of candidate {e['id']}, which no ask event "
                                  "holds", source=str(rd.journal.path))
            try:
                engine.tell(cand, Result.from_dict(e["result"]))
            except UserError as err:
                raise RunDirError(f"event {i}: {err.rule}", source=str(rd.journal.path)) from None
    return engine, fidelity


#: What a snapshot's engine state must share with a new engine built from run.yaml.
_STATIC_FIELDS = ("format", "algorithm", "seed", "population_size", "max_tries", "options",
                  "space_fingerprint", "n_initial")


def _snapshot_check(space: Any, cfg: RunConfig, rd: RunDir) -> Any:
    """``check(state, start)`` for ``RunDir.load_snapshot``: the fault of a snapshot's engine
    state, or None. Snapshots are a cache and the journal is the truth, so a state is used only
    when its static settings are those of the engine run.yaml builds (algorithm, seed,
    population, options, space, initial configurations) and its candidates and told results
    are the journal's events before ``start``, exactly (a result the journal lost to a bad
    line may be in the state: the journal vouches for the snapshot written after it). The
    rest (populations, a policy, a surrogate's inputs, Optuna's trials) is what the engine
    derived from those; the journal vouches for it with the snapshot's SHA-256."""
    from evocl.storage.journal import json_safe

    fresh = _new_engine(space, cfg).state()

    def check(state: dict[str, Any], start: int) -> str | None:
        for key in _STATIC_FIELDS:
            if json_safe(state.get(key)) != json_safe(fresh[key]):
                return (f"its {key} {json.dumps(json_safe(state.get(key)))[:80]} is not the "
                        f"{json.dumps(json_safe(fresh[key]))[:80]} of run.yaml")
        remaining, initial = state.get("initial_remaining"), fresh["initial_remaining"]
        if not isinstance(remaining, list) or len(remaining) > len(initial) or json_safe(
                remaining) != json_safe(initial[len(initial) - len(remaining):]):
            return "its initial configurations are not run.yaml's"
        cands, told = state.get("candidates"), state.get("told")
        if not isinstance(cands, list) or not isinstance(told, list):
            return "its candidates or told results are not lists"
        asked_j = [json_safe(d) for e in rd.events[:start] if e["event"] == "ask"
                   for d in e["candidates"]]
        told_j = [[e["id"], json_safe(e["result"])] for e in rd.events[:start]
                  if e["event"] == "tell"]
        lost = rd.journal.bad_before(start)
        for what, mine, truth, most in (("candidates", [json_safe(d) for d in cands], asked_j,
                                         len(cands)),
                                        ("told results", json_safe(told), told_j, lost)):
            if mine != truth and not (lost and len(mine) - len(truth) <= most
                                      and _subsequence(truth, mine)):
                return (f"its {what} are not the journal's ({len(mine)} in the snapshot, "
                        f"{len(truth)} in the journal before it)")
        return None

    return check


def _subsequence(short: list[Any], long: list[Any]) -> bool:
    """Whether ``short`` is ``long`` with some items left out, in order."""
    it = iter(long)
    return all(any(x == y for y in it) for x in short)


def _replay_resume(space: Any, cfg: RunConfig, rd: RunDir) -> tuple[Any, "_Fidelity"]:
    """The engine of a resumed run: from the newest usable snapshot, else the whole journal.
    Bad lines in the middle of the journal move to its quarantine only once the events
    without them have replayed; where they cannot, nothing is changed and the resume stops."""
    try:
        try:
            engine, fidelity = _replay(space, cfg, rd, use_snapshot=True)
        except UserError as e:  # the snapshot may be the culprit: replay the whole journal
            warnings.warn(f"resume from snapshot failed ({e}); replaying the whole journal",
                          stacklevel=3)
            engine, fidelity = _replay(space, cfg, rd, use_snapshot=False)
    except UserError as e:
        if rd.pending_repair is None:
            raise
        raise RunDirError(
            f"{rd.pending_repair}; without it the events after it do not replay consistently "
            f"({e.rule}); nothing was changed or deleted: restore the line from a backup, or "
            "start a new run", source=str(rd.journal.path)) from None
    if rd.pending_repair is not None:
        rd.commit_repair()
        rd.save_snapshot(engine.n_told, engine.state())  # in the journal's new numbering
    return engine, fidelity


#: Settings that contact a machine (a Ray cluster, a database) or spend its resources: a
#: resume takes them from run.yaml only when they are named again or trusted.
RUN_SETTINGS = ("workers", "executor", "cpus_per_eval", "gpus_per_eval", "ray_address",
                "ray_dashboard", "storage")
_FLAGS = {"workers": "--workers", "executor": "--executor", "cpus_per_eval": "--cpus-per-eval",
          "gpus_per_eval": "--gpus-per-eval", "ray_address": "--ray-address",
          "ray_dashboard": "--ray-dashboard", "storage": "--storage"}


def resume_config(run_dir: str | Path, *, objective: str | None = None,
                  trust_objective: bool = False, named: Mapping[str, Any] | None = None,
                  trust_run_settings: bool = False) -> RunConfig:
    """The saved RunConfig of a run, for ``evocl resume`` and ``evocl.search(resume=True)``.

    A run directory is data, not code: an objective other than ``cl`` is an import path,
    and it is used only when the caller names it again (``objective``) or explicitly trusts
    the directory (``trust_objective``, like transformers' ``trust_remote_code``). Likewise
    nothing is contacted or spent on run.yaml's word: its `RUN_SETTINGS` (workers, Ray
    address, storage URL, ...) are replaced by the defaults unless given again in ``named``
    (which this config then holds) or ``trust_run_settings``; see `resume_plan`.
    """
    return resume_plan(run_dir, objective=objective, trust_objective=trust_objective,
                       named=named, trust_run_settings=trust_run_settings)[0]


def resume_plan(run_dir: str | Path, *, objective: str | None = None,
                trust_objective: bool = False, named: Mapping[str, Any] | None = None,
                trust_run_settings: bool = False) -> tuple[RunConfig, tuple[str, ...]]:
    """(`resume_config`, the run.yaml settings it left out). One warning line names those
    and how to use them; pass them to ``run_search(keep=...)`` so run.yaml keeps them."""
    from evocl.storage import read_run

    cfg = read_run(run_dir).config.replace(run_dir=str(run_dir))
    source = str(Path(run_dir) / "run.yaml")
    if objective is not None:
        if objective != cfg.objective:
            raise RunDirError(f"the run's objective is {cfg.objective!r:.80}, not "
                              f"{objective!r:.80} as given by --objective; a resume cannot "
                              "change it", source=source, field="config.objective")
    elif cfg.objective != "cl" and not trust_objective:
        raise RunDirError(
            f"names {cfg.objective!r:.80}, code that evocl imports only when you name it "
            f"again: resume with --objective {cfg.objective:.80} (or --trust-objective) if "
            "you trust this run directory", source=source, field="config.objective")
    named = {k: v for k, v in (named or {}).items() if k in RUN_SETTINGS}
    cfg = cfg.replace(**named)
    if trust_run_settings:
        return cfg, ()
    defaults = {f.name: f.default for f in fields(RunConfig) if f.name in RUN_SETTINGS}
    left = {k: getattr(cfg, k) for k in RUN_SETTINGS
            if k not in named and getattr(cfg, k) != defaults[k]}
    if left:
        again = " ".join(_FLAGS[k] if v is True else f"{_FLAGS[k]} {v}" for k, v in left.items())
        warnings.warn(
            f"{source}: not used unless named again: "
            + ", ".join(f"{k}={v!r:.60}" for k, v in left.items())
            + f"; this resume runs on this machine with the defaults (resume with {again:.200} "
            "or --trust-run-settings to use them)", stacklevel=2)
        cfg = cfg.replace(**{k: defaults[k] for k in left})
    return cfg, tuple(left)


def _check_setup(cfg: RunConfig) -> None:
    """Settings refused before a run directory exists (they would fail every evaluation)."""
    from evocl.storage.optuna_mirror import check_storage_url, open_storage

    check_storage_url(cfg.storage)
    if cfg.pack > 1 and cfg.early_stop != "none" \
            and cfg.early_stop_options.get("low_fidelity") is not None:
        raise UserError("a pack does not run the cheap pass of low_fidelity yet: use --pack 1 "
                        "with it, or drop low_fidelity", field="--pack")
    open_storage(cfg.storage)
    if cfg.ray_dashboard and not cfg.ray_address:
        from evocl.execution.ray_executor import check_dashboard
        check_dashboard()
    if cfg.objective == "cl":
        from evocl.cl.names import Options
        try:
            Options.from_mapping(cfg.evaluator_options)
        except UserError as e:
            raise UserError(e.rule, field=f"-o {e.field}") from None


def _new_engine(space: Any, cfg: RunConfig) -> Any:
    """The run's engine; with ``asha`` at its default rungs, an engine with a pruner of its
    own (``optuna-tpe`` / ``optuna-nsga2`` on one objective: Optuna's SuccessiveHalvingPruner)
    decides early stopping itself."""
    from evocl.evolution import create
    engine = create(cfg.algorithm, space, population_size=cfg.population, seed=cfg.seed,
                    initial=list(cfg.initial) or None, **dict(cfg.algorithm_options))
    scheduler = _new_scheduler(space, cfg)
    if (scheduler.name == "asha" and scheduler.options["rungs"] is None
            and scheduler.options["low_fidelity"] is None):
        engine.use_pruner(int(scheduler.options["eta"]), int(scheduler.options["min_tasks"]))
    return engine


def _new_scheduler(space: Any, cfg: RunConfig) -> Any:
    from evocl.evolution.early_stop import create
    return create(cfg.early_stop, space, **dict(cfg.early_stop_options))


def _check_reports(cfg: RunConfig, target: str) -> None:
    """Early stopping needs a target that reports after each task (``on_task_end``)."""
    if cfg.early_stop == "none":
        return
    from evocl.execution.base import accepts_reports, resolve_target
    if not accepts_reports(resolve_target(target)):
        raise UserError(f"{target} takes no on_task_end argument, so it cannot report after "
                        f"each task; use early_stop none", field="early_stop")
    if cfg.early_stop_options.get("low_fidelity") is not None:
        import inspect
        obj = resolve_target(target)
        try:
            params = inspect.signature(obj).parameters if isinstance(obj, type) else {}
        except (TypeError, ValueError):
            params = {}
        if "low_fidelity" not in params and not any(
                p.kind is p.VAR_KEYWORD for p in params.values()):
            raise UserError(f"{target} is not built with a low_fidelity argument, so it has "
                            "no cheap pass; drop low_fidelity", field="early_stop_options")


class _Fidelity:
    """Per-task reports of running candidates: the decision (the scheduler's, or the engine's
    own pruner's), journaled with the report before the worker acts on it; once per
    (candidate, task count), so a candidate evaluated again gets the recorded answer."""

    def __init__(self, scheduler: Any, engine: Any, rd: RunDir):
        self.scheduler, self.engine, self.rd = scheduler, engine, rd
        self.decided: dict[tuple[int, int], bool] = {}
        self.reports: dict[int, list[dict[str, Any]]] = {}

    @property
    def active(self) -> bool:
        return bool(self.scheduler.active)

    def __call__(self, candidate: Candidate, report: dict[str, Any]) -> bool:
        try:
            report = json.loads(json.dumps(report, default=_plain))
            key = (candidate.id, int(report["tasks_seen"]))
            int(report["n_tasks"])
        except (TypeError, ValueError, KeyError) as e:
            warnings.warn(f"candidate {candidate.id}: unusable task report ({type(e).__name__}: "
                          f"{e}); it continues", stacklevel=2)
            return True
        if key in self.decided:
            return self.decided[key]
        ok = self._decide(candidate.id, report, into_engine=True, config=candidate.config)
        ok = True if ok is None else ok
        self.rd.append_report(candidate.id, report, ok)
        self._keep(candidate.id, report, ok)
        return ok

    def _decide(self, cid: int, report: dict[str, Any], into_engine: bool,
                config: Any = None) -> bool | None:
        said = self.engine.report(cid, report) if into_engine else None
        if self.engine.prunes:
            return said          # None: already in the engine's state (before the snapshot)
        return self.scheduler.decide(cid, report, config)

    def observe(self, candidate: Candidate, result: Result) -> None:
        """A told result for the scheduler (in journal order, on resume too)."""
        self.scheduler.observe(candidate.id, candidate.config, result)

    def replay(self, index: int, event: dict[str, Any], into_engine: bool,
               config: Any = None) -> None:
        cid, report, recorded = int(event["id"]), event["report"], bool(event["continue"])
        ok = self._decide(cid, report, into_engine, config)
        if ok is not None and ok != recorded:
            raise RunDirError(
                f"event {index}: the early stop decision for candidate {cid} after "
                f"{report.get('tasks_seen')} tasks is now {ok}, but the run had decided "
                f"{recorded} (changed code or options); cannot resume exactly",
                source=str(self.rd.journal.path))
        self._keep(cid, report, recorded)

    def _keep(self, cid: int, report: dict[str, Any], ok: bool) -> None:
        self.decided[(cid, int(report["tasks_seen"]))] = ok
        self.reports.setdefault(cid, []).append(report)


def _plain(obj: Any) -> Any:
    """JSON for numpy scalars and arrays in a report (anything else: its text)."""
    return obj.tolist() if hasattr(obj, "tolist") else str(obj)


# ------------------------------------------------------------------------------ stopping
def _max_evaluations(cfg: RunConfig) -> int | None:
    caps = [v for v in (cfg.budget, None if cfg.generations is None
                        else cfg.generations * cfg.population) if v is not None]
    return min(caps) if caps else None


def _termination(cfg: RunConfig) -> Any:
    from evocl.evolution.termination import from_limits
    return from_limits(budget=cfg.budget, generations=cfg.generations,
                       max_wall_time=cfg.max_wall_time, stagnation=cfg.stagnation)


def _out_of_time(cfg: RunConfig, elapsed: float) -> bool:
    return cfg.max_wall_time is not None and elapsed >= cfg.max_wall_time


def _previous_elapsed(events: list[dict[str, Any]]) -> float:
    """Search time of earlier sessions: the ``elapsed`` of the last tell (lost time not counted)."""
    for e in reversed(events):
        if e.get("event") == "tell" and "elapsed" in e:
            return float(e["elapsed"])
    return 0.0


def _stats(engine: Any, space_objectives: list[Any], total: int | None, elapsed: float,
           n_failed: int, n_pruned: int = 0) -> dict[str, Any]:
    best: dict[str, float] = {}
    for o in space_objectives:
        vals = [r.objectives[o.name] for _, r in engine.pareto_front()
                if o.name in r.objectives and math.isfinite(r.objectives[o.name])]
        if vals:
            best[o.name] = max(vals) if o.direction == "maximize" else min(vals)
    try:
        hv = float(engine.hypervolume())
    except Exception:  # noqa: BLE001
        hv = float("nan")
    return {"n_told": engine.n_told, "n_failed": n_failed, "n_pruned": n_pruned,
            "total": total, "elapsed": elapsed,
            "generation": engine.generation, "hypervolume": hv, "best": best}


# ------------------------------------------------------------------------------ main
def run_search(run_config: RunConfig, *, resume: bool = False, progress: Any = None,
               extend_budget: int | None = None, extend_generations: int | None = None,
               poll: float = 1.0, keep: Collection[str] = ()) -> RunSummary:
    """Run (or resume) a search; every ask and tell is journaled before it is used.

    ``resume=True`` continues the run in ``run_config.run_dir``: identity fields must match
    the saved run; budget / generations / wall time / workers / executor settings may change
    (recorded in run.yaml). ``extend_budget`` / ``extend_generations`` add to the given
    budget / generations (to the evaluations done when no budget was set). ``keep``: fields
    this session runs without (run.yaml settings `resume_plan` left out); run.yaml keeps them.
    """
    t_start = time.monotonic()
    prog = _Progress(progress)
    created = False
    if resume:
        rd = RunDir.open(run_config.run_dir)
    else:
        from evocl.space import load
        space = load(run_config.space)
        target, _ = evaluation_target(run_config)
        if run_config.objective == "cl":
            _check_cl_space(space, run_config.space, run_config.backbone)
        else:
            from evocl.execution.base import check_target_path
            check_target_path(target)
        _new_engine(space, run_config)  # bad algorithm settings fail before the directory exists
        _check_setup(run_config)
        _check_reports(run_config, target)
        fingerprints = _fingerprints(run_config)
        _check_retention(space, run_config.space, fingerprints)
        rd = RunDir.create(run_config.run_dir, run_config, space, fingerprints=fingerprints)
        created = True
    executor = mirror = None
    try:
        if resume:
            stored = rd.config
            space = _check_identity(stored, run_config, rd.meta)
            cfg = _resume_config(stored, run_config, rd.n_told(), extend_budget,
                                 extend_generations)
            engine, fidelity = _replay_resume(space, cfg, rd)
            changes = {k: (v, getattr(cfg, k)) for k, v in stored.to_dict().items()
                       if getattr(cfg, k) != v and k not in keep}
            rd.record_changes(cfg.replace(**{k: getattr(stored, k) for k in keep}), changes)
        else:
            cfg = run_config
            engine = _new_engine(space, cfg)
            fidelity = _Fidelity(_new_scheduler(space, cfg), engine, rd)

        t0 = t_start - (_previous_elapsed(rd.events) if resume else 0.0)  # wall time: all sessions
        term = _termination(cfg)
        mirror = OptunaMirror(rd.path, Path(rd.path).resolve().name, space, storage=cfg.storage)
        if resume:
            mirror.sync(engine.evaluations(), fidelity.reports)
        target, kwargs = evaluation_target(cfg)
        executor = create_executor(
            resolve_kind(cfg.executor, cfg.workers, cfg.ray_address, cfg.gpus_per_eval),
            target=target,
            target_kwargs=kwargs, workers=cfg.workers, cpus_per_eval=cfg.cpus_per_eval,
            gpus_per_eval=cfg.gpus_per_eval, pack=cfg.pack, ray_address=cfg.ray_address,
            eval_timeout=cfg.eval_timeout, max_retries=cfg.max_retries,
            dashboard=cfg.ray_dashboard, on_report=fidelity if fidelity.active else None,
            stream_fingerprint=(rd.meta.get("fingerprints") or {}).get("stream"))
        queue = collections.deque(engine.in_flight)  # asked, never told: evaluated once more
        cap = _max_evaluations(cfg)
        n_failed = sum(1 for _, r in engine.evaluations() if r.status == "failed")
        n_pruned = engine.n_pruned
        prog.emit("started", {"run_dir": str(rd.path), "total": cap, "n_told": engine.n_told,
                              "n_failed": n_failed, "resumed": resume,
                              "objectives": [(o.name, o.direction) for o in space.objectives],
                              "max_wall_time": cfg.max_wall_time})
        last_gen, since_snap = engine.generation, 0
        need_ask, reason = True, None
        while True:
            elapsed = time.monotonic() - t0
            reason = term.done(engine, elapsed)
            if _out_of_time(cfg, elapsed) or (reason and not executor.in_flight()):
                break  # out of time: what is in flight stays pending for a resume
            while queue and executor.free_slots() > 0:
                executor.submit(queue.popleft())
            free = executor.free_slots()
            room = free if cap is None else min(free, cap - engine.n_asked)
            if reason is None and not queue and need_ask and room > 0:
                cands = engine.ask(room)
                rd.append_ask(room, cands)
                for c in cands:
                    executor.submit(c)
                need_ask = len(cands) == room
            if not executor.in_flight() and not queue:
                reason = reason or ("budget" if cap is not None and engine.n_asked >= cap
                                    else "engine exhausted")
                break
            wait = poll if cfg.max_wall_time is None else max(
                0.01, min(poll, cfg.max_wall_time - (time.monotonic() - t0)))
            for cand, res in executor.results(timeout=wait):
                rd.append_tell(cand.id, res, elapsed=time.monotonic() - t0)
                engine.tell(cand, res)
                if fidelity.active:
                    fidelity.observe(cand, res)
                need_ask = True
                n_failed += res.status == "failed"
                n_pruned += res.status == "pruned"
                mirror.add(cand, res, fidelity.reports.get(cand.id))
                since_snap += 1
                if engine.generation != last_gen or (cfg.snapshot_every
                                                     and since_snap >= cfg.snapshot_every):
                    rd.save_snapshot(engine.n_told, engine.state())
                    last_gen, since_snap = engine.generation, 0
                prog.emit("told", cand, res, _stats(engine, list(space.objectives), cap,
                                                    time.monotonic() - t0, n_failed, n_pruned))
                break  # refill free slots before waiting again
        if since_snap:
            rd.save_snapshot(engine.n_told, engine.state())
        summary = RunSummary(
            run_dir=str(rd.path), pareto_front=engine.pareto_front(), n_evaluated=engine.n_told,
            n_failed=n_failed, hypervolume=float(engine.hypervolume()),
            wall_time=time.monotonic() - t_start, stop_reason=reason or "stopped", resumed=resume,
            n_pending=len(engine.in_flight), n_pruned=n_pruned,
            seconds_saved=seconds_saved(r for _, r in engine.evaluations()))
        prog.emit("finished", summary)
        return summary
    except BaseException:
        if created and rd.discard():  # setup failed before the first ask: leave no husk behind
            created = False
        raise
    finally:
        if executor is not None:
            executor.shutdown()
        if mirror is not None:
            mirror.close()
        rd.close()


__all__ = ["CL_TARGET", "IDENTITY_FIELDS", "RUN_SETTINGS", "RunSummary", "evaluation_target",
           "resume_config", "resume_plan", "run_search"]
