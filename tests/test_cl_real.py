"""Smoke test with the real all-MiniLM-L6-v2 backbone (offline), through CLEvaluator."""

import pytest
import torch

from evocl.cl import CLEvaluator
from evocl.cl.testing import keyword_stream
from evocl.records import Candidate


@pytest.mark.slow
def test_minilm_smoke() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ev = CLEvaluator(stream=keyword_stream(n_tasks=2, n_train=16, n_eval=8),
                         backbone="minilm", device="cpu", max_length=16)
        cfg = {"steps_per_task": 6, "batch_size": 8, "lr": 2e-3, "ewc": True, "replay": True,
               "distill": True, "lora_targets": "attention", "lora_layers": "top_half"}
        r = ev(Candidate(0, cfg, "h", seed=0))
    finally:
        torch.set_num_threads(before)
    assert r.ok, r.error
    assert r.metrics["backbone"] == "minilm"
    assert r.objectives["plasticity"] > 0.75
    assert r.objectives["wall_time"] < 60
