"""evocl's DPO loss against TRL's `DPOTrainer` on the same batch and the same log-probs.

TRL tokenizes four preference pairs and builds its batch ([chosen; rejected], completion
mask); a PEFT model is the policy. TRL's reference for a PEFT model that already has an
adapter is a frozen copy of that adapter ("ref"), which is evocl's reference too (the adapter
at the task's start). The adapter is then moved (as training would) and both compute the loss
of the same batch: evocl through `CausalLMLearner.loss` (its sequence log-probs from the
target mask, its reference log-probs computed before the move), TRL through
`DPOTrainer.compute_loss`. Tolerance: relative 1e-6 (fp32 on the CPU, sums in another order).
"""

import math
import tempfile

import numpy as np
import pytest
import torch

from evocl.cl.dpo import dpo_loss, preference_accuracy


def test_the_sigmoid_loss_and_rewards_by_hand():
    pc, pr = torch.tensor([-3.0, -5.0]), torch.tensor([-4.0, -2.0])
    rc, rr = torch.tensor([-3.5, -4.0]), torch.tensor([-3.5, -4.0])
    losses, cr, rj = dpo_loss(pc, pr, rc, rr, beta=0.5)
    margin = torch.tensor([(0.5) - (-0.5), (-1.0) - (2.0)])
    want = [math.log1p(math.exp(-0.5 * float(m))) for m in margin]
    assert losses.tolist() == pytest.approx(want, rel=1e-6)
    assert cr.tolist() == pytest.approx([0.25, -0.5]) and rj.tolist() == pytest.approx([-0.25, 1.0])
    policy, ref = torch.stack([pc, pr], 1), torch.stack([rc, rr], 1)
    assert preference_accuracy(policy, ref) == 0.5
    assert preference_accuracy(ref, ref) == 0.0  # a tie is no win (TRL's rewards/accuracies)


@pytest.fixture(scope="module")
def trl_setup():
    datasets = pytest.importorskip("datasets")
    from trl import DPOConfig, DPOTrainer

    from evocl.cl.backbone import load_backbone
    from evocl.cl.model import build_model
    from evocl.cl.params import resolve

    bb = load_backbone("tiny-lm", seed=0)
    model = build_model(bb, resolve({"lora_rank": 4, "lora_dropout": 0.0}), 0, seed=0)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # an adapter that is not the identity: the task's start
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    rows = [{"prompt": [{"role": "user", "content": f"Can you help me with item {i}?"}],
             "chosen": [{"role": "assistant", "content": f"Gladly: item {i} is done."}],
             "rejected": [{"role": "assistant", "content": "No." * (i + 1)}]} for i in range(4)]
    tmp = tempfile.TemporaryDirectory()
    args = DPOConfig(output_dir=tmp.name, per_device_train_batch_size=4, max_steps=1,
                     report_to=[], beta=0.3, use_cpu=True, dataloader_num_workers=0)
    trainer = DPOTrainer(model=model.lm, args=args, train_dataset=datasets.Dataset.from_list(rows),
                         processing_class=bb.tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    yield model, trainer, batch, g
    tmp.cleanup()


def test_evocl_loss_matches_trl_on_the_same_batch(trl_setup):
    from evocl.cl.dpo import References
    from evocl.cl.learners.causal_lm import Batch, CausalLMLearner
    from evocl.cl.names import Options

    model, trainer, batch, g = trl_setup
    assert "ref" in model.lm.peft_config  # TRL's reference: a frozen copy of the adapter
    ids, mask, comp = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    n = ids.shape[0] // 2  # [chosen; rejected]
    sel = comp[:, 1:].bool() & mask[:, 1:].bool()
    ours = Batch(np.arange(n), ids, mask, sel, ids[:, 1:][sel], torch.zeros(2 * n, dtype=torch.long),
                 0, torch.ones(n, dtype=torch.bool), n)
    learner = CausalLMLearner(model, None, 1, torch.device("cpu"), None, Options())
    model.eval()
    with torch.no_grad():
        ref = learner.sequence_logps(ours, model(ids, mask))
    refs = References.__new__(References)
    refs.logps = {"train": torch.stack([ref[:n], ref[n:]], 1)}
    learner._references = refs
    learner.dpo_beta = 0.3
    with torch.no_grad():  # training moves the adapter
        for name, p in model.named_parameters():
            if "lora_B" in name and ".default" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.5)
    trl_loss = float(trainer.compute_loss(model.lm, batch).detach())
    loss = learner.loss(ours, model(ids, mask))
    assert abs(trl_loss - math.log(2)) > 0.01  # the policy moved away from the reference
    # Two float32 forwards of a transformer (TRL's and ours) sum their token log-probabilities in
    # different orders (the order depends on the CPU, its thread count and the libraries): a
    # fresh clone measured a relative difference of 1.8e-6 and failed at 1e-6. 1e-4 still catches
    # a wrong formula: beta 0.25 instead of 0.3 moves this loss by 1.8e-2.
    assert float(loss) == pytest.approx(trl_loss, rel=1e-4)
    loss.backward()  # the loss trains the adapter, not the frozen copy
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all(".ref" not in n for n in grads)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads.values())
