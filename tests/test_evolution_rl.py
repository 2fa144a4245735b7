"""``rl``: the REINFORCE controller learns its policy (categorical and Gaussian parts),
avoids failing and infeasible choices, and ignores configurations it did not draw. The shared
engine suite (determinism, exact resume, dedup, ...) runs on it with every other engine."""

from __future__ import annotations

import math

import pytest

from evocl.errors import UserError
from evocl.evolution import create
from evocl.records import Result
from evocl.space import SearchSpace

MIXED = SearchSpace.from_dict({"parameters": {
    "opt": {"type": "categorical", "choices": ["a", "b", "c", "d", "e"]},
    "flag": {"type": "bool"},
    "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "k": {"type": "int", "low": 1, "high": 64},
}, "objectives": {"loss": "minimize"}})


def loss(config) -> float:
    return (("abcde".index(config["opt"]) - 3) ** 2 + (0 if config["flag"] else 1)
            + (math.log10(config["lr"]) + 3) ** 2 + abs(config["k"] - 20) / 10)


def run(engine, objective, n: int) -> None:
    while engine.n_told < n:
        for c in engine.ask(10):
            engine.tell(c, objective(c))


def test_policy_learns_categorical_and_numeric_genes():
    engine = create("rl", MIXED, population_size=10, seed=0)
    run(engine, lambda c: Result(objectives={"loss": loss(c.config)}), 300)
    pol = engine.policy()
    assert pol["opt"]["probs"][3] > 0.9 and pol["flag"]["probs"][1] > 0.9
    assert abs(pol["lr"]["mu"] - 0.5) < 0.05              # log10(lr) = -3: middle of the gene
    assert abs(pol["k"]["mu"] - 19 / 63) < 0.05
    assert pol["lr"]["sigma"] < 0.1                       # from 0.3: it narrowed
    late = [r.objectives["loss"] for _, r in engine.evaluations()[-50:]]
    first = [r.objectives["loss"] for _, r in engine.evaluations()[:50]]
    assert sum(late) < 0.2 * sum(first)


def test_failures_and_infeasible_results_are_avoided():
    space = SearchSpace.from_dict({"parameters": {
        "crash": {"type": "bool"}, "big": {"type": "bool"},
        "x": {"type": "float", "low": 0.0, "high": 1.0}},
        "objectives": {"f": "minimize"}, "constraints": {"memory": {"max": 1.0}}})

    def objective(c):
        if c.config["crash"]:
            return Result.failed("out of memory")
        return Result(objectives={"f": c.config["x"]},
                      metrics={"memory": 2.0 if c.config["big"] else 0.5})
    engine = create("rl", space, population_size=10, seed=1)
    run(engine, objective, 200)
    pol = engine.policy()
    assert pol["crash"]["probs"][1] < 0.1 and pol["big"]["probs"][1] < 0.1


def test_configurations_not_drawn_from_the_policy_do_not_move_it():
    init = [{"opt": "a", "flag": False, "lr": 1e-5, "k": 1}] * 1
    engine = create("rl", MIXED, population_size=4, seed=0, initial=init)
    before = engine.policy()
    (c,) = engine.ask(1)
    assert c.origin == "initial"
    engine.tell(c, Result(objectives={"loss": 0.0}))
    assert engine.policy() == before


def test_reward_first_objective_only():
    space = SearchSpace.from_dict({"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
                                   "objectives": {"f1": "minimize", "f2": "minimize"}})
    engine = create("rl", space, population_size=10, seed=0, reward="first")
    run(engine, lambda c: Result(objectives={"f1": c.config["x"], "f2": 1 - c.config["x"]}), 200)
    assert engine.policy()["x"]["mu"] < 0.1                 # f2 is ignored


@pytest.mark.parametrize("options, field", [
    ({"lr": 0}, "lr"), ({"lr_sigma": -1}, "lr_sigma"), ({"baseline_rate": 1.5}, "baseline_rate"),
    ({"init_sigma": 0.9}, "init_sigma"), ({"min_sigma": 0}, "min_sigma"),
    ({"reward": "hypervolume"}, "reward"), ({"lr": "fast"}, "lr"),
])
def test_bad_options_are_user_errors(options, field):
    with pytest.raises(UserError, match=f"rl: {field}: must be"):
        create("rl", MIXED, **options)
