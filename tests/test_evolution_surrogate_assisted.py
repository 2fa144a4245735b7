"""sa-nsga2: the genome codec's activity and operators, the Sobol start, the pre-screening,
options and exact resume in the model phase (the shared engine contract runs it too)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from evocl.errors import UserError
from evocl.evolution import create, from_state
from evocl.evolution.parts import SBXPolynomial
from evocl.evolution.problems import evaluate, problem_space
from evocl.evolution.genome import GenomeCodec, _pm, _sbx_child
from evocl.records import Candidate, Result
from evocl.space import SearchSpace, load
from evocl.space import operators

CL_SPACE = "search_spaces/cl_lora.yaml"

NESTED = {
    "parameters": {
        "mode": {"type": "categorical", "choices": ["a", "b", "c"]},
        "on": {"type": "bool", "when": {"mode": ["b", "c"]}},
        "x": {"type": "float", "low": 0.0, "high": 1.0, "when": {"on": True}},
        "k": {"type": "int", "low": 1, "high": 9, "when": {"mode": "c"}},
        "y": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
    },
    "objectives": {"f": "minimize", "g": "minimize"},
}


def _zdt(cand: Candidate) -> Result:
    return Result(objectives=evaluate("zdt1", cand.config))


def _asked(engine, objective, rounds: int, n: int) -> list[dict]:
    """``rounds`` times: ask ``n``, tell them all; the asked candidates as dicts."""
    got = []
    for _ in range(rounds):
        cands = engine.ask(n)
        got += [c.to_dict() for c in cands]
        for c in cands:
            engine.tell(c, objective(c))
    return got


@pytest.mark.parametrize("spec", [NESTED, CL_SPACE])
def test_codec_activity_matches_decode(spec) -> None:
    space = load(spec) if isinstance(spec, str) else SearchSpace.from_dict(spec)
    codec = GenomeCodec(space)
    G = np.random.default_rng(0).random((300, codec.d))
    act = codec.active(G)
    names = [p.name for p in space.parameters]
    for g, a in zip(G, act):
        decoded = space.decode(list(g))
        assert [n for n, on in zip(names, a) if on] == list(decoded)


def test_codec_features_of_a_config_are_its_active_genes_else_minus_one() -> None:
    space = load(CL_SPACE)
    codec = GenomeCodec(space)
    config = space.default_config()
    genome = np.array(space.encode(config, rng=np.random.default_rng(1)))
    x = codec.features(genome[None])[0]
    for p, g, v in zip(space.parameters, genome, x):
        assert v == (pytest.approx(g) if p.name in config else -1.0)


def test_vectorized_sbx_and_pm_equal_the_space_operators() -> None:
    # one numeric gene: the array forms give the scalar operators' values (on [0, 1])
    rng = np.random.default_rng(3)
    for _ in range(200):
        a, b = sorted(rng.random(2))
        if b - a < 1e-9:
            continue
        u, eta = float(rng.random()), float(rng.uniform(1, 30))
        want = operators._sbx_pair(a, b, 0.0, 1.0, u, eta)
        c1 = _sbx_child(np.array(a), np.array(b), np.array(b - a), np.array(a), np.array(u),
                        eta, lower=True)
        c2 = _sbx_child(np.array(a), np.array(b), np.array(b - a), np.array(1 - b),
                        np.array(u), eta, lower=False)
        assert float(np.clip(c1, 0, 1)) == pytest.approx(want[0], abs=1e-12)
        assert float(np.clip(c2, 0, 1)) == pytest.approx(want[1], abs=1e-12)
        z = float(rng.random())
        assert float(_pm(np.array(z), np.array(u), eta)) == pytest.approx(
            operators._pm(z, 0.0, 1.0, u, eta), abs=1e-12)


def test_codec_mutation_changes_every_active_gene_at_indpb_one() -> None:
    space = SearchSpace.from_dict(NESTED)
    codec = GenomeCodec(space)
    rng = np.random.default_rng(2)
    G = rng.random((50, codec.d))
    out = codec.mutate(G, rng.random(G.shape), rng.random(G.shape), SBXPolynomial(indpb=1.0))
    act = codec.active(G)
    k = codec.n_choices
    choice = lambda M: np.minimum((M * k).astype(int), k - 1)   # noqa: E731
    discrete = ~codec.numeric
    assert np.all((choice(out) != choice(G))[act & discrete])   # a different choice or flip
    assert np.all((out == G)[~act])                              # latent genes untouched
    assert np.all((out >= 0) & (out <= 1))


def test_first_candidates_are_a_sobol_design() -> None:
    # a 1-D space: the first 8 design points fall in 8 different eighths (uniform draws would
    # put two in one eighth with probability 1 - 8!/8^8 > 99%)
    space = SearchSpace.from_dict({"parameters": {"x": {"type": "float", "low": 0, "high": 1}},
                                   "objectives": {"f": "minimize"}})
    engine = create("sa-nsga2", space, population_size=8, seed=4)
    cands = engine.ask(8)
    assert [c.origin for c in cands] == ["design"] * 8
    assert sorted(int(c.config["x"] * 8) for c in cands) == list(range(8))


def test_after_the_design_candidates_are_prescreened_offspring() -> None:
    space = problem_space("zdt1", 6)
    engine = create("sa-nsga2", space, population_size=6, seed=0)
    for _ in range(12):
        for c in engine.ask(1):
            engine.tell(c, _zdt(c))
    later = engine.ask(4)
    assert {c.origin for c in later} == {"offspring"}


def test_beats_random_search_on_zdt1_at_a_small_budget() -> None:
    # fixed seeds, deterministic engines: pre-screening must pay off on most seeds
    from evocl.evolution import pareto

    space = problem_space("zdt1", 8)
    wins = 0
    for seed in range(5):
        hv = {}
        for algorithm in ("sa-nsga2", "random"):
            engine = create(algorithm, space, population_size=8, seed=seed)
            while engine.n_told < 60:
                for c in engine.ask(4):
                    engine.tell(c, _zdt(c))
            hv[algorithm] = pareto.hypervolume(np.array(engine._archive.points), [1.1, 11.0])
        wins += hv["sa-nsga2"] > hv["random"]
    assert wins >= 4


@pytest.mark.parametrize("acquisition", ["lcb", "ei"])
def test_resume_in_the_model_phase_with_constraints_continues_exactly(acquisition: str) -> None:
    space = load(CL_SPACE)

    def fake(c: Candidate) -> Result:   # a cheap stand-in with the CL space's objectives
        cfg = c.config
        acc = 0.3 * cfg["replay"] + 0.1 * cfg["distill"] - 0.05 * abs(math.log10(cfg["lr"]) + 3.3)
        params = 2000.0 * cfg["lora_rank"] * (3 if cfg["lora_targets"] == "all_linear" else 1)
        if cfg["lr"] > 5e-3:
            return Result.failed("non-finite loss")
        return Result(objectives={"acc": acc, "forgetting": 1.0 - acc,
                                  "trainable_params": params})
    engine = create("sa-nsga2", space, population_size=6, seed=9,
                    initial=[space.default_config()], refit=0.3, acquisition=acquisition)
    for _ in range(5):
        cands = engine.ask(4)
        for c in reversed(cands):
            engine.tell(c, fake(c))
    pending = engine.ask(3)
    assert engine._model is not None and engine._parzen is not None
    state = json.loads(json.dumps(engine.state(), allow_nan=False))
    clone = from_state(space, state)
    for e in (engine, clone):
        for c in pending:
            e.tell(c, fake(c))
    seq = [_asked(e, fake, 6, 2) for e in (engine, clone)]
    assert seq[0] == seq[1]
    assert json.dumps(engine.state(), sort_keys=True) == json.dumps(clone.state(), sort_keys=True)


def test_after_model_until_it_asks_async_nsga2_children_and_resumes_exactly() -> None:
    space = problem_space("zdt1", 6)
    engine = create("sa-nsga2", space, population_size=6, seed=3, n_initial=6, model_until=24)
    while engine.n_told < 24:
        for c in engine.ask(3):
            engine.tell(c, _zdt(c))
    fitted = engine._fit_n
    assert 0 < fitted < 24
    state = json.loads(json.dumps(engine.state(), allow_nan=False))
    clone = from_state(space, state)
    seq = [_asked(e, _zdt, 6, 3) for e in (engine, clone)]
    assert seq[0] == seq[1]
    assert engine._fit_n == fitted                 # the model is no longer refitted
    assert {c["origin"] for c in seq[0]} == {"offspring"}


def test_pruned_results_are_bad_and_worst_for_the_models() -> None:
    space = problem_space("zdt1", 4)
    engine = create("sa-nsga2", space, population_size=4, seed=2, n_initial=6)
    pruned = set()
    for step in range(8):
        for c in engine.ask(3):
            res = _zdt(c)
            if c.id % 3 == 1:   # a pruned result keeps partial objectives (better than real)
                res = Result(objectives={k: v - 5 for k, v in res.objectives.items()},
                             status="pruned", metrics={"tasks_trained": 2, "tasks_planned": 5})
                pruned.add(c.id)
            engine.tell(c, res)
    assert engine._model is not None and pruned
    assert not engine._good_ids & pruned
    rows = {i: k for k, i in enumerate(engine._model_ids)}
    X = engine.codec.features(np.array([engine._genome(i) for i in engine._model_ids]))
    y = np.stack([t.predict(X) for t in engine._model.estimators_]).mean(axis=0)
    for i in pruned & set(rows):                  # fitted at the worst value of each objective
        assert np.allclose(y[rows[i]][:2], 1.0)
    assert {c.origin for c in engine.ask(2)} == {"offspring"}


def test_fronts_match_the_pareto_module_with_ties_and_constraints() -> None:
    from evocl.evolution import pareto
    from evocl.evolution.density import _fronts

    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = int(rng.integers(1, 40)), int(rng.integers(1, 4))
        fmin = {i: tuple(np.round(rng.random(m), 1)) for i in range(n)}   # ties on purpose
        cv = {i: 0.0 if rng.random() < 0.7 else float(np.round(rng.random(), 1))
              for i in range(n)}
        rc = pareto.rank_and_crowding(list(range(n)), fmin, cv)
        want: dict[int, list[int]] = {}
        for i in range(n):
            want.setdefault(rc[i][0], []).append(i)
        assert _fronts(list(range(n)), fmin, cv, n) == [want[r] for r in sorted(want)]


def test_good_split_takes_fronts_then_the_largest_contributors() -> None:
    from evocl.evolution.density import good_split

    # front 1: ids 0-3 on a line; 4 dominated; with k = 2 the two that keep most volume stay
    fmin = {0: (0.0, 1.0), 1: (0.45, 0.55), 2: (0.55, 0.45), 3: (1.0, 0.0), 4: (0.9, 0.9)}
    cv = dict.fromkeys(fmin, 0.0)
    assert good_split(list(fmin), fmin, cv, 5) == [0, 1, 2, 3, 4]
    assert sorted(good_split(list(fmin), fmin, cv, 4)) == [0, 1, 2, 3]
    two = good_split(list(fmin), fmin, cv, 2)
    assert len(two) == 2 and 4 not in two
    cv[0] = 1.0                                   # infeasible: after every feasible one
    assert 0 not in good_split(list(fmin), fmin, cv, 4)


@pytest.mark.parametrize("opts, field", [
    ({"pool_size": 0}, "pool_size"), ({"n_initial": 0}, "n_initial"),
    ({"parzen_share": 0.7, "random_share": 0.5}, "random_share"), ({"refit": 2}, "refit"),
    ({"acquisition": "pi"}, "acquisition"), ({"kappa": -1}, "kappa"), ({"n_ei": 0}, "n_ei"),
    ({"n_trees": 1.5}, "n_trees"), ({"eta_c": -1}, "eta_c"), ({"model_until": -1}, "model_until"),
    ({"cost_aware": "yes"}, "cost_aware"),
])
def test_bad_options_name_the_field(opts, field) -> None:
    with pytest.raises(UserError) as err:
        create("sa-nsga2", problem_space("zdt1", 3), **opts)
    assert err.value.field == field


def _timed(c: Candidate) -> Result:
    """ZDT1 (4 variables) whose evaluation costs 1 + 50 x1**2 seconds: the cheap half of the
    front (small x1) is where a cost-aware engine should spend its proposals."""
    x1 = float(c.config["x0"])
    return Result(objectives=evaluate("zdt1", c.config), wall_time=1.0 + 50.0 * x1 * x1)


def test_cost_aware_prefers_cheap_proposals_and_resumes_exactly() -> None:
    space = problem_space("zdt1", n_var=4)
    mean_cost = {}
    for cost_aware in (False, True):
        secs = []
        for seed in range(3):
            engine = create("sa-nsga2", space, population_size=8, seed=seed,
                            cost_aware=cost_aware, pool_size=64, n_trees=16)
            got = _asked(engine, _timed, 30, 1)
            secs += [1.0 + 50.0 * float(c["config"]["x0"]) ** 2 for c in got[10:]]
        mean_cost[cost_aware] = float(np.mean(secs))
    assert mean_cost[True] < 0.7 * mean_cost[False]
    engine = create("sa-nsga2", space, population_size=8, seed=4, cost_aware=True,
                    pool_size=64, n_trees=16)
    _asked(engine, _timed, 14, 1)
    assert engine.predicted_seconds([{"x0": 0.0, "x1": 0.5, "x2": 0.5, "x3": 0.5}])[0] < \
        engine.predicted_seconds([{"x0": 1.0, "x1": 0.5, "x2": 0.5, "x3": 0.5}])[0]
    clone = from_state(space, json.loads(json.dumps(engine.state(), allow_nan=False)))
    assert _asked(engine, _timed, 5, 1) == _asked(clone, _timed, 5, 1)
