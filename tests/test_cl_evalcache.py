"""The worker's evaluation cache (evocl.cl.evalcache) changes nothing a candidate measures:
candidates evaluated one after another in one worker, with the cache and without it, give
the same metrics to the bit (tiny backbone, one torch thread, CPU)."""

import pytest

from evocl.cl import evalcache, evaluate, load_backbone
from evocl.cl.evaluation import prepare
from evocl.cl.testing import keyword_stream

DEFAULT_BYTES = evalcache.MAX_BYTES
MEASURED = ("accuracy_matrix", "baseline_acc", "test_acc", "final_task_loss", "drift_from_task0")
FAST = {"lr": 3e-2, "steps_per_task": 6, "batch_size": 8, "lora_dropout": 0.1}
# a mix of adapter placements: lowest adapted layer 0 (all, bottom_half) and 1 (top_half)
CONFIGS = [
    {"lora_layers": "all"},
    {"lora_layers": "top_half", "lora_targets": "attention_mlp", "replay": True},
    {"lora_layers": "bottom_half", "distill": True, "lora_rank": 2},
    {"lora_layers": "top_half", "ewc": True, "lora_rank_schedule": "increasing"},
    {"lora_layers": "top_half", "adversarial": True},
]


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    yield


def _measure(scenario: str, cache_bytes: int, monkeypatch) -> tuple[list[dict], int]:
    monkeypatch.setattr(evalcache, "MAX_BYTES", cache_bytes)
    backbone = load_backbone("tiny")  # a fresh backbone: a fresh worker cache
    data = prepare(keyword_stream(n_tasks=3, scenario=scenario), backbone, max_eval_per_task=24)
    out = []
    for seed, cfg in enumerate(CONFIGS):
        r = evaluate({**FAST, **cfg}, data, backbone, seed=seed, device="cpu",
                     eval_batch_size=16)  # several batches per round
        assert r.ok, r.error
        out.append({k: r.metrics[k] for k in MEASURED})
    return out, evalcache.worker_cache(backbone.model, data).hits


@pytest.mark.parametrize("scenario", ["class-incremental", "task-incremental"])
def test_rounds_are_bit_identical_with_and_without_the_cache(scenario, monkeypatch) -> None:
    cold, cold_hits = _measure(scenario, 0, monkeypatch)
    warm, warm_hits = _measure(scenario, DEFAULT_BYTES, monkeypatch)
    assert cold_hits == 0
    # 4 later baselines from the pooled features; the top_half candidates' rounds from the prefix
    assert warm_hits >= 4 + 3 * 3
    assert warm == cold


def test_cache_helpers_read_the_model() -> None:
    from evocl.cl.model import build_model
    from evocl.cl.params import resolve

    backbone = load_backbone("tiny")
    top = build_model(backbone, resolve({"lora_layers": "top_half"}), 4, seed=0)
    every = build_model(backbone, resolve({"lora_layers": "all"}), 4, seed=0)
    assert sorted(evalcache.layer_modules(top.encoder)) == [0, 1]
    assert evalcache.lowest_adapted_layer(top) == 1
    assert evalcache.lowest_adapted_layer(every) == 0
    assert evalcache.lora_b_all_zero(top)
    next(p for n, p in top.named_parameters() if ".lora_B." in n).data[0, 0] = 1.0
    assert not evalcache.lora_b_all_zero(top)


def test_the_cache_keeps_within_its_budget(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(evalcache, "MAX_BYTES", 1000)
    cache = evalcache.WorkerCache()
    cache.put(("a",), [torch.zeros(100)])  # 400 bytes
    cache.put(("b",), [torch.zeros(200)])  # 800 more: over the budget, not kept
    assert cache.get(("a",)) is not None and cache.get(("b",)) is None and cache.nbytes == 400
