"""Non-finite steps decided on the device (evocl.cl.device_guard, the GPU path: no host sync
per step) follow the same rules as the host-decided loop: run on the CPU with the fused AdamW
both use there, with losses poisoned at chosen steps."""

import pytest
import torch

from evocl.cl import evaluate, train
from evocl.cl.testing import keyword_stream
from evocl.errors import EvaluationError

KEYS = ("accuracy_matrix", "baseline_acc", "test_acc", "final_task_loss", "drift_from_task0",
        "strategy_counters")
CFG = {"lr": 3e-2, "steps_per_task": 10, "batch_size": 8, "lora_dropout": 0.1,
       "replay": True, "distill": True, "ewc": True}


@pytest.fixture(scope="module")
def tiny(one_torch_thread, tiny_backbone):
    return tiny_backbone


@pytest.fixture(scope="module")
def stream():
    return keyword_stream(n_tasks=2)


def _run(stream, tiny, monkeypatch, on_device: bool, poisoned: set[int], cfg=CFG, **kw):
    """One evaluation of CFG whose task loss is infinite at the ``poisoned`` calls."""
    from evocl.cl.learners.classifier import ClassifierLearner

    calls = {"n": 0}
    original_loss, original_opt = ClassifierLearner.loss, train._optimizer

    def loss(self, batch, out):
        calls["n"] += 1
        return original_loss(self, batch, out) * (float("inf") if calls["n"] in poisoned else 1)

    with monkeypatch.context() as m:
        m.setattr(ClassifierLearner, "loss", loss)
        # both paths with the fused AdamW (the device path needs it for found_inf)
        m.setattr(train, "_optimizer", lambda named, p, fused=False: original_opt(
            named, p, fused=True))
        m.setattr(train, "_checks_on_device", lambda *a: on_device)
        r = evaluate(cfg, stream, tiny, seed=5, device="cpu", **kw)
    return {k: r.metrics.get(k) for k in KEYS}


@pytest.mark.parametrize("poisoned", [set(), {4, 13}])
def test_device_decisions_equal_host_decisions(stream, tiny, monkeypatch, poisoned) -> None:
    host = _run(stream, tiny, monkeypatch, False, poisoned, precision="bf16")
    device = _run(stream, tiny, monkeypatch, True, poisoned, precision="bf16")
    assert device == host
    if poisoned:
        assert host["strategy_counters"]["nonfinite_steps_skipped"] == [1, 1]


def test_device_decisions_with_mer_and_fgm(stream, tiny, monkeypatch) -> None:
    """MER's update rule and FGM's second pass get the step's loss as a device tensor."""
    cfg = {**CFG, "mer": True, "adversarial": True, "distill": False}
    host = _run(stream, tiny, monkeypatch, False, set(), cfg=cfg, precision="bf16")
    assert _run(stream, tiny, monkeypatch, True, set(), cfg=cfg, precision="bf16") == host


def test_device_decisions_fail_with_the_same_reasons(stream, tiny, monkeypatch) -> None:
    for on_device in (False, True):
        with pytest.raises(EvaluationError, match=r"non-finite loss at task 0 step 4$"):
            _run(stream, tiny, monkeypatch, on_device, {5}, precision="fp32")
        with pytest.raises(EvaluationError,
                           match=r"task 0 step 4 \(3 steps skipped under bfloat16 autocast\)"):
            _run(stream, tiny, monkeypatch, on_device, set(range(3, 40)), precision="bf16")


def test_the_device_guard_alone() -> None:
    from evocl.cl.device_guard import DeviceNonFinite

    g = DeviceNonFinite(torch.bfloat16, steps_per_task=10, device=torch.device("cpu"))
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.AdamW([p], lr=0.1, fused=True)
    last = float("nan")
    for step, v in enumerate([1.0, float("inf"), 2.0]):
        p.grad = torch.ones(2)
        value = g.finish_step(opt, g.check(torch.tensor(v), 0, step), step)
        opt.step()
        last = g.track(value, last)
    assert g.task_end(0, last) == 2.0 and g.skipped == [1]
    assert int(opt.state[p]["step"]) == 2  # the bad step did not count
