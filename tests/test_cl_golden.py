"""Golden metrics of fixed candidates: refactors and speed-ups of the CL evaluator must not
change what a candidate measures. The values were recorded with the pre-refactor evaluator
(commit 5871e6d's run_stream) on the tiny backbone, one torch thread, CPU; every parameter is
given explicitly so a change of defaults cannot move them.

Any CPU: kernels round differently on AVX-512, AVX2 and plain x86-64 (torch picks them at run
time; ``ATEN_CPU_CAPABILITY=default|avx2|avx512`` forces one) and with other thread counts, so
the losses and the weight drift are compared with a relative tolerance of ``LOSS_RTOL`` (the
spread measured over those three capabilities and 1-2 threads was under 4e-5; a change of what
is measured moves them by far more). Accuracies are counts of right answers over 16 or 32
examples and stay exact.

Regenerate (only when a change of what is measured is intended, and say so in the commit):
    PYTHONPATH=. .venv/bin/python tests/test_cl_golden.py --write
"""

import json
import sys
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).parent / "data" / "golden_candidates.json"

BASE = {"lora_rank": 4, "lora_alpha_ratio": 2.0, "lora_dropout": 0.1, "lora_targets": "attention",
        "lora_layers": "all", "lora_rank_schedule": "uniform", "ewc": False, "replay": False,
        "distill": False, "adversarial": False, "lr": 3e-2, "steps_per_task": 12,
        "batch_size": 8, "weight_decay": 0.01, "warmup_ratio": 0.1}
CASES = {
    "sequential": ("class-incremental", {}),
    "all_strategies": ("class-incremental", {
        "ewc": True, "ewc_lambda": 300.0, "ewc_gamma": 0.9, "replay": True,
        "replay_buffer_per_class": 6, "replay_ratio": 0.3, "replay_policy": "class_balanced",
        "distill": True, "distill_temperature": 3.0, "distill_alpha": 0.7, "adversarial": True,
        "adv_epsilon": 0.05, "lora_targets": "all_linear", "lora_rank_schedule": "increasing"}),
    "reservoir_ewc_ti": ("task-incremental", {
        "ewc": True, "ewc_lambda": 50.0, "ewc_gamma": 1.0, "replay": True,
        "replay_buffer_per_class": 4, "replay_ratio": 0.25, "replay_policy": "reservoir",
        "lora_layers": "top_half", "lora_targets": "attention_mlp"}),
}
KEYS = ("accuracy_matrix", "baseline_acc", "test_acc", "final_task_loss", "drift_from_task0")
EXACT = ("accuracy_matrix", "baseline_acc", "test_acc")
LOSS_RTOL = 1e-3


def measure(name: str, threads: int = 1) -> dict:
    from evocl.cl import evaluate, load_backbone
    from evocl.cl.testing import keyword_stream

    scenario, extra = CASES[name]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        r = evaluate({**BASE, **extra}, keyword_stream(n_tasks=3, scenario=scenario),
                     load_backbone("tiny"), seed=11, device="cpu")
    finally:
        torch.set_num_threads(before)
    assert r.ok, r.error
    return {k: r.metrics[k] for k in KEYS}


def assert_same_measurement(got: dict, want: dict) -> None:
    for key in EXACT:
        assert got[key] == want[key], key
    assert got["final_task_loss"] == pytest.approx(want["final_task_loss"], rel=LOSS_RTOL)
    assert got["drift_from_task0"] == pytest.approx(want["drift_from_task0"], rel=LOSS_RTOL)


@pytest.mark.parametrize("name", sorted(CASES))
def test_candidate_metrics_are_unchanged(name: str) -> None:
    assert_same_measurement(measure(name), json.loads(GOLDEN.read_text())[name])


def test_two_threads_measure_the_same() -> None:
    """The candidate the issue's other CPU measured differently, with two torch threads."""
    assert_same_measurement(measure("all_strategies", threads=2),
                            json.loads(GOLDEN.read_text())["all_strategies"])


def test_tolerance_still_sees_a_changed_measurement() -> None:
    """A different learning rate (3e-2 -> 2.7e-2) must fail the comparison: the tolerance is
    not so loose that it would pass a change of what is measured."""
    from evocl.cl import evaluate, load_backbone
    from evocl.cl.testing import keyword_stream

    torch.set_num_threads(1)
    scenario, extra = CASES["sequential"]
    r = evaluate({**BASE, **extra, "lr": 2.7e-2}, keyword_stream(n_tasks=3, scenario=scenario),
                 load_backbone("tiny"), seed=11, device="cpu")
    want = json.loads(GOLDEN.read_text())["sequential"]
    rel = max(abs(a - b) / abs(b) for a, b in zip(r.metrics["final_task_loss"],
                                                  want["final_task_loss"]))
    assert rel > 10 * LOSS_RTOL
    with pytest.raises(AssertionError):
        assert_same_measurement({k: r.metrics[k] for k in KEYS}, want)


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.write_text(json.dumps({n: measure(n) for n in sorted(CASES)}, indent=1) + "\n")
