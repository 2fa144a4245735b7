"""The surrogate benchmark (experiments/surrogate_search/surrogate.py, bench_surrogate.py): the computed
trainable parameters match every real evaluation, the flat forest predicts what scikit-learn
does, the simulated evaluator's reports and results follow evocl's metrics, and a simulated
search is deterministic and keeps to its workers."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "experiments", "surrogate_search"))

import bench_surrogate as bs  # noqa: E402
import surrogate as sg  # noqa: E402
from evocl.cl import metrics  # noqa: E402
from evocl.records import Candidate  # noqa: E402
from evocl.space import load  # noqa: E402


@pytest.fixture(scope="module")
def space():
    return load(sg.SPACE)


@pytest.fixture(scope="module")
def rows():
    return sg.load_rows("default")


@pytest.fixture(scope="module")
def sur(space, rows):
    return sg.Surrogate(space, rows, model="rf")


def test_data_is_the_gpu_runs(rows) -> None:
    assert len(rows) == 960
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(np.shape(r["R"]) == (5, 5) for r in ok)
    assert all(abs(sum(r["task_seconds"]) - r["wall_time"]) < 1e-2 for r in ok)


def test_trainable_params_computed_exactly(rows) -> None:
    for r in rows:
        if r["status"] == "ok":
            assert sg.trainable_params(r["config"]) == r["trainable_params"]


def test_flat_forest_predicts_like_sklearn(space, rows) -> None:
    ok = [r for r in rows if r["status"] == "ok"][:300]
    X = sg.Features(space)([r["config"] for r in ok])
    Y, _ = sg.targets(ok)
    rng = np.random.default_rng(0)
    Xt = sg.Features(space)([space.sample(rng) for _ in range(50)])
    for model in ("rf", "et"):
        forest = sg._regressor(model, 0).set_params(n_estimators=20).fit(X, Y)
        assert np.allclose(sg.FlatForest(forest).predict(Xt), forest.predict(Xt))
    clf = sg._classifier(0).set_params(n_estimators=20).fit(X, Y[:, 0] > 0.5)
    assert np.allclose(sg.FlatForest(clf, proba=True).predict(Xt), clf.predict_proba(Xt))


def test_simulated_evaluation_reports_like_the_evaluator(space, sur) -> None:
    config = space.canonical({**space.default_config(), "replay": True})
    ev = bs.SimulatedEvaluation(sur, Candidate(id=3, config=config, config_hash="h", seed=11))
    R = ev.out["R"]
    last = 0.0
    for t in range(4):
        rep = ev.report(t)
        sub = [row[:t + 1] for row in R[:t + 1]]
        assert rep["tasks_seen"] == t + 1 and rep["n_tasks"] == 5 and len(rep["R"]) == t + 1
        assert rep["acc"] == pytest.approx(metrics.average_accuracy(sub))
        assert rep["forgetting"] == pytest.approx(metrics.forgetting(sub))
        assert rep["elapsed"] > last
        last = rep["elapsed"]
    full = ev.result(5)
    assert full.ok and full.objectives["acc"] == pytest.approx(metrics.average_accuracy(R))
    assert full.objectives["trainable_params"] == sg.trainable_params(config)
    assert full.wall_time == pytest.approx(sum(ev.out["task_seconds"]))
    pruned = ev.result(2)
    assert pruned.status == "pruned" and pruned.metrics["tasks_trained"] == 2
    assert pruned.wall_time == pytest.approx(ev.elapsed(1))


def test_same_seed_same_search_and_workers_respected(space, sur) -> None:
    a = bs.run_one("async-nsga2", sur, space, seed=1, workers=4, population=8,
                   max_evals=24, max_time=None)
    b = bs.run_one("async-nsga2", sur, space, seed=1, workers=4, population=8,
                   max_evals=24, max_time=None)
    assert a["hv"] == b["hv"] and a["sim_wall"] == b["sim_wall"]
    assert a["n_told"] == 24 and 0.0 < a["utilization"] <= 1.0 + 1e-9
    timed = bs.run_one("nsga2", sur, space, seed=1, workers=4, population=8,
                       max_evals=None, max_time=60.0)
    assert timed["sim_wall"] <= 60.0 and timed["n_told"] >= 1
