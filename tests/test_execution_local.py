"""Local executor: failures isolated, attempts counted, after-the-fact timeout, protocol."""

from __future__ import annotations

import pytest

from evocl.errors import EvaluationError, UserError
from evocl.execution import Executor, create_executor, resolve_kind
from evocl.execution.base import evaluate_guarded
from evocl.records import Candidate, Result


def _c(i, **cfg):
    return Candidate(id=i, config=cfg, config_hash=str(i), seed=i)


def test_auto_kind():
    assert resolve_kind("auto", 1, None) == "local"
    assert resolve_kind("auto", 2, None) == "ray"
    assert resolve_kind("auto", 1, "auto") == "ray"
    with pytest.raises(UserError):
        resolve_kind("dask", 1, None)


def test_local_executor_isolates_failures():
    ex = create_executor("local", target="evocl.execution.testing:Toy")
    assert isinstance(ex, Executor)
    assert ex.free_slots() == 1
    ex.submit(_c(0, x=2.0))
    assert ex.free_slots() == 0
    ex.submit(_c(1, x=1.0, fail="raise"))
    ex.submit(_c(2, x=1.0, fail="nan"))
    out = {c.id: r for c, r in ex.results()}
    assert out[0].ok and out[0].objectives == {"f1": 4.0, "f2": 1.0}
    assert out[0].metrics["attempts"] == 1 and out[0].wall_time > 0
    assert not out[1].ok and out[1].error == "ValueError: bad config 1"
    assert "traceback" in out[1].metrics and out[1].metrics["attempts"] == 1
    assert not out[2].ok and out[2].error.startswith("non-finite objective f1=nan")
    assert ex.in_flight() == 0 and list(ex.results()) == []
    ex.shutdown()


class Flaky:
    def __init__(self):
        self.n = 0

    def __call__(self, cand):
        self.n += 1
        if self.n < 2:
            raise EvaluationError("worker hiccup", transient=True)
        return Result(objectives={"f1": 1.0})


class Slow:
    def __call__(self, cand):
        import time
        time.sleep(0.2)
        return Result(objectives={"f1": 1.0})


def test_transient_failures_are_retried_and_timeouts_recorded():
    ex = create_executor("local", target=f"{__name__}:Flaky", max_retries=1)
    ex.submit(_c(0))
    [(_, r)] = list(ex.results())
    assert r.ok and r.metrics["attempts"] == 2
    ex = create_executor("local", target=f"{__name__}:Slow", eval_timeout=0.05)
    ex.submit(_c(0))
    [(_, r)] = list(ex.results())
    assert not r.ok and r.error.startswith("timeout after 0.05s")


def test_bad_target_is_a_user_error():
    with pytest.raises(UserError, match="cannot import"):
        create_executor("local", target="no_such_module_xyz:Thing")
    with pytest.raises(UserError, match="must be 'module:attr'"):
        create_executor("local", target="nocolon")
    with pytest.raises(UserError, match="building"):
        create_executor("local", target=f"{__name__}:Slow", target_kwargs={"unexpected": 1})


def test_guard_accepts_dict_results_and_rejects_other_types():
    assert evaluate_guarded(lambda c: {"objectives": {"f1": 1}}, _c(0).to_dict())["result"][
        "status"] == "ok"
    out = evaluate_guarded(lambda c: 3, _c(0).to_dict())
    assert out["result"]["error"] == "TypeError: target returned int, expected Result"
