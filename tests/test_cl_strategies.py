"""The strategy protocol and the strategies added on it (MER, A-GEM), on the tiny backbone."""

import numpy as np
import pytest
import torch

from evocl.cl import STRATEGIES, evaluate, load_backbone
from evocl.cl.params import PARAMS
from evocl.cl.strategies import strategy_classes
from evocl.cl.strategies.agem import agem_project
from evocl.cl.testing import keyword_stream

FAST = {"lr": 3e-2, "steps_per_task": 16, "batch_size": 16, "lora_dropout": 0.0}


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def tiny():
    return load_backbone("tiny")


@pytest.fixture(scope="module")
def stream():
    return keyword_stream(n_tasks=3)


def run(config, stream, tiny, seed=0):
    r = evaluate({**FAST, **config}, stream, tiny, seed, device="cpu")
    assert r.ok, r.error
    return r


def test_every_strategy_owns_its_parameters_and_random_streams() -> None:
    classes = strategy_classes()
    assert [c.name for c in classes] == list(STRATEGIES.names())
    owned = [p.name for c in classes for p in c.PARAMS]
    assert len(owned) == len(set(owned)) and set(owned) <= set(PARAMS)
    for c in classes:
        assert c.switch is None or c.switch in {p.name for p in c.PARAMS}
    streams = [i for c in classes for i in c.streams]
    assert len(streams) == len(set(streams)) and 0 not in streams  # 0 is the batch order


def test_agem_projection_removes_the_conflict() -> None:
    g = [torch.tensor([1.0, -2.0]), torch.tensor([[0.5]])]
    ref = [torch.tensor([1.0, 1.0]), torch.tensor([[1.0]])]  # g . ref = -0.5 < 0
    out = agem_project(g, ref)
    assert out is not None
    dot = sum(float((a * b).sum()) for a, b in zip(out, ref))
    assert dot == pytest.approx(0.0, abs=1e-6)
    assert agem_project(ref, ref) is None  # no conflict: g kept


def test_agem_projects_against_its_memory(stream, tiny) -> None:
    off = run({}, stream, tiny)
    on = run({"agem": True, "agem_mem_per_class": 8}, stream, tiny)
    again = run({"agem": True, "agem_mem_per_class": 8}, stream, tiny)
    assert on.metrics["accuracy_matrix"] == again.metrics["accuracy_matrix"]  # seeded
    c = on.metrics["strategy_counters"]["agem"]
    assert c["steps_with_memory"] == 2 * FAST["steps_per_task"]  # every step after task 0
    assert 0 < c["projected"] <= c["steps_with_memory"]
    assert on.metrics["accuracy_matrix"] != off.metrics["accuracy_matrix"]


def test_mer_meta_step_gamma_scales_the_movement(stream, tiny) -> None:
    base = {"replay": True, "replay_ratio": 0.5, "mer": True, "mer_beta": 1.0}
    full = run({**base, "mer_gamma": 1.0}, stream, tiny)
    damped = run({**base, "mer_gamma": 0.2}, stream, tiny)
    assert damped.metrics["drift_from_task0"] < full.metrics["drift_from_task0"]
    again = run({**base, "mer_gamma": 0.2}, stream, tiny)
    assert damped.metrics["accuracy_matrix"] == again.metrics["accuracy_matrix"]


def test_a_disabled_strategy_changes_nothing(stream, tiny) -> None:
    """Genes of an inactive strategy never reach the loop (same metrics as without them)."""
    plain = run({}, stream, tiny)
    off = run({"agem": False, "agem_mem_per_class": 4, "mer": False, "mer_gamma": 0.3}, stream,
              tiny)
    assert off.metrics["accuracy_matrix"] == plain.metrics["accuracy_matrix"]
    assert off.metrics["final_task_loss"] == plain.metrics["final_task_loss"]
