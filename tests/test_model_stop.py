"""``--early-stop model`` (pure Python + scikit-learn): stop only what cannot reach the front."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evocl.errors import UserError
from evocl.evolution import early_stop
from evocl.records import Result
from evocl.space import SearchSpace

SPACE = SearchSpace.from_dict({"parameters": {"x": {"type": "float", "low": 0, "high": 1}},
                               "objectives": {"acc": "maximize", "forgetting": "minimize"}})


def report(acc: float, forgetting: float, tasks_seen: int = 2) -> dict:
    return {"tasks_seen": tasks_seen, "n_tasks": 5, "elapsed": 1.0, "acc": acc,
            "forgetting": forgetting}


def final(h: float) -> tuple[float, float]:
    """A landscape whose final point follows what the partial report shows (h), not the
    configuration: acc h, forgetting 0.5 - 0.3 h, so the largest h so far is the front; the
    2-task report is the final point plus 0.1."""
    return h, 0.5 - 0.3 * h


def feed(sched, hs, start=0, rng=None):
    """Report at the 2-task rung, then tell the final result, candidate by candidate."""
    rng = rng or np.random.default_rng(start)
    out = []
    for k, h in enumerate(hs, start):
        a, f = final(h)
        x = float(rng.random())
        ok = sched.decide(k, report(a + 0.1, f + 0.1), {"x": x})
        out.append(ok)
        if ok:
            sched.observe(k, {"x": x}, Result(objectives={"acc": a, "forgetting": f}))
    return out


def test_continues_everything_until_the_model_can_judge():
    sched = early_stop.create("model", SPACE, min_results=5)
    assert sched.rungs(5) == [2]
    assert all(feed(sched, np.linspace(0, 1, 5)))
    assert sched.summary()["finished"] == 5


def test_stops_a_dominated_prediction_and_never_a_front_point():
    sched = early_stop.create("model", SPACE, min_results=6)
    rng = np.random.default_rng(0)
    feed(sched, 0.8 * rng.random(20))
    # a candidate that will beat every finished one is never stopped, however late it comes
    for k, h in enumerate((0.85, 0.9, 0.95)):
        a, f = final(h)
        assert sched.decide(200 + k, report(a + 0.1, f + 0.1), {"x": 0.5})
    # one whose partial report is far below the front: stopped at the first rung
    a, f = final(0.05)
    assert not sched.decide(500, report(a + 0.1, f + 0.1), {"x": 0.5})
    assert sched.summary()["stopped"] >= 1


def test_larger_kappa_stops_less():
    rng = np.random.default_rng(1)
    xs = rng.random(30)
    stops = []
    for kappa in (0.0, 3.0):
        sched = early_stop.create("model", SPACE, kappa=kappa)
        feed(sched, xs)
        probe = [sched.decide(1000 + i, report(*final(u)), {"x": float(u)})
                 for i, u in enumerate(rng.random(30))]
        stops.append(probe.count(False))
    assert stops[1] < stops[0]


def test_low_fidelity_rung_and_state_replays_exactly():
    sched = early_stop.create("model", SPACE, low_fidelity=0.25, min_results=4, min_residuals=2)
    assert sched.rungs(5) == []
    cheap = {**report(0.0, 0.0, tasks_seen=5), "fidelity": 0.25}
    for k, x in enumerate(np.linspace(0.1, 0.9, 8)):
        a, f = final(x)
        assert sched.decide(k, {**cheap, "acc": a, "forgetting": f}, {"x": float(x)})
        sched.observe(k, {"x": float(x)}, Result(objectives={"acc": a, "forgetting": f}))
    again = early_stop.from_state(SPACE, json.loads(json.dumps(sched.state())))
    probe = {**cheap, "acc": 0.02, "forgetting": 0.9}
    assert again.decide(50, probe, {"x": 0.5}) == sched.decide(50, probe, {"x": 0.5}) is False


@pytest.mark.parametrize("options, field", [
    ({"kappa": -1}, "kappa"), ({"min_results": 1}, "min_results"), ({"rungs": []}, "rungs"),
    ({"rungs": [1]}, "rungs"), ({"low_fidelity": 2}, "low_fidelity"), ({"quantile": 0}, "quantile"),
    ({"eta": 3}, "early_stop_options")])
def test_bad_options(options, field):
    with pytest.raises(UserError) as e:
        early_stop.create("model", SPACE, **options)
    assert e.value.field == field and "\n" not in e.value.one_line()


def test_residual_quantile_widens_the_optimism_where_the_model_is_wrong():
    """Finals that the partial report predicts only up to noise of +-0.3: calibrated on its
    own residuals (quantile 0.9) the scheduler stops fewer candidates than with a tiny
    quantile, and the residuals it used are in its state."""
    stops = {}
    for q in (0.05, 0.9):
        rng = np.random.default_rng(7)
        sched = early_stop.create("model", SPACE, kappa=0.0, quantile=q, min_results=6,
                                  n_trees=16)
        for k in range(60):
            h = float(rng.random())
            noisy = min(1.0, max(0.0, h + rng.uniform(-0.3, 0.3)))
            a, f = final(noisy)
            if sched.decide(k, report(h + 0.1, 0.6 - 0.3 * h), {"x": float(rng.random())}):
                sched.observe(k, {"x": 0.0}, Result(objectives={"acc": a, "forgetting": f}))
        stops[q] = sched.summary()["stopped"]
        assert len(sched.state()["extra"]["resid"]["2"]) >= 5
    assert stops[0.9] < stops[0.05]
