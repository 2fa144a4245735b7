"""The causal-LM learner on a tiny random Llama and a generative stream given as tensors."""

import pytest
import torch

from evocl.cl import evaluate
from evocl.cl.model import backbone_lora_config, build_model, detect_layout
from evocl.cl.params import resolve
from evocl.cl.testing import memorize_lm_tensors, tiny_llama

FAST = {"lr": 3e-2, "steps_per_task": 20, "batch_size": 8, "lora_targets": "all_linear",
        "lora_dropout": 0.0}


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def lm():
    return tiny_llama()


@pytest.fixture(scope="module")
def data():
    return memorize_lm_tensors()


def run(config, data, lm, seed=0):
    r = evaluate({**FAST, **config}, data, lm, seed, device="cpu")
    assert r.ok, r.error
    return r


def test_token_accuracy_matrix_perplexity_and_forgetting(data, lm) -> None:
    r = run({}, data, lm)
    R = r.metrics["accuracy_matrix"]
    assert len(R) == 3 and all(len(row) == 3 for row in R)
    assert R[0][0] > 0.8  # the first task's response is learned...
    assert R[2][0] < 0.2  # ...and forgotten once the others take over
    assert r.objectives["forgetting"] > 0.5 and r.objectives["perplexity"] > 1.0
    nll = r.metrics["matrices"]["val_nll"]
    assert len(nll) == 4 and nll[1][0] < nll[0][0]  # row 0: the untrained model
    assert r.objectives["trainable_params"] > 0


@pytest.mark.parametrize("strategy", [
    {"replay": True, "replay_ratio": 0.5}, {"ewc": True, "ewc_lambda": 1000.0},
    {"distill": True, "distill_alpha": 1.0, "distill_temperature": 2.0},
    {"adversarial": True, "adv_epsilon": 0.01}, {"agem": True},
    {"replay": True, "mer": True, "mer_gamma": 0.5}])
def test_every_strategy_runs_on_a_causal_lm(data, lm, strategy) -> None:
    r = run({**strategy, "steps_per_task": 8}, data, lm, seed=1)
    again = run({**strategy, "steps_per_task": 8}, data, lm, seed=1)
    assert r.metrics["accuracy_matrix"] == again.metrics["accuracy_matrix"]


def test_replay_keeps_old_responses(data, lm) -> None:
    seq = run({"steps_per_task": 30}, data, lm)
    rep = run({"steps_per_task": 30, "replay": True, "replay_ratio": 0.5,
               "replay_buffer_per_class": 16}, data, lm)
    assert rep.objectives["forgetting"] < seq.objectives["forgetting"]


def test_lora_targets_of_causal_layouts(lm) -> None:
    def targets(cfg, backbone):
        return set(backbone_lora_config(backbone, resolve(cfg)).target_modules)

    assert targets({"lora_targets": "attention"}, lm) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert targets({"lora_targets": "all_linear"}, lm) >= {"o_proj", "gate_proj", "down_proj"}
    assert detect_layout(lm.model, causal=True)[1:] == ("layers", 2)

    from transformers import GPT2Config, GPT2LMHeadModel

    from evocl.cl.backbone import Backbone

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=2,
                                      n_positions=64))
    bk = Backbone(name="gpt2-tiny", model=gpt2, tokenizer=None, hidden_size=32, num_layers=2)
    object.__setattr__(bk, "kind", "causal_lm")
    cfg = backbone_lora_config(bk, resolve({"lora_targets": "attention"}))
    assert set(cfg.target_modules) == {"c_attn", "attn.c_proj"} and cfg.fan_in_fan_out
    with torch.random.fork_rng():
        model = build_model(bk, resolve({"lora_targets": "attention_mlp"}), 0, seed=0)
    adapted = {n.split(".lora_A")[0].split(".")[-2] + "." + n.split(".lora_A")[0].split(".")[-1]
               for n, _ in model.named_parameters() if ".lora_A." in n}
    assert adapted == {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}


@pytest.mark.slow
def test_smollm2_trains_a_few_steps_and_its_adapter_generates(tmp_path) -> None:
    """The real SmolLM2-135M-Instruct on a user's multi-turn chat stream (exact-match task,
    its own retention set, scored by greedy generation): two LoRA steps, the adapter saved as
    `evocl train` saves it, reloaded with PeftModel.from_pretrained, and generating."""
    from pathlib import Path

    from peft import PeftModel

    from evocl.cl import load_backbone
    from evocl.streams import encode_prompt, load_stream

    bk = load_backbone("smollm2")
    stream = load_stream(str(Path(__file__).parent / "data" / "chat" / "chat.yaml"), seed=0)
    r = evaluate({"lr": 1e-3, "steps_per_task": 2, "batch_size": 2}, stream, bk, 0,
                 device="cpu", fitness_tasks=1, max_length=96, max_eval_per_task=4,
                 max_test_per_task=4, max_new_tokens=8,
                 on_trained=lambda m: m.lm.save_pretrained(str(tmp_path / "adapter")))
    assert r.ok, r.error
    assert 0.0 <= r.objectives["acc"] <= 1.0 and r.objectives["perplexity"] > 1.0
    assert r.metrics["task_metrics"] == ["exact_match"]
    assert r.metrics["retention"]["scores"][0] > 0.0  # the instruct model answers "Say hello."
    assert 0.0 <= r.objectives["retention_drop"] <= 1.0
    model = PeftModel.from_pretrained(bk.model, str(tmp_path / "adapter"))
    ids = torch.tensor([encode_prompt(bk.tokenizer, "What is the capital of France?")])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             max_new_tokens=8, do_sample=False,
                             pad_token_id=bk.tokenizer.pad_token_id)
    assert bk.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
