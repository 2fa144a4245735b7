"""--gpus-per-eval auto: the packing rule (pure) and the Ray executor applying it, on the CPU
with a Ray cluster that declares one GPU and a target that reports GPU memory."""

from __future__ import annotations

import pytest

from evocl.execution.packing import (CONTEXT_MB, MARGIN, AutoPacking, fraction_per_eval,
                                     gpu_memory, keep_slots, workers_per_gpu)
from evocl.records import Candidate


def test_fraction_is_the_finest_packing_asked_for() -> None:
    assert fraction_per_eval(16, 1) == 0.0625
    assert fraction_per_eval(3, 1) == 0.3333  # Ray takes four decimals: rounded down
    assert fraction_per_eval(8, 2) == 0.25
    assert fraction_per_eval(2, 4) == 1.0  # fewer workers than GPUs: a whole GPU each
    assert fraction_per_eval(4, 0) == 0.0


def test_workers_per_gpu_from_memory() -> None:
    # H100 80 GiB, a MiniLM candidate's reserved peak ~1.5 GiB: 85% / (1.5 GiB + context)
    total = 81559.0
    assert workers_per_gpu(total, 1536.0, cap=64) == int((1 - MARGIN) * total // (1536 + CONTEXT_MB))
    assert workers_per_gpu(total, 1536.0, cap=16) == 16       # never above the workers asked
    assert workers_per_gpu(8000.0, 20000.0, cap=16) == 1     # never below one
    assert workers_per_gpu(10000.0, 2800.0, cap=8) == 2      # 8500 / 3400


def test_gpu_memory_reads_only_valid_reports() -> None:
    assert gpu_memory({"gpu": {"total_mb": 100, "peak_reserved_mb": 10}}) == (100.0, 10.0)
    for bad in ({}, {"gpu": None}, {"gpu": {"total_mb": 100}},
                {"gpu": {"total_mb": "x", "peak_reserved_mb": 1}},
                {"gpu": {"total_mb": float("nan"), "peak_reserved_mb": 1}},
                {"gpu": {"total_mb": 0, "peak_reserved_mb": 1}}):
        assert gpu_memory(bad) is None


def test_keep_slots_per_gpu_and_in_all() -> None:
    assert keep_slots([0, 0, 0, 1, 1, 1], per_gpu=2, limit=10) == [0, 1, 3, 4]
    assert keep_slots([0, 0, 0, 1, 1, 1], per_gpu=2, limit=3) == [0, 1, 3]
    assert keep_slots([["0"], ["0"], ["1"]], per_gpu=1, limit=10) == [0, 2]
    assert keep_slots([None, None], per_gpu=1, limit=10) == [0, 1]  # unknown: a GPU each


def test_auto_packing_probes_then_packs_then_shrinks() -> None:
    pk = AutoPacking(workers=16, gpus=1)
    assert pk.cap == 16 and pk.limit == 1  # probing
    assert pk.observe({"gpu": {"total_mb": 10000, "peak_reserved_mb": 1400}}) == 4  # 8500/2000
    assert pk.observe({"gpu": {"total_mb": 10000, "peak_reserved_mb": 2800}}) == 2  # a bigger one
    assert pk.observe({"gpu": {"total_mb": 10000, "peak_reserved_mb": 100}}) == 2   # max kept
    assert pk.out_of_memory(active=2) == 1 and pk.out_of_memory(active=1) == 1
    assert pk.observe({"gpu": {"total_mb": 10000, "peak_reserved_mb": 100}}) == 1  # capped
    assert [h["workers_per_gpu"] for h in pk.history] == [4, 2, 1, 1]
    two = AutoPacking(workers=16, gpus=2)
    assert two.cap == 8 and two.observe({"gpu": {"total_mb": 10000,
                                                  "peak_reserved_mb": 1400}}) == 8
    cpu = AutoPacking(workers=4, gpus=1)
    assert cpu.observe({"device": "cpu"}) == 4  # nothing to pack by: every worker


@pytest.mark.slow
def test_ray_executor_packs_by_reported_memory(tmp_path) -> None:
    import ray

    from evocl.execution import create_executor

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=4, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        ex = create_executor("ray", target="evocl.execution.testing:FakeGpu",
                             target_kwargs={"marker_dir": str(tmp_path)}, workers=4,
                             gpus_per_eval="auto", max_retries=1)
        assert ex.gpus_per_eval == 0.25
        assert ex.free_slots() == 1  # probing: one actor evaluates, the others only build
        ex.submit(Candidate(0, {"peak_mb": 2800.0}, "0", 0))
        got = list(ex.results(timeout=120))
        assert [c.id for c, _ in got] == [0] and got[0][1].ok
        report = ex.packing_report()
        assert report["workers_per_gpu"] == 2 and report["actors_evaluating"] == 2
        assert report["actors_retired"] == 2 and ex.free_slots() == 2
        # an evaluation out of memory: one actor fewer, the candidate retried and done
        ex.submit(Candidate(1, {"peak_mb": 2800.0, "oom": True, "_sleep": 0.5}, "1", 1))
        ex.submit(Candidate(2, {"peak_mb": 2800.0, "_sleep": 0.5}, "2", 2))
        got = dict((c.id, r) for c, r in ex.results(timeout=120))
        assert got[1].ok and got[1].metrics["attempts"] == 2 and got[2].ok
        assert ex.packing_report()["workers_per_gpu"] == 1 and ex.free_slots() == 1
        ex.shutdown()
    finally:
        ray.shutdown()
