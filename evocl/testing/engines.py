"""The engine contract as a shipped, parametrized pytest suite (in the shape of Optuna's
``optuna/testing/pytest_samplers.py``). Every engine of ``evocl.registry.ENGINES`` runs it;
a third-party engine runs it on itself by registering and subclassing::

    # tests/test_my_engine.py
    import pytest
    from evocl.registry import ENGINES
    from evocl.testing.engines import EngineSuite

    ENGINES.register("mine", "my_pkg.engine:MyEngine", "my search engine")

    class TestMyEngine(EngineSuite):
        @pytest.fixture
        def algorithm(self) -> str:
            return "mine"

What it checks: consecutive ids and derived training seeds; canonical, active-only configs;
determinism from the seed (in this process and in a fresh one, and no torch or Ray imported);
``ask(n)`` equals n ``ask(1)``; the state is strict JSON and an engine rebuilt from it
continues exactly, in-flight candidates included; initial configurations first; duplicates
avoided while the space has new configurations, no hang once it is exhausted; failed, NaN,
infinite or missing objectives are never parents and never on the front, and never stall the
engine; pruned results (early stopping) are counted as pruned, never on the front nor in the
hypervolume however good their partial objectives, and survive a state round trip; tell errors; unknown options refused; any interleaving of asks, out-of-order tells
and failures keeps the bookkeeping invariants (hypothesis).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evocl.errors import UserError
from evocl.evolution import create, from_state, pareto
from evocl.evolution.problems import evaluate, problem_dict
from evocl.records import Candidate, Result, derive_seed
from evocl.space import SearchSpace

MIXED = {
    "parameters": {
        "lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "rank": {"type": "int", "low": 2, "high": 16, "step": 2},
        "targets": {"type": "categorical", "choices": ["attention", "mlp", "all"]},
        "replay": {"type": "bool"},
        "buffer": {"type": "int", "low": 10, "high": 100, "when": {"replay": True}},
        "ratio": {"type": "float", "low": 0.0, "high": 1.0, "when": {"replay": True}},
    },
    "objectives": {"acc": {"direction": "maximize"}, "cost": {"direction": "minimize"}},
}

TINY = {  # 2 x 2 x 3 = 12 configurations in all
    "parameters": {
        "a": {"type": "bool"},
        "b": {"type": "bool"},
        "c": {"type": "categorical", "choices": ["x", "y", "z"]},
    },
    "objectives": {"f": {"direction": "minimize", "ref": 10.0}},
}


def mixed_objective(c: Candidate) -> Result:
    cfg = c.config
    acc = -abs(math.log10(cfg["lr"]) + 3.5) + 0.1 * (cfg["targets"] == "all")
    acc += 0.2 * cfg.get("ratio", 0.0) if cfg["replay"] else 0.0
    cost = cfg["rank"] + (cfg.get("buffer", 0) / 10.0)
    return Result(objectives={"acc": acc, "cost": cost})


def tiny_objective(c: Candidate) -> Result:
    cfg = c.config
    return Result(objectives={"f": float(cfg["a"]) + 2 * cfg["b"] + "xyz".index(cfg["c"])})


def zdt_space(n_var: int = 4) -> SearchSpace:
    d = problem_dict("zdt1", n_var)
    for obj in d["objectives"].values():
        obj["ref"] = 11.0
    return SearchSpace.from_dict(d)


def zdt_objective(c: Candidate) -> Result:
    return Result(objectives=evaluate("zdt1", c.config))


def drive(engine: Any, objective: Callable[[Candidate], Result], budget: int, batch: int = 3,
          reverse: bool = False) -> list[Candidate]:
    """Ask in batches, tell each batch (optionally in reverse arrival order)."""
    asked: list[Candidate] = []
    while engine.n_told < budget:
        cands = engine.ask(batch)
        if not cands:
            raise AssertionError("an engine with nothing in flight returned no candidate")
        asked += cands
        for c in (reversed(cands) if reverse else cands):
            engine.tell(c, objective(c))
    return asked


_NEW_PROCESS = textwrap.dedent("""
    import json, sys
    from evocl.evolution import create
    from evocl.evolution.problems import evaluate, problem_space
    from evocl.records import Result
    from evocl.registry import ENGINES
    algorithm, path = sys.argv[1], sys.argv[2]
    if algorithm not in ENGINES:          # registered at run time by the caller
        ENGINES.register(algorithm, path)
    e = create(algorithm, problem_space("zdt1", 4), population_size=4, seed=11)
    hashes = []
    while e.n_told < 12:
        cands = e.ask(3)
        hashes += [c.config_hash for c in cands]
        for c in reversed(cands):
            e.tell(c, Result(objectives=evaluate("zdt1", c.config)))
    heavy = sorted(m for m in ("torch", "transformers", "peft", "ray") if m in sys.modules)
    print(json.dumps({"hashes": hashes, "heavy": heavy}))
""")

_STEP = st.tuples(st.integers(0, 4), st.integers(0, 10 ** 6),
                  st.sampled_from(["ok", "ok", "ok", "failed", "nan", "inf"]))


class EngineSuite:
    """The shared engine contract. Override the ``algorithm`` fixture with a registered name."""

    @pytest.fixture
    def algorithm(self) -> str:
        raise NotImplementedError("override the `algorithm` fixture with a registered name")

    @pytest.fixture
    def mixed(self) -> SearchSpace:
        return SearchSpace.from_dict(MIXED)

    # ------------------------------------------------------------------ identity and seeds
    def test_ids_seeds_and_canonical_configs(self, algorithm: str, mixed: SearchSpace) -> None:
        engine = create(algorithm, mixed, population_size=6, seed=7)
        asked = drive(engine, mixed_objective, 18)
        assert [c.id for c in asked] == list(range(len(asked)))
        for c in asked:
            assert c.seed == derive_seed(7, c.id)
            assert c.config == mixed.canonical(mixed.validate_config(c.config))
            assert c.config_hash == mixed.config_hash(c.config)
            assert ("buffer" in c.config) == c.config["replay"]   # only active parameters
        assert engine.n_asked == len(asked) and engine.n_told == 18

    def test_same_seed_same_candidates(self, algorithm: str, mixed: SearchSpace) -> None:
        runs = []
        for _ in range(2):
            engine = create(algorithm, mixed, population_size=4, seed=3)
            runs.append([c.config_hash for c in drive(engine, mixed_objective, 16)])
        assert runs[0] == runs[1]
        other = create(algorithm, mixed, population_size=4, seed=4)
        assert [c.config_hash for c in drive(other, mixed_objective, 16)] != runs[0]

    def test_same_candidates_in_a_new_process_without_torch_or_ray(self, algorithm: str) -> None:
        from evocl.registry import ENGINES

        env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
        env["PYTHONHASHSEED"] = "random"
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)   # same imports here
        proc = subprocess.run([sys.executable, "-c", _NEW_PROCESS, algorithm,
                               ENGINES.path(algorithm)],
                              capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        there = json.loads(proc.stdout.strip().splitlines()[-1])
        from evocl.evolution.problems import problem_space
        engine = create(algorithm, problem_space("zdt1", 4), population_size=4, seed=11)
        here: list[str] = []
        while engine.n_told < 12:
            cands = engine.ask(3)
            here += [c.config_hash for c in cands]
            for c in reversed(cands):
                engine.tell(c, zdt_objective(c))
        assert there["hashes"] == here
        assert there["heavy"] == []          # engines stay pure Python: no torch, no Ray

    def test_ask_n_equals_repeated_ask_1(self, algorithm: str, mixed: SearchSpace) -> None:
        e1 = create(algorithm, mixed, population_size=4, seed=1)
        e2 = create(algorithm, mixed, population_size=4, seed=1)
        drive(e1, mixed_objective, 8, batch=4)
        drive(e2, mixed_objective, 8, batch=4)
        batch = e1.ask(3)
        singles = e2.ask(1) + e2.ask(1) + e2.ask(1)
        assert [c.to_dict() for c in batch] == [c.to_dict() for c in singles]

    # ------------------------------------------------------------------ state
    def test_state_round_trip_continues_exactly(self, algorithm: str, mixed: SearchSpace) -> None:
        engine = create(algorithm, mixed, population_size=4, seed=5,
                        initial=[{"lr": 1e-3, "rank": 8, "targets": "all", "replay": False}])
        drive(engine, mixed_objective, 9)
        pending = engine.ask(2)
        state = json.loads(json.dumps(engine.state(), allow_nan=False))   # strict JSON
        clone = from_state(mixed, state)
        assert [c.id for c in clone.in_flight] == [c.id for c in engine.in_flight]
        assert clone.n_asked == engine.n_asked and clone.n_told == engine.n_told
        for e in (engine, clone):
            for c in pending:
                e.tell(c, mixed_objective(c))
        a = drive(engine, mixed_objective, 20)
        b = drive(clone, mixed_objective, 20)
        assert [c.to_dict() for c in a] == [c.to_dict() for c in b]
        assert clone.hypervolume() == pytest.approx(engine.hypervolume())
        assert json.dumps(clone.state(), sort_keys=True) == json.dumps(engine.state(),
                                                                        sort_keys=True)

    def test_from_state_refuses_other_space(self, algorithm: str, mixed: SearchSpace) -> None:
        engine = create(algorithm, mixed, population_size=4, seed=5)
        with pytest.raises(UserError, match="space"):
            from_state(SearchSpace.from_dict(TINY), engine.state())

    # ------------------------------------------------------------------ what is asked
    def test_initial_configs_asked_first(self, algorithm: str, mixed: SearchSpace) -> None:
        init = [{"lr": 1e-3, "rank": 8, "targets": "all", "replay": False},
                {"lr": 1e-4, "rank": 2, "targets": "mlp", "replay": True, "buffer": 20,
                 "ratio": 0.5}]
        engine = create(algorithm, mixed, population_size=4, seed=0, initial=init)
        first = engine.ask(2)
        assert [c.config for c in first] == [mixed.canonical(c) for c in init]
        assert all(c.origin == "initial" for c in first)

    def test_dedup_in_a_tiny_space(self, algorithm: str) -> None:
        # max_tries=60: when one configuration is left unseen, 60 random fallbacks all miss
        # it with probability (11/12)^60 < 1% (seeded: a run passes or fails every time)
        tiny = SearchSpace.from_dict(TINY)
        engine = create(algorithm, tiny, population_size=4, seed=0, max_tries=60)
        asked = drive(engine, tiny_objective, 12, batch=4)
        assert len({c.config_hash for c in asked[:12]}) == 12  # every config once before repeats
        more = drive(engine, tiny_objective, 16, batch=4)       # exhausted: no hang
        assert len(more) >= 4

    # ------------------------------------------------------------------ failures
    def test_failures_never_parents_and_never_stall(self, algorithm: str,
                                                    mixed: SearchSpace) -> None:
        engine = create(algorithm, mixed, population_size=4, seed=2)
        failed: set[int] = set()

        def flaky(c: Candidate) -> Result:   # every third fails, four ways in turn
            if c.id % 3:
                return mixed_objective(c)
            failed.add(c.id)
            return [Result.failed("boom"),
                    Result(objectives={"acc": math.nan, "cost": 1.0}),
                    Result(objectives={"acc": 1.0}),                     # missing objective
                    Result(objectives={"acc": math.inf, "cost": 1.0}),   # not finite
                    ][(c.id // 3) % 4]

        asked = drive(engine, flaky, 30)
        assert engine.n_told >= 30 and engine.n_failed == len(failed)
        for c in asked:
            assert not set(c.parents) & failed
        assert not {c.id for c, _ in engine.pareto_front()} & failed
        assert math.isfinite(engine.hypervolume())

    def test_pruned_results_stay_off_the_front(self, algorithm: str,
                                               mixed: SearchSpace) -> None:
        pruned: set[int] = set()

        def half_pruned(c: Candidate) -> Result:   # partial values better than any full one
            if c.id % 2:
                return mixed_objective(c)
            pruned.add(c.id)
            return Result(objectives={"acc": 10.0, "cost": -1.0 - c.id}, status="pruned",
                          metrics={"tasks_trained": 2, "tasks_planned": 5})

        engine = create(algorithm, mixed, population_size=4, seed=3)
        drive(engine, half_pruned, 16)
        assert engine.n_pruned == len(pruned) and engine.n_failed == 0
        assert not {c.id for c, _ in engine.pareto_front()} & pruned
        full = [(c, r) for c, r in engine.evaluations() if c.id not in pruned]
        assert [c.id for c, _ in engine.pareto_front()] == \
            sorted(c.id for c, _ in pareto.front(full, mixed))   # as if they were not there
        assert all(math.isfinite(v) for v in engine.reference_point())
        assert math.isfinite(engine.hypervolume())
        clone = from_state(mixed, json.loads(json.dumps(engine.state(), allow_nan=False)))
        assert clone.n_pruned == engine.n_pruned
        assert [c.to_dict() for c in drive(clone, half_pruned, 24)] == \
            [c.to_dict() for c in drive(engine, half_pruned, 24)]

    def test_all_failed_still_asks(self, algorithm: str, mixed: SearchSpace) -> None:
        engine = create(algorithm, mixed, population_size=3, seed=0)
        drive(engine, lambda c: Result.failed("always"), 9)
        assert len(engine.ask(2)) >= 1
        assert engine.pareto_front() == [] and engine.hypervolume() == 0.0

    # ------------------------------------------------------------------ errors
    def test_tell_errors(self, algorithm: str, mixed: SearchSpace) -> None:
        engine = create(algorithm, mixed, population_size=4, seed=0)
        (c,) = engine.ask(1)
        stranger = Candidate(id=99, config=c.config, config_hash=c.config_hash, seed=0)
        with pytest.raises(UserError, match="never asked"):
            engine.tell(stranger, mixed_objective(c))
        engine.tell(c, mixed_objective(c))
        with pytest.raises(UserError, match="already told"):
            engine.tell(c, mixed_objective(c))
        with pytest.raises(UserError):
            engine.ask(-1)

    def test_unknown_option_is_refused(self, algorithm: str, mixed: SearchSpace) -> None:
        with pytest.raises(UserError, match="algorithm_options: unknown option"):
            create(algorithm, mixed, no_such_option=1)

    # ------------------------------------------------------------------ results
    def test_pareto_front_is_non_dominated_with_directions(self, algorithm: str,
                                                           mixed: SearchSpace) -> None:
        engine = create(algorithm, mixed, population_size=4, seed=1)
        drive(engine, mixed_objective, 20)
        front = engine.pareto_front()
        assert front
        told = [r for _, r in engine.evaluations()]
        for _, r in front:
            for o in told:   # acc is maximized, cost minimized
                better = (o.objectives["acc"] >= r.objectives["acc"]
                          and o.objectives["cost"] <= r.objectives["cost"])
                strictly = (o.objectives["acc"] > r.objectives["acc"]
                            or o.objectives["cost"] < r.objectives["cost"])
                assert not (better and strictly)
        assert engine.hypervolume() > 0.0

    def test_improves_hypervolume_on_zdt1(self, algorithm: str) -> None:
        space = zdt_space(4)
        engine = create(algorithm, space, population_size=10, seed=0)
        drive(engine, zdt_objective, 10, batch=10)
        start = engine.hypervolume()
        drive(engine, zdt_objective, 80, batch=10)
        assert engine.hypervolume() > start

    # ------------------------------------------------------------------ interleavings
    def test_any_interleaving_keeps_invariants(self, algorithm: str) -> None:
        from evocl.evolution.problems import problem_space

        space = problem_space("zdt1", 3)

        @settings(max_examples=20, deadline=None)
        @given(steps=st.lists(_STEP, min_size=1, max_size=25), seed=st.integers(0, 2 ** 31 - 2))
        def check(steps: list[tuple[int, int, str]], seed: int) -> None:
            engine = create(algorithm, space, population_size=4, seed=seed)
            pending: list[Candidate] = []
            failed: set[int] = set()
            for n_ask, pick, outcome in steps:
                pending += engine.ask(n_ask)
                if not pending:
                    continue
                cand = pending.pop(pick % len(pending))
                if outcome == "failed":
                    result = Result.failed("fuzz")
                else:
                    obj = evaluate("zdt1", cand.config)
                    if outcome != "ok":
                        obj["f2"] = math.nan if outcome == "nan" else math.inf
                    result = Result(objectives=obj)
                if outcome != "ok":
                    failed.add(cand.id)
                engine.tell(cand, result)
            assert engine.n_told + len(engine.in_flight) == engine.n_asked
            assert {c.id for c in engine.in_flight} == {c.id for c in pending}
            ids = [c.id for c, _ in engine.evaluations()] + [c.id for c in engine.in_flight]
            assert sorted(ids) == list(range(engine.n_asked))
            assert engine.n_failed == len(failed)
            assert not any(set(c.parents) & failed for c, _ in engine.evaluations())
            assert not {c.id for c, _ in engine.pareto_front()} & failed
            if not engine.in_flight:              # nothing to wait for: never stalls
                assert len(engine.ask(2)) >= 1
            clone = from_state(space, json.loads(json.dumps(engine.state(), allow_nan=False)))
            assert clone.state() == engine.state()

        check()
