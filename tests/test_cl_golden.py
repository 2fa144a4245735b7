"""Golden metrics of fixed candidates: refactors and speed-ups of the CL evaluator must not
change what a candidate measures. The values were recorded with the pre-refactor evaluator
(commit 5871e6d's run_stream) on the tiny backbone, one torch thread, CPU; every parameter is
given explicitly so a change of defaults cannot move them.

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


def measure(name: str) -> dict:
    from evocl.cl import evaluate, load_backbone
    from evocl.cl.testing import keyword_stream

    scenario, extra = CASES[name]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = evaluate({**BASE, **extra}, keyword_stream(n_tasks=3, scenario=scenario),
                     load_backbone("tiny"), seed=11, device="cpu")
    finally:
        torch.set_num_threads(before)
    assert r.ok, r.error
    return {k: r.metrics[k] for k in KEYS}


@pytest.mark.parametrize("name", sorted(CASES))
def test_candidate_metrics_are_unchanged(name: str) -> None:
    want = json.loads(GOLDEN.read_text())[name]
    assert measure(name) == want


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.write_text(json.dumps({n: measure(n) for n in sorted(CASES)}, indent=1) + "\n")
