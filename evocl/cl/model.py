"""The trained model: frozen backbone + LoRA (PEFT) and, for an encoder, mean pooling + one
linear head; for a causal LM, its own (frozen) LM head.

LoRA targets of an encoder (BERT-family names; DistilBERT and ``*_proj`` layouts are mapped
likewise):
    attention      query, key, value
    attention_mlp  query, key, value + the feed-forward pair (intermediate.dense, output.dense)
    all_linear     every linear layer of the encoder (the above + attention.output.dense)
of a causal LM (Llama / Qwen / SmolLM: ``*_proj``; OPT: ``out_proj``, ``fc1``, ``fc2``;
GPT-2: ``c_attn``, ``attn.c_proj``, ``c_fc``, ``mlp.c_proj``, Conv1D layers, so PEFT gets
``fan_in_fan_out``):
    attention      q, k, v, o (GPT-2: c_attn and the attention's c_proj)
    attention_mlp  + the feed-forward layers (gate, up, down / fc1, fc2 / c_fc, mlp.c_proj)
    all_linear     every linear layer of the blocks (the same set; the LM head stays frozen)
``lora_layers`` picks ``layers_to_transform`` (all / top_half / bottom_half of the encoder
layers). ``lora_rank_schedule`` sets per-layer ranks through PEFT's ``rank_pattern`` over the
adapted layers, lowest to highest: uniform = rank everywhere; increasing = rank/2 in the lowest
third, rank in the middle, 2*rank in the top third (decreasing mirrors it). ``alpha_pattern``
keeps alpha = lora_alpha_ratio * rank in every layer. The head is a plain nn.Linear outside
PEFT over all of the stream's classes (masking per scenario is done by the trainer).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import torch
from torch import nn

from evocl.cl.backbone import Backbone
from evocl.cl.params import CLParams
from evocl.errors import BackboneError

# layout name -> (attention, mlp, attention output) module-name suffixes; the first
# attention name identifies the layout
LAYOUTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "bert": (("query", "key", "value"), ("intermediate.dense", "output.dense"),
             ("attention.output.dense",)),
    "distilbert": (("q_lin", "k_lin", "v_lin"), ("lin1", "lin2"), ("out_lin",)),
    "proj": (("q_proj", "k_proj", "v_proj"), ("up_proj", "down_proj", "gate_proj", "fc1", "fc2"),
             ("o_proj", "out_proj")),
}
# causal LMs: the attention output projection is part of "attention"
LM_LAYOUTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "llama": (("q_proj", "k_proj", "v_proj", "o_proj"), ("gate_proj", "up_proj", "down_proj"), ()),
    "opt": (("q_proj", "k_proj", "v_proj", "out_proj"), ("fc1", "fc2"), ()),
    "gpt2": (("c_attn", "attn.c_proj"), ("c_fc", "mlp.c_proj"), ()),
}
_FAN_IN_FAN_OUT = {"gpt2"}
_LAYER_RE = re.compile(r"(?:^|\.)(layer|layers|h|block|blocks)\.(\d+)\.")


class CLModel(nn.Module):
    """encoder (PEFT-wrapped) -> attention-masked mean of the last hidden states -> head."""

    def __init__(self, encoder: nn.Module, head: nn.Linear):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor,
                inputs_embeds: torch.Tensor | None = None,
                encoder_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, n_classes]. ``encoder_mask`` overrides the mask given to the encoder
        (a 4-D additive mask lets torch.func.vmap run without data-dependent branches)."""
        out = self.encoder(input_ids=input_ids, inputs_embeds=inputs_embeds,
                           attention_mask=attention_mask if encoder_mask is None else encoder_mask)
        return self.head(mean_pool(out.last_hidden_state, attention_mask))

    def input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The attention-masked mean of ``hidden`` [B, L, H] over its positions: [B, H]."""
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def _linear_names(model: nn.Module) -> list[str]:
    """Names of the linear layers (nn.Linear and GPT-2's Conv1D)."""
    try:
        from transformers.pytorch_utils import Conv1D
        kinds: tuple[type, ...] = (nn.Linear, Conv1D)
    except ImportError:  # pragma: no cover - depends on the installed transformers
        kinds = (nn.Linear,)
    return [n for n, m in model.named_modules() if isinstance(m, kinds)]


def detect_layout(model: nn.Module, causal: bool = False) -> tuple[str, str, int]:
    """(layout name, layers pattern, number of layers) of an encoder or, with ``causal``, a
    causal LM, from its module names."""
    names = _linear_names(model)
    table = LM_LAYOUTS if causal else LAYOUTS
    layout = next((k for k, (att, _, _) in table.items()
                   if any(n.endswith("." + att[0]) or n == att[0] for n in names)), None)
    if causal and layout == "llama" and not any(n.endswith(".o_proj") for n in names):
        layout = "opt" if any(n.endswith(".out_proj") for n in names) else None
    found = [_LAYER_RE.search(n) for n in names]
    layers = sorted({int(f.group(2)) for f in found if f})
    if layout is None or not layers:
        kind = "causal-LM" if causal else "encoder"
        want = "q_proj/c_attn" if causal else "query/q_lin/q_proj"
        raise BackboneError(f"unsupported {kind} layout: no {want} linear layers inside "
                            "numbered layers", source="backbone", field="model")
    pattern = next(f.group(1) for f in found if f)
    return layout, pattern, layers[-1] + 1


def layer_ranks(params: CLParams, layers: list[int]) -> dict[int, int]:
    """Rank of each adapted layer under ``lora_rank_schedule`` (powers of two around rank)."""
    r, n = params.lora_rank, len(layers)
    if params.lora_rank_schedule == "uniform" or n < 2:
        return {layer: r for layer in layers}
    out = {}
    for pos, layer in enumerate(layers):
        step = int(round(2.0 * pos / (n - 1) - 1.0 + 1e-9))  # -1, 0, +1 from bottom to top
        if params.lora_rank_schedule == "decreasing":
            step = -step
        out[layer] = max(1, r // 2) if step < 0 else (2 * r if step > 0 else r)
    return out


def lora_config(params: CLParams, layout: str, layers_pattern: str, n_layers: int,
                causal: bool = False) -> Any:
    """The PEFT LoraConfig for ``params`` (see the module docstring)."""
    from peft import LoraConfig

    att, mlp, att_out = (LM_LAYOUTS if causal else LAYOUTS)[layout]
    targets = list(att)
    if params.lora_targets in ("attention_mlp", "all_linear"):
        targets += list(mlp)
    exclude: list[str] = []
    if params.lora_targets == "all_linear":
        targets += list(att_out)
    elif params.lora_targets == "attention_mlp":
        # suffix matching: BERT's "output.dense" would also catch "attention.output.dense"
        exclude = list(att_out)
    half = n_layers // 2
    layers = {"all": list(range(n_layers)), "bottom_half": list(range(max(1, half))),
              "top_half": list(range(half, n_layers))}[params.lora_layers]
    ranks = layer_ranks(params, layers)
    rank_pattern: dict[str, int] = {}
    alpha_pattern: dict[str, float] = {}
    if params.lora_rank_schedule != "uniform":
        # PEFT takes the first key that matches the end of a module name; each key names one
        # layer index exactly ("layer\.1\." never matches layer 11), most specific first.
        for layer in sorted(layers, reverse=True):
            key = rf"{re.escape(layers_pattern)}\.{layer}\..*"
            rank_pattern[key] = ranks[layer]
            alpha_pattern[key] = params.lora_alpha_ratio * ranks[layer]
    return LoraConfig(
        r=params.lora_rank, lora_alpha=params.lora_alpha_ratio * params.lora_rank,
        lora_dropout=params.lora_dropout, target_modules=targets,
        exclude_modules=exclude or None,
        layers_to_transform=layers, layers_pattern=layers_pattern,
        rank_pattern=rank_pattern, alpha_pattern=alpha_pattern, bias="none",
        fan_in_fan_out=causal and layout in _FAN_IN_FAN_OUT,
        task_type="CAUSAL_LM" if causal else None)


def backbone_lora_config(backbone: Backbone, params: CLParams) -> Any:
    """The LoraConfig the evaluator applies to ``backbone`` under ``params``."""
    causal = getattr(backbone, "kind", "encoder") == "causal_lm"
    layout, pattern, n_layers = detect_layout(backbone.model, causal)
    return lora_config(params, layout, pattern, n_layers, causal)


class LMModel(nn.Module):
    """A PEFT-wrapped causal LM. ``forward`` gives the last hidden states [B, L, H];
    ``logits(h)`` applies the (frozen) LM head to chosen positions only, so the vocabulary
    projection is paid for the target tokens alone."""

    def __init__(self, peft_lm: nn.Module):
        super().__init__()
        self.lm = peft_lm

    def _inner(self) -> nn.Module:
        return self.lm.get_base_model()

    def forward(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor,
                inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        inner = self._inner()
        body = getattr(inner, inner.base_model_prefix)
        out = body(input_ids=input_ids, attention_mask=attention_mask,
                   inputs_embeds=inputs_embeds, use_cache=False)
        return out.last_hidden_state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._inner().get_output_embeddings()(hidden)

    def input_embeddings(self) -> nn.Module:
        return self._inner().get_input_embeddings()


def build_model(backbone: Backbone, params: CLParams, n_classes: int, seed: int,
                dtype: torch.dtype | None = None, share_frozen: bool = False) -> nn.Module:
    """A fresh model from the pristine backbone (deep copy). Uses the global torch RNG: call it
    inside a forked, seeded RNG scope. The head is initialised first from ``seed`` alone, so the
    untrained model (LoRA B = 0) depends on the seed only, whatever the LoRA settings.
    A causal LM gets no head (its LM head is frozen); ``dtype`` casts its frozen weights (bf16
    on a GPU) while the adapters stay fp32. ``share_frozen``: the copy shares the backbone's
    frozen tensors instead of copying them (`evocl.cl.pack` reads the adapters' initial values
    from it; it must not be trained or cast, so ``dtype`` must be None)."""
    from peft import get_peft_model

    def copied(model: nn.Module) -> nn.Module:
        if not share_frozen:
            return copy.deepcopy(model)
        if dtype is not None:
            raise ValueError("share_frozen takes no dtype (a cast would change the backbone)")
        memo = {id(t): t for t in [*model.parameters(), *model.buffers()]}
        return copy.deepcopy(model, memo)

    if getattr(backbone, "kind", "encoder") == "causal_lm":
        lm = copied(backbone.model)
        if dtype is not None:
            lm = lm.to(dtype)
        torch.manual_seed(seed + 1)
        model_lm = LMModel(get_peft_model(lm, backbone_lora_config(backbone, params)))
        model_lm.train()
        return model_lm
    torch.manual_seed(seed)
    head = nn.Linear(backbone.hidden_size, n_classes)
    encoder = copied(backbone.model)
    layout, pattern, n_layers = detect_layout(encoder)
    torch.manual_seed(seed + 1)
    peft_encoder = get_peft_model(encoder, lora_config(params, layout, pattern, n_layers))
    model = CLModel(peft_encoder, head)
    model.train()
    return model


def trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters by name (LoRA matrices and the head)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Recompute each transformer layer's activations in the backward pass (transformers'
    ``gradient_checkpointing_enable``, non-reentrant), PEFT-compatible: the input embeddings'
    output requires grad (``enable_input_require_grads``, as PEFT's
    ``prepare_model_for_kbit_training`` does), so the frozen backbone passes gradients on to
    the adapters. A causal LM (``LMModel``) or a classifier's encoder (``CLModel``)."""
    inner = model.lm.get_base_model() if isinstance(model, LMModel) else \
        model.encoder.get_base_model()
    if not getattr(inner, "supports_gradient_checkpointing", False):
        raise BackboneError(f"{type(inner).__name__} does not support gradient checkpointing",
                            source="evaluator_options", field="gradient_checkpointing")
    kwargs = {"use_reentrant": False}
    if hasattr(inner, "activation_checkpointing_enable"):  # transformers >= 5 (the new name)
        inner.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:  # pragma: no cover - depends on the installed transformers
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    inner.enable_input_require_grads()
