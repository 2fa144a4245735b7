"""Ray executor on 2 local CPUs: parallel actors, every kind of failure isolated, actors replaced."""

from __future__ import annotations

import os
import signal
import time

import pytest

from evocl.records import Candidate

pytestmark = pytest.mark.slow


def _c(i, **cfg):
    return Candidate(id=i, config=cfg, config_hash=str(i), seed=i)


def test_ray_executor_failures_retries_timeouts_and_killed_worker(tmp_path):
    from evocl.execution import create_executor
    ex = create_executor("ray", target="evocl.execution.testing:Toy",
                         target_kwargs={"marker_dir": str(tmp_path)}, workers=2,
                         eval_timeout=4.0, max_retries=1)
    try:
        pids = ex.wait_ready(120)
        assert len(set(pids)) == 2 and os.getpid() not in pids
        assert ex.free_slots() == 2
        # two quick ones run on both actors
        ex.submit(_c(0, x=1.0))
        ex.submit(_c(1, x=2.0))
        assert ex.free_slots() == 0
        got = dict((c.id, r) for c, r in ex.results(timeout=60))
        assert got[0].objectives == {"f1": 1.0, "f2": 0.0} and got[1].ok
        assert {got[0].metrics["pid"], got[1].metrics["pid"]} == set(pids)
        # deterministic failures: no retry
        ex.submit(_c(2, fail="raise"))
        ex.submit(_c(3, fail="nan", x=1.0))
        got = dict((c.id, r) for c, r in ex.results(timeout=60))
        assert got[2].error == "ValueError: bad config 2" and got[2].metrics["attempts"] == 1
        assert got[3].error.startswith("non-finite objective") and got[3].metrics["attempts"] == 1
        # a worker that dies once is replaced and the retry succeeds; one that always dies fails
        ex.submit(_c(4, fail="exit_once", x=1.0))
        ex.submit(_c(5, fail="exit"))
        got = dict((c.id, r) for c, r in ex.results(timeout=120))
        assert got[4].ok and got[4].metrics["attempts"] == 2
        assert not got[5].ok and got[5].error.startswith("worker died")
        assert got[5].metrics["attempts"] == 2
        # a hang past eval_timeout: actor killed and replaced, the other slot keeps working
        ex.submit(_c(6, fail="hang"))
        ex.submit(_c(7, x=0.0))
        got = dict((c.id, r) for c, r in ex.results(timeout=120))
        assert got[6].error == "timeout after 4s" and got[7].ok
        # the worker process killed from outside mid-evaluation: retried on a new actor
        pids = ex.wait_ready(120)
        ex.submit(_c(8, x=1.0, _sleep=3.0))
        time.sleep(1.5)
        victim = [p for p in pids if p is not None]
        for p in victim:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        got = dict((c.id, r) for c, r in ex.results(timeout=120))
        assert got[8].ok and got[8].metrics["attempts"] == 2
        assert got[8].metrics["pid"] not in victim
        assert ex.in_flight() == 0
    finally:
        ex.shutdown()
