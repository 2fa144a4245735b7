"""Backbone loading and the LoRA model: targets, layers, per-layer ranks (rank_pattern)."""

import re

import pytest
import torch

from evocl.cl import load_backbone, resolve
from evocl.cl.backbone import Backbone, _freeze
from evocl.cl.model import build_model, layer_ranks
from evocl.errors import BackboneError

_IDX = re.compile(r"layer\.(\d+)\.")


@pytest.fixture(scope="module")
def tiny() -> Backbone:
    return load_backbone("tiny")


def _lora(model: torch.nn.Module) -> dict[str, tuple[int, float]]:
    """module name -> (rank, scaling) of every LoRA-wrapped module."""
    out = {}
    for name, mod in model.named_modules():
        a = getattr(mod, "lora_A", None)
        if a is not None and "default" in a:
            out[name] = (a["default"].weight.shape[0], mod.scaling["default"])
    return out


def _twelve_layer_backbone(tiny: Backbone) -> Backbone:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=len(tiny.tokenizer), hidden_size=16, num_hidden_layers=12,
                     num_attention_heads=2, intermediate_size=16)
    return _freeze("twelve", BertModel(cfg, add_pooling_layer=False), tiny.tokenizer)


def test_missing_directory_is_a_backbone_error(tmp_path) -> None:
    with pytest.raises(BackboneError) as err:
        load_backbone(str(tmp_path / "nope"))
    assert "config.json" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(BackboneError):
        load_backbone(str(tmp_path))  # exists, but no config.json


def test_tiny_backbone_is_seeded(tiny: Backbone) -> None:
    again = load_backbone("tiny")
    for (n, a), (_, b) in zip(tiny.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), n
    assert tiny.num_layers == 2 and tiny.hidden_size == 32


@pytest.mark.parametrize("targets, suffixes", [
    ("attention", {"query", "key", "value"}),
    ("attention_mlp", {"query", "key", "value", "intermediate.dense", "layer.output.dense"}),
    ("all_linear", {"query", "key", "value", "intermediate.dense", "layer.output.dense",
                    "attention.output.dense"}),
])
def test_targets(tiny: Backbone, targets: str, suffixes: set) -> None:
    model = build_model(tiny, resolve({"lora_targets": targets}), 4, seed=0)
    found = set()
    for name in _lora(model):
        tail = name.split(".layer.")[-1].split(".", 1)[1]  # drop the layer index
        tail = {"output.dense": "layer.output.dense"}.get(tail, tail)
        found.add(tail.replace("attention.self.", ""))
    assert found == suffixes


@pytest.mark.parametrize("layers, expected", [("all", {0, 1}), ("top_half", {1}),
                                              ("bottom_half", {0})])
def test_layers(tiny: Backbone, layers: str, expected: set) -> None:
    model = build_model(tiny, resolve({"lora_layers": layers}), 4, seed=0)
    assert {int(_IDX.search(n).group(1)) for n in _lora(model)} == expected


def test_layer_ranks_schedule() -> None:
    p = resolve({"lora_rank": 8, "lora_rank_schedule": "increasing"})
    assert list(layer_ranks(p, list(range(6))).values()) == [4, 4, 8, 8, 16, 16]
    p = resolve({"lora_rank": 8, "lora_rank_schedule": "decreasing"})
    assert list(layer_ranks(p, list(range(6))).values()) == [16, 16, 8, 8, 4, 4]
    p = resolve({"lora_rank": 1, "lora_rank_schedule": "increasing"})
    assert list(layer_ranks(p, [0, 1]).values()) == [1, 2]


@pytest.mark.parametrize("schedule", ["uniform", "increasing", "decreasing"])
def test_rank_pattern_reaches_the_intended_layers(tiny: Backbone, schedule: str) -> None:
    """12 layers: the key for layer 1 must not catch layer 11 (PEFT takes the first match)."""
    bb = _twelve_layer_backbone(tiny)
    p = resolve({"lora_rank": 4, "lora_alpha_ratio": 2.0, "lora_rank_schedule": schedule,
                 "lora_targets": "all_linear"})
    want = layer_ranks(p, list(range(12)))
    got = _lora(build_model(bb, p, 3, seed=0))
    assert len(got) == 12 * 6
    for name, (rank, scaling) in got.items():
        assert rank == want[int(_IDX.search(name).group(1))], name
        assert scaling == pytest.approx(2.0), name  # alpha = ratio * rank in every layer
    if schedule != "uniform":
        assert len({r for r, _ in got.values()}) == 3


def test_rank_pattern_with_top_half(tiny: Backbone) -> None:
    bb = _twelve_layer_backbone(tiny)
    p = resolve({"lora_rank": 4, "lora_rank_schedule": "increasing", "lora_layers": "top_half"})
    got = {int(_IDX.search(n).group(1)): r for n, (r, _) in _lora(build_model(bb, p, 3, 0)).items()}
    assert got == {6: 2, 7: 2, 8: 4, 9: 4, 10: 8, 11: 8}


def test_trainable_are_lora_and_head_only(tiny: Backbone) -> None:
    model = build_model(tiny, resolve({"lora_rank": 2}), 5, seed=0)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in n or n.startswith("head.") for n in names)
    # 2 layers x 3 modules x (A: 2x32 + B: 32x2) + head 32x5 + 5
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2 * 3 * 128 + 165
