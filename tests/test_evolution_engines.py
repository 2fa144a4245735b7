"""One shared suite run against every engine, baselines included (as optuna's
pytest_samplers.py does for samplers): ids, seeds, determinism, state round trip, dedup,
failures, initial configurations, errors, hypervolume progress."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest

from evocl.errors import UserError
from evocl.evolution import ENGINES, create, from_state
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


@pytest.fixture(scope="module")
def mixed() -> SearchSpace:
    return SearchSpace.from_dict(MIXED)


def drive(engine, objective, budget: int, batch: int = 3, reverse: bool = False) -> list[Candidate]:
    """Ask in batches, tell each batch (optionally in reverse arrival order)."""
    asked = []
    while engine.n_told < budget:
        cands = engine.ask(batch)
        if not cands:
            raise AssertionError("an engine with nothing in flight returned no candidate")
        asked += cands
        for c in (reversed(cands) if reverse else cands):
            engine.tell(c, objective(c))
    return asked


@pytest.fixture(params=ENGINES.names())
def algorithm(request) -> str:
    return request.param


def test_ids_seeds_and_canonical_configs(algorithm, mixed):
    engine = create(algorithm, mixed, population_size=6, seed=7)
    asked = drive(engine, mixed_objective, 18)
    assert [c.id for c in asked] == list(range(len(asked)))
    for c in asked:
        assert c.seed == derive_seed(7, c.id)
        assert c.config == mixed.canonical(mixed.validate_config(c.config))
        assert c.config_hash == mixed.config_hash(c.config)
        assert ("buffer" in c.config) == c.config["replay"]   # only active parameters
    assert engine.n_asked == len(asked) and engine.n_told == 18


def test_same_seed_same_candidates(algorithm, mixed):
    runs = []
    for _ in range(2):
        engine = create(algorithm, mixed, population_size=4, seed=3)
        runs.append([c.config_hash for c in drive(engine, mixed_objective, 16)])
    assert runs[0] == runs[1]
    other = create(algorithm, mixed, population_size=4, seed=4)
    assert [c.config_hash for c in drive(other, mixed_objective, 16)] != runs[0]


def test_ask_n_equals_repeated_ask_1(algorithm, mixed):
    e1 = create(algorithm, mixed, population_size=4, seed=1)
    e2 = create(algorithm, mixed, population_size=4, seed=1)
    drive(e1, mixed_objective, 8, batch=4)
    drive(e2, mixed_objective, 8, batch=4)
    batch = e1.ask(3)
    singles = e2.ask(1) + e2.ask(1) + e2.ask(1)
    assert [c.to_dict() for c in batch] == [c.to_dict() for c in singles]


def test_state_round_trip_continues_exactly(algorithm, mixed):
    engine = create(algorithm, mixed, population_size=4, seed=5,
                    initial=[{"lr": 1e-3, "rank": 8, "targets": "all", "replay": False}])
    drive(engine, mixed_objective, 9)
    pending = engine.ask(2)
    state = json.loads(json.dumps(engine.state()))   # JSON-ready, no pickle
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
    assert json.dumps(clone.state(), sort_keys=True) == json.dumps(engine.state(), sort_keys=True)


def test_from_state_refuses_other_space(algorithm, mixed):
    engine = create(algorithm, mixed, population_size=4, seed=5)
    with pytest.raises(UserError, match="space"):
        from_state(SearchSpace.from_dict(TINY), engine.state())


def test_initial_configs_asked_first(algorithm, mixed):
    init = [{"lr": 1e-3, "rank": 8, "targets": "all", "replay": False},
            {"lr": 1e-4, "rank": 2, "targets": "mlp", "replay": True, "buffer": 20, "ratio": 0.5}]
    engine = create(algorithm, mixed, population_size=4, seed=0, initial=init)
    first = engine.ask(2)
    assert [c.config for c in first] == [mixed.canonical(c) for c in init]
    assert all(c.origin == "initial" for c in first)


def test_dedup_in_a_tiny_space(algorithm):
    tiny = SearchSpace.from_dict(TINY)
    engine = create(algorithm, tiny, population_size=4, seed=0, max_tries=20)
    asked = drive(engine, tiny_objective, 12, batch=4)
    assert len({c.config_hash for c in asked[:12]}) == 12   # every config once before repeats
    more = drive(engine, tiny_objective, 16, batch=4)        # exhausted: no hang, repeats allowed
    assert len(more) >= 4


def test_failures_never_parents_and_never_stall(algorithm, mixed):
    engine = create(algorithm, mixed, population_size=4, seed=2)
    failed: set[int] = set()

    def flaky(c: Candidate) -> Result:
        if c.id % 3 == 0:
            failed.add(c.id)
            return Result.failed("boom")
        if c.id % 3 == 1 and c.id % 2 == 0:
            failed.add(c.id)
            return Result(objectives={"acc": math.nan, "cost": 1.0})
        if c.id == 5:
            failed.add(c.id)
            return Result(objectives={"acc": 1.0})   # missing objective
        return mixed_objective(c)

    asked = drive(engine, flaky, 30)
    assert engine.n_told >= 30 and engine.n_failed == len(failed)
    for c in asked:
        assert not set(c.parents) & failed
    assert not {c.id for c, _ in engine.pareto_front()} & failed


def test_all_failed_still_asks(algorithm, mixed):
    engine = create(algorithm, mixed, population_size=3, seed=0)
    drive(engine, lambda c: Result.failed("always"), 9)
    assert len(engine.ask(2)) >= 1
    assert engine.pareto_front() == [] and engine.hypervolume() == 0.0


def test_tell_errors(algorithm, mixed):
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


def test_pareto_front_is_non_dominated_with_directions(algorithm, mixed):
    engine = create(algorithm, mixed, population_size=4, seed=1)
    drive(engine, mixed_objective, 20)
    front = engine.pareto_front()
    assert front
    told = [r for _, r in engine.evaluations()]
    for _, r in front:
        for o in told:   # acc is maximized, cost minimized
            better = o.objectives["acc"] >= r.objectives["acc"] and o.objectives["cost"] <= r.objectives["cost"]
            strictly = o.objectives["acc"] > r.objectives["acc"] or o.objectives["cost"] < r.objectives["cost"]
            assert not (better and strictly)
    assert engine.hypervolume() > 0.0


def test_improves_hypervolume_on_zdt1(algorithm):
    space = zdt_space(4)
    engine = create(algorithm, space, population_size=10, seed=0)
    drive(engine, zdt_objective, 10, batch=10)
    start = engine.hypervolume()
    drive(engine, zdt_objective, 80, batch=10)
    assert engine.hypervolume() > start


_SCRIPT = textwrap.dedent("""
    import json
    from evocl.evolution import ENGINES, create
    from evocl.evolution.problems import evaluate, problem_space
    from evocl.records import Result
    space = problem_space("zdt1", 4)
    out = {}
    for alg in ENGINES.names():
        e = create(alg, space, population_size=4, seed=11)
        hashes = []
        while e.n_told < 12:
            cands = e.ask(3)
            hashes += [c.config_hash for c in cands]
            for c in reversed(cands):
                e.tell(c, Result(objectives=evaluate("zdt1", c.config)))
        out[alg] = hashes
    print(json.dumps(out))
""")


def test_same_candidates_in_a_new_process():
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                              check=True, timeout=120, env={"PYTHONHASHSEED": "random",
                                                            **_env()})
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    exec_globals: dict = {}
    local = subprocess.run  # noqa: F841 (same script in-process below)
    import io
    import contextlib
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(_SCRIPT, exec_globals)
    here = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert runs[0] == runs[1] == here
    assert set(here) == set(ENGINES.names())


def _env() -> dict:
    import os
    return {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
