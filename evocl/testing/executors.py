"""The executor contract as a shipped pytest suite: ``local`` and ``ray`` pass the same tests,
and a third-party executor runs it on itself by subclassing and overriding one fixture::

    # tests/test_my_executor.py
    import pytest
    from evocl.testing.executors import ExecutorSuite
    from my_pkg.executor import MyExecutor

    class TestMyExecutor(ExecutorSuite):
        @pytest.fixture
        def make_executor(self):
            return lambda target, target_kwargs, **settings: MyExecutor(
                target, target_kwargs, workers=2, **settings)

``make_executor(target, target_kwargs, **settings)`` builds an executor for the evaluation
target ``"module:Class"``; ``settings`` are ``eval_timeout``, ``max_retries`` and
``on_report`` (the registry's constructor keywords). The targets are
``evocl.execution.testing:Toy``, ``:noop`` and ``evocl.evolution.problems:Problem``,
importable by path from any worker.

What it checks: the Executor protocol; every submitted candidate comes back exactly once,
even when more are submitted than there are free slots; slots and in-flight counts; an
exception or a non-finite objective is a failed Result with its reason (never an exception
out of ``results``) and the executor goes on; a transient failure is retried up to
``max_retries`` times and the attempts are counted; an evaluation past ``eval_timeout`` is a
failed "timeout after Ns" Result; with ``on_report`` every per-task report of a running
candidate reaches it in the driver's process, and a False answer stops that candidate (a
``pruned`` Result); results are JSON round-trippable records with a wall time;
``results`` with nothing in flight returns; ``shutdown`` may be called twice.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from evocl.execution import Executor
from evocl.records import Candidate, Result

TOY = "evocl.execution.testing:Toy"
MakeExecutor = Callable[..., Any]


def candidate(i: int, **config: Any) -> Candidate:
    return Candidate(id=i, config=config, config_hash=f"h{i}", seed=i)


def drain(ex: Any, timeout: float = 120.0) -> dict[int, tuple[Candidate, Result]]:
    """Collect results until nothing is in flight (each id must come back once)."""
    got: dict[int, tuple[Candidate, Result]] = {}
    while ex.in_flight():
        for cand, res in ex.results(timeout=timeout):
            assert cand.id not in got, f"candidate {cand.id} came back twice"
            got[cand.id] = (cand, res)
    return got


class ExecutorSuite:
    """The shared executor contract. Override ``make_executor``."""

    @pytest.fixture
    def make_executor(self) -> MakeExecutor:
        raise NotImplementedError("override `make_executor` -> (target, kwargs, **settings)")

    @pytest.fixture
    def executor(self, make_executor: MakeExecutor, tmp_path: Any) -> Any:
        ex = make_executor(TOY, {"marker_dir": str(tmp_path)}, max_retries=1)
        yield ex
        ex.shutdown()

    def test_protocol_and_every_candidate_back_once(self, executor: Any) -> None:
        assert isinstance(executor, Executor)
        cands = [candidate(i, x=float(i), y=0.5) for i in range(5)]   # more than free slots
        for c in cands:
            executor.submit(c)
        got = drain(executor)
        assert sorted(got) == list(range(5))
        for c in cands:
            back, res = got[c.id]
            assert back.to_dict() == c.to_dict()
            assert res.ok and res.objectives == {"f1": c.id ** 2 + 0.25,
                                                 "f2": (c.id - 1) ** 2 + 0.25}
            assert res.metrics["attempts"] == 1 and res.wall_time > 0.0
            assert Result.from_dict(json.loads(json.dumps(res.to_dict()))) == res

    def test_slots_and_in_flight(self, executor: Any) -> None:
        free = executor.free_slots()
        assert free >= 1 and executor.in_flight() == 0
        for i in range(free):
            executor.submit(candidate(i, x=1.0))
        assert executor.free_slots() == 0 and executor.in_flight() == free
        assert len(drain(executor)) == free
        assert executor.in_flight() == 0 and executor.free_slots() == free
        assert list(executor.results(timeout=0.5)) == []     # nothing in flight: returns

    def test_failures_are_results_and_the_executor_goes_on(self, executor: Any) -> None:
        executor.submit(candidate(0, x=1.0, fail="raise"))
        executor.submit(candidate(1, x=1.0, fail="nan"))
        executor.submit(candidate(2, x=2.0))
        got = drain(executor)
        raised, nan, ok = got[0][1], got[1][1], got[2][1]
        assert not raised.ok and raised.error == "ValueError: bad config 0"
        assert "traceback" in raised.metrics and raised.metrics["attempts"] == 1
        assert not nan.ok and nan.error.startswith("non-finite objective f1=nan")
        assert nan.metrics["attempts"] == 1                 # deterministic: not retried
        assert ok.ok and ok.objectives["f1"] == 4.0

    def test_transient_failures_are_retried_up_to_max_retries(self, make_executor: MakeExecutor,
                                                             tmp_path: Any) -> None:
        for retries, ok, attempts in ((1, True, 2), (0, False, 1)):
            markers = tmp_path / f"r{retries}"
            markers.mkdir()
            ex = make_executor(TOY, {"marker_dir": str(markers)}, max_retries=retries)
            try:
                ex.submit(candidate(0, x=1.0, fail="transient_once"))
                (_, res), = drain(ex).values()
            finally:
                ex.shutdown()
            assert res.ok is ok and res.metrics["attempts"] == attempts
            if not ok:
                assert res.error == "transient trouble"

    def test_eval_timeout_is_a_failed_result(self, make_executor: MakeExecutor) -> None:
        ex = make_executor(TOY, {}, eval_timeout=0.5, max_retries=1)
        try:
            ex.submit(candidate(0, x=1.0, _sleep=1.5))
            ex.submit(candidate(1, x=1.0))
            got = drain(ex)
        finally:
            ex.shutdown()
        assert not got[0][1].ok and got[0][1].error.startswith("timeout after 0.5s")
        assert got[1][1].ok

    def test_per_task_reports_reach_on_report_and_false_stops(
            self, make_executor: MakeExecutor) -> None:
        seen: list[tuple[int, int]] = []

        def on_report(cand: Candidate, report: dict[str, Any]) -> bool:
            assert isinstance(cand, Candidate) and json.loads(json.dumps(report)) == report
            seen.append((cand.id, report["tasks_seen"]))
            return not (cand.id == 1 and report["tasks_seen"] == 2)

        ex = make_executor("evocl.evolution.problems:Problem",
                           {"name": "zdt1", "n_var": 2, "tasks": 4}, on_report=on_report)
        try:
            for i in range(3):
                ex.submit(candidate(i, x0=0.25 * i, x1=0.5))
            got = drain(ex)
        finally:
            ex.shutdown()
        assert sorted(seen) == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (2, 1), (2, 2), (2, 3)]
        stopped = got[1][1]
        assert stopped.status == "pruned" and stopped.metrics["tasks_trained"] == 2
        assert set(stopped.objectives) == {"f1", "f2"} and stopped.metrics["attempts"] == 1
        assert got[0][1].ok and got[2][1].ok and got[2][1].metrics["tasks_trained"] == 4

    def test_shutdown_twice(self, make_executor: MakeExecutor) -> None:
        ex = make_executor("evocl.execution.testing:noop", {})
        ex.submit(candidate(0))
        assert drain(ex)[0][1].ok
        ex.shutdown()
        ex.shutdown()
