"""evaluate() and CLEvaluator on the tiny backbone and an in-code keyword stream (seconds)."""

import numpy as np
import pytest
import torch

from evocl.cl import OBJECTIVES, CLEvaluator, evaluate, load_backbone
from evocl.cl.backbone import Backbone
from evocl.cl.strategies import ReplayBuffer
from evocl.cl.testing import keyword_stream
from evocl.records import Candidate, Result

FAST = {"lr": 3e-2, "steps_per_task": 20, "batch_size": 16}


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def tiny() -> Backbone:
    return load_backbone("tiny")


@pytest.fixture(scope="module")
def stream():
    return keyword_stream(n_tasks=3)


def run(config, stream, tiny, seed=0, **kw) -> Result:
    return evaluate({**FAST, **config}, stream, tiny, seed, device="cpu", **kw)


def test_result_shape(stream, tiny) -> None:
    r = run({}, stream, tiny)
    assert r.ok and set(r.objectives) == set(OBJECTIVES)
    assert all(np.isfinite(v) for v in r.objectives.values())
    R = r.metrics["accuracy_matrix"]
    assert len(R) == 3 and all(len(row) == 3 for row in R)
    assert len(r.metrics["test_acc"]["per_task"]) == 3
    assert r.objectives["plasticity"] > 0.8  # the tiny model learns each task
    Result.from_dict(r.to_dict())  # JSON-ready


def test_deterministic_and_pure(stream, tiny) -> None:
    cfg = {"ewc": True, "replay": True, "distill": True, "adversarial": True,
           "lora_dropout": 0.1}
    state = torch.get_rng_state()
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    a, b = run(cfg, stream, tiny, seed=3), run(cfg, stream, tiny, seed=3)
    assert a.metrics["accuracy_matrix"] == b.metrics["accuracy_matrix"]
    assert a.metrics["final_task_loss"] == b.metrics["final_task_loss"]
    assert {k: v for k, v in a.objectives.items() if k not in ("wall_time", "peak_memory_mb")} \
        == {k: v for k, v in b.objectives.items() if k not in ("wall_time", "peak_memory_mb")}
    assert torch.equal(torch.get_rng_state(), state)  # global RNG restored
    for k, v in tiny.model.state_dict().items():  # pristine backbone untouched
        assert torch.equal(v, before[k]), k
    c = run(cfg, stream, tiny, seed=4)
    assert c.metrics["final_task_loss"] != a.metrics["final_task_loss"]


def test_replay_ratio_zero_never_reads_the_buffer(stream, tiny, monkeypatch) -> None:
    calls = []
    original = ReplayBuffer.sample

    def counting(self, n, rng):
        calls.append(n)
        return original(self, n, rng)

    monkeypatch.setattr(ReplayBuffer, "sample", counting)
    off = run({}, stream, tiny)
    zero = run({"replay": True, "replay_ratio": 0.0}, stream, tiny)
    assert calls == []
    assert zero.metrics["accuracy_matrix"] == off.metrics["accuracy_matrix"]
    on = run({"replay": True, "replay_ratio": 0.5}, stream, tiny)
    assert calls and all(n == 8 for n in calls)
    assert on.objectives["forgetting"] < off.objectives["forgetting"]


@pytest.mark.parametrize("policy", ["reservoir", "class_balanced"])
def test_buffer_policies_keep_per_class_slots(policy) -> None:
    buf = ReplayBuffer(3, policy, np.random.default_rng(0))
    rows, labels = np.arange(20), np.array([0] * 10 + [1] * 10)
    buf.update(0, rows, labels, rows, labels)
    assert len(buf) == 6
    assert sorted(np.bincount(labels[buf.sample(6, np.random.default_rng(1))]).tolist()) \
        in ([1, 5], [2, 4], [3, 3])  # drawn from the buffer only
    buf.update(1, rows + 20, labels, rows + 20, labels)  # domain-style: same classes again
    assert len(buf) == 6


def test_distill_alpha_zero_equals_no_distillation(stream, tiny) -> None:
    off = run({}, stream, tiny)
    zero = run({"distill": True, "distill_alpha": 0.0}, stream, tiny)
    assert zero.metrics["accuracy_matrix"] == off.metrics["accuracy_matrix"]
    assert zero.metrics["final_task_loss"] == off.metrics["final_task_loss"]
    on = run({"distill": True, "distill_alpha": 1.0}, stream, tiny)
    assert on.metrics["final_task_loss"] != off.metrics["final_task_loss"]


def test_large_ewc_lambda_keeps_first_task_weights(stream, tiny) -> None:
    # Adam's steps have size ~lr whatever the penalty, so a small lr shows the pull clearly
    free = run({"ewc": True, "ewc_lambda": 0.0, "lr": 1e-2}, stream, tiny)
    held = run({"ewc": True, "ewc_lambda": 1e6, "lr": 1e-2}, stream, tiny)
    assert held.metrics["drift_from_task0"] < 0.5 * free.metrics["drift_from_task0"]


@pytest.mark.parametrize("scenario", ["task-incremental", "domain-incremental"])
def test_other_scenarios(tiny, scenario) -> None:
    s = keyword_stream(n_tasks=3, scenario=scenario)
    r = run({"replay": True, "distill": True, "ewc": True}, s, tiny)
    assert r.ok and r.objectives["acc"] > 0.7


def test_fitness_tasks_trains_the_first_k_only(stream, tiny) -> None:
    r = run({}, stream, tiny, fitness_tasks=2)
    assert len(r.metrics["accuracy_matrix"]) == 2 and r.metrics["tasks_trained"] == 2
    assert len(r.metrics["test_acc"]["per_task"]) == 2


def test_evaluator_turns_failures_into_results(stream, tiny) -> None:
    ev = CLEvaluator(stream=stream, backbone=tiny, device="cpu")
    nan = ev(Candidate(0, {**FAST, "lr": 1e30}, "h", seed=0))
    assert not nan.ok and "non-finite loss at task 0 step" in nan.error
    bad = ev(Candidate(1, {"lora_rnak": 4}, "h", seed=0))
    assert not bad.ok and "lora_rnak" in bad.error
    ok = ev(Candidate(2, FAST, "h", seed=0))
    assert ok.ok and ok.objectives["trainable_params"] > 0


def test_evaluator_rejects_unknown_options(stream, tiny) -> None:
    from evocl.errors import UserError

    with pytest.raises(UserError):
        CLEvaluator(stream=stream, backbone=tiny, device="cpu", max_eval=3)


def test_on_trained_sees_the_trained_model(stream, tiny) -> None:
    seen = []
    r = run({}, stream, tiny, fitness_tasks=1, on_trained=lambda m: seen.append(
        (type(m.encoder).__name__, tuple(m.head.weight.shape))))
    assert r.ok and seen == [("PeftModel", (6, 32))]


def test_on_task_end_reports_each_task_and_can_prune(stream, tiny) -> None:
    cfg = {"replay": True}
    full = run(cfg, stream, tiny, seed=1)
    seen: list[dict] = []
    same = run(cfg, stream, tiny, seed=1, on_task_end=lambda rep: seen.append(rep) or True)
    assert same.metrics["accuracy_matrix"] == full.metrics["accuracy_matrix"]  # a report changes nothing
    assert [r["tasks_seen"] for r in seen] == [1, 2]  # after every task but the last
    R = full.metrics["accuracy_matrix"]
    assert seen[1]["R"] == R[:2] and seen[1]["n_tasks"] == 3
    assert seen[1]["acc"] == pytest.approx((R[1][0] + R[1][1]) / 2)
    assert seen[1]["forgetting"] == pytest.approx(R[0][0] - R[1][0])
    assert seen[1]["elapsed"] > 0 and seen[1]["wall_time"] == seen[1]["elapsed"]
    assert seen[1]["trainable_params"] == full.objectives["trainable_params"]
    assert set(seen[1]) >= set(OBJECTIVES)  # a scheduler can rank on any objective

    pruned = run(cfg, stream, tiny, seed=1, on_task_end=lambda rep: rep["tasks_seen"] < 2)
    assert pruned.status == "pruned" and not pruned.ok
    assert pruned.metrics["tasks_trained"] == 2 and pruned.metrics["tasks_planned"] == 3
    assert pruned.metrics["accuracy_matrix"] == R[:2] and pruned.metrics["test_acc"] is None
    assert pruned.objectives["acc"] == pytest.approx(seen[1]["acc"])
    assert Result.from_dict(pruned.to_dict()).status == "pruned"


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_runs_the_gpu_dtype_path_on_the_cpu(stream, tiny, precision) -> None:
    """The GPU path's dtype handling (autocast forward, fp32 losses) runs on the CPU, with the
    strategies that failed with a non-finite loss on a GPU (distillation at a high
    temperature, a high lr with lora_alpha_ratio 4)."""
    cfg = {"distill": True, "distill_temperature": 6.4, "distill_alpha": 0.27,
           "lora_alpha_ratio": 4, "lora_rank": 32, "lr": 7e-3, "lora_dropout": 0.26,
           "ewc": True, "replay": True}
    r = run(cfg, stream, tiny, precision=precision)
    assert r.ok, r.error
    assert r.metrics["options"]["precision"] == precision


def _poisoned_loss(monkeypatch, bad_calls: set[int]) -> None:
    from evocl.cl.learners.classifier import ClassifierLearner

    original = ClassifierLearner.loss
    calls = {"n": 0}

    def loss(self, batch, out):
        calls["n"] += 1
        value = original(self, batch, out)
        return value * float("inf") if calls["n"] in bad_calls else value

    monkeypatch.setattr(ClassifierLearner, "loss", loss)


def test_a_non_finite_step_is_skipped_under_autocast_and_fails_in_fp32(stream, tiny,
                                                                        monkeypatch) -> None:
    _poisoned_loss(monkeypatch, {5})
    skipped = run({}, stream, tiny, precision="bf16")
    assert skipped.ok and skipped.metrics["strategy_counters"]["nonfinite_steps_skipped"] == [1]
    _poisoned_loss(monkeypatch, {5})
    from evocl.errors import EvaluationError

    with pytest.raises(EvaluationError, match="non-finite loss at task 0 step 4"):
        run({}, stream, tiny, precision="fp32")
    _poisoned_loss(monkeypatch, set(range(3, 40)))  # a diverging run still fails under autocast
    with pytest.raises(EvaluationError, match="steps skipped under bfloat16 autocast"):
        run({}, stream, tiny, precision="bf16")


def test_low_fidelity_pass_reports_the_whole_stream_and_a_promoted_run_is_a_plain_one(
        stream, tiny) -> None:
    """The cheap pass trains every task at a quarter of its steps and reports forgetting over
    all 3 tasks; promoted, the full run equals an evaluation without it (same seed, pristine
    weights; same process and thread count, so exact here); stopped, a pruned Result."""
    plain = run({}, stream, tiny, seed=3)
    seen: list[dict] = []
    promoted = run({}, stream, tiny, seed=3, low_fidelity=0.25,
                   on_task_end=lambda r: seen.append(r) or True)
    assert [r["tasks_seen"] for r in seen] == [3, 1, 2]
    cheap = seen[0]
    assert cheap["fidelity"] == 0.25 and cheap["steps_per_task"] == 5 and len(cheap["R"]) == 3
    assert 0.0 <= cheap["forgetting"] <= 1.0
    # only the tasks trained so far are scored in the cheap pass: R[i][j > i] is null
    assert cheap["R"][0][1] is None and cheap["R"][1][2] is None and None not in cheap["R"][2]
    assert "fwt" not in cheap
    for k in ("acc", "forgetting", "bwt", "plasticity", "trainable_params"):
        assert promoted.objectives[k] == pytest.approx(plain.objectives[k], rel=1e-9, abs=1e-12)
    assert promoted.metrics["accuracy_matrix"] == plain.metrics["accuracy_matrix"]
    assert promoted.metrics["low_fidelity"]["steps_per_task"] == 5
    assert promoted.wall_time > promoted.metrics["low_fidelity"]["seconds"] > 0
    stopped = run({}, stream, tiny, seed=3, low_fidelity=0.25, on_task_end=lambda r: False)
    assert stopped.status == "pruned" and stopped.metrics["tasks_trained"] == 0
    assert stopped.objectives["acc"] == pytest.approx(cheap["acc"])
    assert stopped.metrics["accuracy_matrix"] == cheap["R"]
    # without a listener there is nothing to decide: no cheap pass
    assert "low_fidelity" not in run({}, stream, tiny, seed=3, low_fidelity=0.25).metrics
