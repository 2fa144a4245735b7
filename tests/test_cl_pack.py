"""Packs (`evocl.cl.pack`): K candidates trained together on one frozen backbone give what each
gives alone (`evaluate`), on the tiny BERT and a tiny Llama.

Tolerance: per-task final losses and every accuracy-matrix entry within REL (relative) of the
solo run -- the frozen GEMMs run over more rows, so float sums may be ordered differently;
accuracies (counts of argmax hits) must be equal. LoRA dropout is 0 in the equivalence cases
(a packed candidate draws its dropout masks from its own generator, alone from the global
torch RNG: same distribution, other masks), checked separately below.
"""

import math

import pytest
import torch

from evocl.cl import evaluate, load_backbone
from evocl.cl.evaluation import prepare
from evocl.cl.multilora import MultiLoRALinear, Route
from evocl.cl.pack import Pack, run_pack
from evocl.cl.testing import keyword_stream, memorize_lm_tensors, tiny_llama
from evocl.records import Candidate

REL = 1e-4


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def tiny():
    return load_backbone("tiny")


@pytest.fixture(scope="module")
def data(tiny):
    return prepare(keyword_stream(n_tasks=3), tiny)


def cands(configs, seed0=10):
    return [Candidate(id=i, config=c, config_hash=str(i), seed=seed0 + i)
            for i, c in enumerate(configs)]


def assert_same(solo, packed, rel=REL):
    assert solo.status == packed.status, (solo.error, packed.error)
    for a, b in zip(solo.metrics["final_task_loss"], packed.metrics["final_task_loss"]):
        assert math.isclose(a, b, rel_tol=rel, abs_tol=1e-7), (a, b)
    assert solo.metrics["accuracy_matrix"] == packed.metrics["accuracy_matrix"]
    assert solo.metrics["baseline_acc"] == packed.metrics["baseline_acc"]
    assert solo.metrics.get("test_acc") == packed.metrics.get("test_acc")
    for k in ("acc", "forgetting", "bwt"):
        assert math.isclose(solo.objectives[k], packed.objectives[k], rel_tol=rel,
                            abs_tol=1e-7), k
    assert math.isclose(solo.metrics["drift_from_task0"], packed.metrics["drift_from_task0"],
                        rel_tol=1e-3)


#: K = 3 candidates differing in rank, lr, steps, batch size, targets, layers, schedule and
#: strategies (replay, online EWC, distillation, A-GEM)
ENCODER = [
    {"lr": 3e-2, "steps_per_task": 20, "batch_size": 16, "lora_rank": 4, "lora_dropout": 0.0},
    {"lr": 1e-2, "steps_per_task": 12, "batch_size": 8, "lora_rank": 8, "lora_dropout": 0.0,
     "lora_targets": "attention_mlp", "replay": True, "agem": True, "weight_decay": 0.01},
    {"lr": 5e-2, "steps_per_task": 25, "batch_size": 12, "lora_rank": 2, "lora_dropout": 0.0,
     "lora_layers": "top_half", "lora_rank_schedule": "increasing", "ewc": True,
     "distill": True, "warmup_ratio": 0.2},
]


def test_encoder_pack_equals_solo(tiny, data) -> None:
    cs = cands(ENCODER)
    packed = run_pack(tiny, data, cs, 3, device="cpu")
    for c in cs:
        solo = evaluate(c.config, data, tiny, c.seed, device="cpu")
        assert solo.ok and packed[c.id].metrics["pack"]["packed"] is True
        assert_same(solo, packed[c.id])


def test_fgm_packed_equals_solo(tiny, data) -> None:
    """FGM's perturbed second pass packed: members with and without it, different epsilons."""
    cs = cands([{**ENCODER[0], "adversarial": True, "adv_epsilon": 0.05},
                {**ENCODER[1], "adversarial": True, "adv_epsilon": 0.2},
                ENCODER[2]])
    packed = run_pack(tiny, data, cs, 3, device="cpu")
    for c in cs:
        assert packed[c.id].metrics["pack"]["packed"] is True
        assert_same(evaluate(c.config, data, tiny, c.seed, device="cpu"), packed[c.id])


def test_slot_refill_and_one_failure_stays_its_own(tiny, data) -> None:
    """Pack of 2 over 4 candidates: slots refill as members leave; a diverging member fails
    alone; the backbone copy the pack holds leaves the pristine one untouched."""
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    bad = {"lr": 1e30, "steps_per_task": 20, "batch_size": 8, "lora_dropout": 0.0}
    cs = cands([ENCODER[0], bad, ENCODER[2], {**ENCODER[1], "steps_per_task": 5}])
    packed = run_pack(tiny, data, cs, 2, device="cpu")
    assert packed[1].status == "failed" and "non-finite" in packed[1].error
    for c in (cs[0], cs[2], cs[3]):
        assert_same(evaluate(c.config, data, tiny, c.seed, device="cpu"), packed[c.id])
    for k, v in tiny.model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_unpackable_runs_solo_with_reason(tiny, data) -> None:
    cfg = {"lr": 3e-2, "steps_per_task": 6, "batch_size": 8, "lora_dropout": 0.0}
    cs = cands([{**cfg, "mer": True}, {**cfg, "mer": True,
                                        "lora_rank": 2}, cfg])
    pack = Pack(tiny, data, 3, device="cpu")
    res = [pack.join(c) for c in cs]
    assert res[2] is None and len(pack.members) == 1  # the plain one is packed
    for c, r in zip(cs[:2], res[:2]):
        assert r is not None and r.metrics["pack"]["packed"] is False
        assert "strategy mer is not packed" in r.metrics["pack"]["reason"]
        solo = evaluate(c.config, data, tiny, c.seed, device="cpu")
        assert r.metrics["accuracy_matrix"] == solo.metrics["accuracy_matrix"]
    assert [s["id"] for s in pack.solo_runs] == [0, 1]


def test_asha_prune_leaves_the_pack(tiny, data) -> None:
    pack = Pack(tiny, data, 2, device="cpu")
    c0, c1 = cands([ENCODER[0], {**ENCODER[0], "lr": 1e-2}])
    reports = []
    assert pack.join(c0, on_task_end=lambda r: reports.append(r) or False) is None
    assert pack.join(c1) is None
    done = {}
    while pack.members:
        done.update({c.id: r for c, r in pack.step()})
    assert done[0].status == "pruned" and done[0].metrics["tasks_trained"] == 1
    assert reports[0]["tasks_seen"] == 1 and done[1].ok
    solo = evaluate(c0.config, data, tiny, c0.seed, device="cpu", on_task_end=lambda r: False)
    assert_same(solo, done[0])


def test_dropout_masks_are_the_members_own(tiny, data) -> None:
    """With LoRA dropout a member's run does not depend on its pack mates."""
    cfg = {"lr": 3e-2, "steps_per_task": 10, "batch_size": 8, "lora_dropout": 0.3}
    cs = cands([cfg, {**cfg, "lora_rank": 2}])
    alone = run_pack(tiny, data, cs[:1], 1, device="cpu")[0]
    together = run_pack(tiny, data, cs, 2, device="cpu")[0]
    assert alone.ok and together.ok
    assert_same(alone, together)


def test_rows_see_only_their_own_adapter() -> None:
    torch.manual_seed(0)
    base = torch.nn.Linear(6, 5)
    route = Route()
    layer = MultiLoRALinear(base, route)
    from evocl.cl.multilora import Adapter
    a = Adapter(torch.randn(2, 6), torch.randn(5, 2), 2.0, 0.0, None)
    layer.adapters["a"] = a
    x = torch.randn(4, 3, 6)
    route.set_slices([("a", 0, 1), ("b", 1, 4)])
    y = layer(x)
    assert torch.allclose(y[1:], base(x[1:]))  # "b" has no adapter here: zero delta
    assert torch.allclose(y[:1], base(x[:1]) + a.delta(x[:1]))
    route.set_solo("a")
    assert torch.allclose(layer(x), base(x) + a.delta(x))


LM_FAST = {"lr": 3e-2, "steps_per_task": 10, "batch_size": 8, "lora_dropout": 0.0}


def test_causal_lm_pack_equals_solo() -> None:
    lm, data = tiny_llama(), memorize_lm_tensors()
    cs = cands([{**LM_FAST, "lora_targets": "all_linear"},
                {**LM_FAST, "lora_rank": 2, "lr": 1e-2, "steps_per_task": 6, "replay": True},
                {**LM_FAST, "lora_rank": 16, "batch_size": 4, "lora_layers": "top_half",
                 "ewc": True, "distill": True}])
    packed = run_pack(lm, data, cs, 3, device="cpu")
    for c in cs:
        solo = evaluate(c.config, data, lm, c.seed, device="cpu")
        assert solo.ok, solo.error
        assert_same(solo, packed[c.id])
        assert math.isclose(solo.objectives["perplexity"], packed[c.id].objectives["perplexity"],
                            rel_tol=REL)


def test_pack_option_is_checked() -> None:
    from evocl.errors import UserError
    from evocl.records import RunConfig

    with pytest.raises(UserError) as e:
        RunConfig(space="s.yaml", run_dir="r", budget=2, pack=0)
    assert e.value.field == "pack" and "must be >= 1" in str(e.value)
    assert RunConfig.from_dict({**RunConfig(space="s.yaml", run_dir="r", budget=2).to_dict(),
                                "pack": 4}).pack == 4


@pytest.mark.parametrize("max_rows", [1, 20])
def test_groups_of_at_most_pack_max_rows_equal_solo(tiny, data, max_rows) -> None:
    """``pack_max_rows`` cuts a step into groups (1: every member alone; 20: the 16- and
    8-row members apart, FGM's second pass inside its group) and changes no result."""
    from evocl.cl.names import Options

    cs = cands([{**ENCODER[0], "adversarial": True, "adv_epsilon": 0.05}, *ENCODER[1:]])
    opts = Options(pack_max_rows=max_rows)
    pack = Pack(tiny, data, 3, device="cpu", options=opts)
    for c in cs:
        assert pack.join(c) is None
    batches = [m.learner.batch(m.next_rows(), m.t) for m in pack.members]
    sizes = [[len(b.ids) for b in bs] for _, bs in pack._groups(pack.members, batches)]
    assert sizes == ([[16], [8], [12]] if max_rows == 1 else [[16], [8, 12]])
    packed = run_pack(tiny, data, cs, 3, device="cpu", options=opts)
    for c in cs:
        assert packed[c.id].metrics["pack"]["packed"] is True
        assert_same(evaluate(c.config, data, tiny, c.seed, device="cpu"), packed[c.id])


def test_causal_lm_groups_equal_solo() -> None:
    from evocl.cl.names import Options

    lm, data = tiny_llama(), memorize_lm_tensors()
    cs = cands([LM_FAST, {**LM_FAST, "lora_rank": 2, "lr": 1e-2, "replay": True, "distill": True}])
    packed = run_pack(lm, data, cs, 2, device="cpu", options=Options(pack_max_rows=1))
    for c in cs:
        assert_same(evaluate(c.config, data, lm, c.seed, device="cpu"), packed[c.id])
