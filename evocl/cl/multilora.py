"""Many candidates' LoRA adapters on one frozen backbone (the layers of `evocl.cl.pack`).

The backbone is held once; each adapted linear layer becomes a `MultiLoRALinear`: the frozen
base GEMM runs once over every row of the step, and each candidate's delta
``B(A(dropout(x))) * scaling`` is added to its own contiguous slice of rows only (as mLoRA /
ASPEN slice a concatenated batch per adapter). A candidate without an adapter on a layer adds
nothing to its rows there, so candidates may differ in rank, alpha, dropout, target modules,
layers and rank schedule. Which rows belong to whom is the shared `Route`: ``slices`` for a
packed step, ``solo`` (every row to one candidate) for the passes a candidate makes alone
(evaluation rounds, teacher, Fisher, A-GEM's memory gradient).

Each candidate is seen by the learners through a small module of its own (`PackedClassifier`,
`PackedLM`) that registers only its adapters and head as parameters, so ``named_parameters``,
``functional_call`` and ``torch.func.vmap`` see that candidate alone, in the order PEFT gives
its own model. The adapters' initial values are read from the PEFT model the solo path builds
(`evocl.cl.model.build_model` with ``share_frozen``), so a packed candidate starts from the
same numbers as alone. LoRA dropout draws from the candidate's own generator, seeded from its
seed, so its masks never depend on who else is in the pack.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from evocl.cl.model import LMModel, mean_pool

#: the prefix PEFT puts before a wrapped model's own module names
_PEFT_PREFIX = "base_model.model."


class Route:
    """Who owns which rows in the next forward pass: ``solo`` (a key: every row is that
    candidate's) or ``slices`` ((key, start, end) in row order)."""

    def __init__(self) -> None:
        self.solo: Any = None
        self.slices: tuple[tuple[Any, int, int], ...] = ()

    def set_solo(self, key: Any) -> None:
        self.solo, self.slices = key, ()

    def set_slices(self, slices: list[tuple[Any, int, int]]) -> None:
        self.solo, self.slices = None, tuple(slices)


class Adapter(nn.Module):
    """One candidate's LoRA pair on one layer (the names PEFT uses: ``lora_A``, ``lora_B``)."""

    def __init__(self, A: torch.Tensor, B: torch.Tensor, scaling: float, dropout: float,
                 generator: torch.Generator | None):
        super().__init__()
        self.lora_A = nn.Linear(A.shape[1], A.shape[0], bias=False, device="meta")
        self.lora_B = nn.Linear(B.shape[1], B.shape[0], bias=False, device="meta")
        self.lora_A.weight = nn.Parameter(A.detach().clone())
        self.lora_B.weight = nn.Parameter(B.detach().clone())
        self.scaling, self.p, self.generator = float(scaling), float(dropout), generator

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.lora_A.weight.dtype)
        if self.training and self.p > 0.0:
            keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
            x = x * keep / (1.0 - self.p)
        return self.lora_B(self.lora_A(x)) * self.scaling


class MultiLoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus every attached candidate's adapter on its own rows."""

    def __init__(self, base: nn.Linear, route: Route):
        super().__init__()
        self.base, self.route = base, route
        self.adapters: dict[Any, Adapter] = {}  # not registered: each candidate owns its own

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        route = self.route
        if route.solo is not None:
            a = self.adapters.get(route.solo)
            return out if a is None else out + a.delta(x).to(out.dtype)
        if not any(key in self.adapters for key, _, _ in route.slices):
            return out
        pieces = []
        for key, s, e in route.slices:
            a = self.adapters.get(key)
            pieces.append(out[s:e] if a is None else out[s:e] + a.delta(x[s:e]).to(out.dtype))
        return torch.cat(pieces)


class SharedBackbone:
    """One copy of the frozen backbone whose linear layers take adapters as candidates join."""

    def __init__(self, model: nn.Module, dtype: torch.dtype | None, device: torch.device):
        self.model = copy.deepcopy(model)
        if dtype is not None:
            self.model = self.model.to(dtype)
        self.model = self.model.to(device)
        self.model.requires_grad_(False)
        self.route = Route()
        self.layers: dict[str, MultiLoRALinear] = {}

    def layer(self, path: str) -> MultiLoRALinear:
        hit = self.layers.get(path)
        if hit is None:
            parent_name, _, child = path.rpartition(".")
            parent = self.model.get_submodule(parent_name) if parent_name else self.model
            base = getattr(parent, child)
            if type(base) is not nn.Linear:
                raise NotPackable(f"{path} is a {type(base).__name__}, not an nn.Linear")
            hit = MultiLoRALinear(base, self.route)
            setattr(parent, child, hit)
            self.layers[path] = hit
        return hit

    def attach(self, key: Any, adapters: dict[str, Adapter]) -> None:
        for path, a in adapters.items():
            self.layer(path).adapters[key] = a

    def detach(self, key: Any) -> None:
        for layer in self.layers.values():
            layer.adapters.pop(key, None)


class NotPackable(Exception):
    """A candidate the pack cannot train (it runs solo; the message is the logged reason)."""


def adapters_from_peft(peft_model: nn.Module, device: torch.device,
                       generator: torch.Generator | None) -> dict[str, Adapter]:
    """The LoRA pairs of a PEFT model by the wrapped model's module path, initial values and
    all (module order, as PEFT's own ``named_parameters``)."""
    out: dict[str, Adapter] = {}
    for name, module in peft_model.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if not isinstance(lora_a, nn.ModuleDict) or "default" not in lora_a:
            continue
        if getattr(module, "fan_in_fan_out", False) or module.use_dora.get("default", False):
            raise NotPackable(f"{name}: fan_in_fan_out/DoRA adapters are not packed")
        drop = module.lora_dropout["default"]
        p = float(drop.p) if isinstance(drop, nn.Dropout) else 0.0
        path = name[len(_PEFT_PREFIX):] if name.startswith(_PEFT_PREFIX) else name
        out[path] = Adapter(lora_a["default"].weight.to(device),
                            module.lora_B["default"].weight.to(device),
                            module.scaling["default"], p, generator).to(device)
    return out


class _Candidate(nn.Module):
    """What the learner calls ``model``: one candidate's adapters over the shared backbone."""

    def __init__(self, shared: SharedBackbone, key: Any, adapters: dict[str, Adapter]):
        super().__init__()
        self.adapters = nn.ModuleDict({p.replace(".", "__"): a for p, a in adapters.items()})
        self._shared = (shared,)  # a tuple: not a registered submodule
        self.key = key

    @property
    def shared(self) -> SharedBackbone:
        return self._shared[0]

    def solo(self) -> nn.Module:
        """The shared backbone with every row routed to this candidate."""
        self.shared.route.set_solo(self.key)
        return self.shared.model

    def train(self, mode: bool = True) -> "_Candidate":
        super().train(mode)
        self.shared.model.train(mode)
        return self


class PackedClassifier(_Candidate):
    """An encoder candidate: shared encoder -> mean pooling -> its own head (as `CLModel`)."""

    def __init__(self, shared: SharedBackbone, key: Any, adapters: dict[str, Adapter],
                 head: nn.Linear):
        super().__init__(shared, key, adapters)
        self.head = head

    def forward(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor,
                inputs_embeds: torch.Tensor | None = None,
                encoder_mask: torch.Tensor | None = None) -> torch.Tensor:
        out = self.solo()(input_ids=input_ids, inputs_embeds=inputs_embeds,
                          attention_mask=attention_mask if encoder_mask is None else encoder_mask)
        return self.head_out(out.last_hidden_state, attention_mask)

    @property
    def encoder(self) -> nn.Module:
        """The shared encoder routed to this candidate (`evocl.cl.evalcache` hooks its layers;
        its adapters' names hold no layer index, so the cache never skips layers for it)."""
        return self.solo()

    def head_out(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Its logits from hidden states the shared encoder computed for its rows."""
        return self.head(mean_pool(hidden, attention_mask))

    def input_embeddings(self) -> nn.Module:
        return self.shared.model.get_input_embeddings()


def shared_hidden(shared: SharedBackbone, ids: torch.Tensor | None, mask: torch.Tensor,
                  causal: bool, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """The last hidden states of a packed batch (the route already set)."""
    if causal:
        body = getattr(shared.model, shared.model.base_model_prefix)
        return body(input_ids=ids, inputs_embeds=inputs_embeds, attention_mask=mask,
                    use_cache=False).last_hidden_state
    return shared.model(input_ids=ids, inputs_embeds=inputs_embeds,
                        attention_mask=mask).last_hidden_state


class PackedLM(_Candidate):
    """A causal-LM candidate: what `LMModel` gives (hidden states, frozen LM head, ``lm`` for
    generation), over the shared LM routed to this candidate."""

    forward = LMModel.forward
    logits = LMModel.logits
    input_embeddings = LMModel.input_embeddings

    def _inner(self) -> nn.Module:
        return self.solo()

    @property
    def lm(self) -> nn.Module:
        """The shared LM routed to this candidate (``generate`` for generation-scored tasks)."""
        return self.solo()

    def head_out(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return hidden


__all__ = ["Adapter", "MultiLoRALinear", "NotPackable", "PackedClassifier", "PackedLM",
           "Route", "SharedBackbone", "adapters_from_peft", "shared_hidden"]
