"""A real search on Ray: 2 local CPUs, 2 actors, the tiny CL model on the synthetic stream."""

from __future__ import annotations

from pathlib import Path

import pytest

from evocl.records import RunConfig
from evocl.runner import run_search
from evocl.storage import read_run

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    """One local Ray for the module (the executor joins it instead of starting its own)."""
    import logging

    import ray
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False, object_store_memory=200 * 1024 * 1024)
    yield
    ray.shutdown()


def test_ray_search_with_tiny_cl_model(tmp_path):
    pytest.importorskip("evocl.cl")
    cfg = RunConfig(space=str(ROOT / "search_spaces" / "tiny.yaml"), run_dir=str(tmp_path / "run"),
                    stream="synthetic", backbone="tiny", objective="cl", algorithm="nsga2",
                    population=4, generations=1, workers=2, executor="ray", device="cpu",
                    fitness_tasks=2, eval_timeout=300, seed=0,
                    evaluator_options={"max_eval_per_task": 32})
    summary = run_search(cfg)
    assert summary.n_evaluated == 4 and summary.stop_reason
    view = read_run(tmp_path / "run")
    assert len(view.evaluations) == 4 and view.pending == []
    ok = [r for _, r in view.evaluations if r.ok]
    assert ok, [r.error for _, r in view.evaluations]
    for r in ok:
        assert set(r.objectives) >= {"acc", "forgetting"} and r.metrics["attempts"] == 1
    assert view.meta["fingerprints"]["stream"]
    assert len(view.pareto_front()) >= 1


def test_ray_search_survives_dying_workers(tmp_path):
    """Every 5th candidate's worker calls os._exit: retried once, failed, actor replaced."""
    import yaml

    from evocl.evolution.problems import problem_dict
    space = tmp_path / "zdt1.yaml"
    space.write_text(yaml.safe_dump(problem_dict("zdt1")))
    cfg = RunConfig(space=str(space), run_dir=str(tmp_path / "run"),
                    objective="evocl.evolution.problems:Problem",
                    evaluator_options={"name": "zdt1", "exit_every": 5, "fail_every": 7},
                    population=6, generations=2, workers=2, executor="ray", max_retries=1)
    summary = run_search(cfg)
    assert summary.n_evaluated == 12
    view = read_run(tmp_path / "run")
    errors = {c.id: (r.error, r.metrics.get("attempts")) for c, r in view.evaluations}
    assert errors[4][0].startswith("worker died") and errors[4][1] == 2
    assert errors[6][0].startswith("RuntimeError: injected failure") and errors[6][1] == 1
    assert errors[0] == (None, 1)


def test_ray_two_workers_killed_and_resumed_equals_uninterrupted(tmp_path):
    """nsga2 breeds a completed generation in candidate-id order: with 2 workers the results
    arrive in any order, yet a killed + resumed run evaluates exactly the same candidates."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_runner_resume import calls, comparable, make_cfg, run_and_kill

    run_search(make_cfg(tmp_path, "ref"))                     # local, 1 worker
    ref = comparable(tmp_path / "ref")
    import ray
    # the killed process joins this module's Ray (no second cluster on the same host): its
    # actors die with it, the resumed run's actors take over
    cfg = make_cfg(tmp_path, "ray", delay=0.3, workers=2, executor="ray",
                   ray_address=ray.get_runtime_context().gcs_address)
    assert run_and_kill(cfg, resume=False, after_lines=25, timeout=120,
                        group=True)
    summary = run_search(cfg, resume=True)
    assert summary.n_evaluated == 30
    got = comparable(tmp_path / "ray")
    key = lambda row: row[0]["id"]  # noqa: E731 - tell order differs with 2 workers
    assert sorted(got["evaluations"], key=key) == sorted(ref["evaluations"], key=key)
    assert got["front"] == ref["front"]
    assert set(calls(tmp_path, "ray")) == set(range(30))


def test_ray_asha_reports_through_the_broker_and_resumes_between_rungs(tmp_path):
    """Early stopping on Ray: the workers' per-task reports reach the driver through the
    broker actor. One worker: killed while a candidate runs between rungs, resumed = the
    uninterrupted local run. Two workers: every decision journaled once, pruned ones stopped
    at a rung."""
    import json
    import sys

    import ray
    sys.path.insert(0, str(Path(__file__).parent))
    from test_runner_early_stop import asha_cfg, decisions
    from test_runner_resume import calls, comparable, run_and_kill

    run_search(asha_cfg(tmp_path, "ref"))                           # local, uninterrupted
    ref = comparable(tmp_path / "ref")
    lines = [json.loads(x) for x in (tmp_path / "ref" / "journal.jsonl").read_text().splitlines()]
    at, key = next((i + 1, (e["id"], 2)) for i, e in enumerate(lines) if e["event"] == "report"
                   and e["report"]["tasks_seen"] == 2 and e["continue"] and e["id"] > 3)
    address = ray.get_runtime_context().gcs_address
    cfg = asha_cfg(tmp_path, "ray1", workers=1, executor="ray", ray_address=address)
    cfg = cfg.replace(evaluator_options={**cfg.evaluator_options, "pause_at": [list(key)]})
    assert run_and_kill(cfg, resume=False, after_lines=at, timeout=120, group=True)
    summary = run_search(cfg, resume=True)
    assert summary.n_evaluated == 24 and summary.n_pruned >= 8
    assert comparable(tmp_path / "ray1") == ref
    assert decisions(tmp_path / "ray1") == decisions(tmp_path / "ref")
    assert sorted(calls(tmp_path, "ray1")) == sorted(list(range(24)) + [key[0]])

    cfg2 = asha_cfg(tmp_path, "ray2", workers=2, executor="ray", ray_address=address,
                    evaluator_options={**cfg.evaluator_options, "delay": 0.05,
                                       "log": str(tmp_path / "ray2.calls"), "pause_at": []})
    s2 = run_search(cfg2)
    view = read_run(tmp_path / "ray2")
    seen = decisions(tmp_path / "ray2")
    assert s2.n_evaluated == 24 and s2.n_pruned >= 6
    assert len(seen) == len({(c, t) for c, t, _ in seen})
    stops = {c: t for c, t, ok in seen if not ok}
    for c, r in view.evaluations:
        assert (r.status == "pruned") == (c.id in stops)
        if r.status == "pruned":
            assert r.metrics["tasks_trained"] == stops[c.id] in (2, 4)
