"""What every candidate computes identically in its evaluation rounds, computed once per worker.

A candidate's model is the pristine backbone with LoRA adapters whose B matrices start at zero
(PEFT's default initialisation). Two consequences, exact to the bit:

- before training, every adapted layer computes what the backbone's layer computes
  (``base(x) + B(A(x)) * s`` adds zeros), so the untrained model's encoder output -- the
  baseline round of FWT -- is the same for every candidate; only the seeded head differs;
- layers below the lowest adapted layer never change, so their output for a row is the same
  in every round of every candidate whose adapters start at or above that layer
  (``lora_layers: top_half``).

An evaluation round scores the same rows in the same batches for every candidate (sorted by
length, ``eval_batch_size`` rows: `ClassifierLearner.eval_round`), so a worker keeps, per
(backbone, stream tensors, split, rows, batch size, device, autocast dtype, threads):

    pooled     the untrained model's pooled features of each batch: a later baseline round is
               the candidate's own head on them (no encoder pass)
    prefix[m]  the input of layer m of each batch: a round of a candidate whose lowest adapted
               layer is m runs layers m.. only

The cached tensors are captured from a real forward pass of the same batches through the same
weights, kernels and thread count; the layers that run afterwards get exactly the inputs they
would have had, so rounds are bit-for-bit what they were without the cache
(`tests/test_cl_evalcache.py` runs rounds both ways). The cache is used only while the
candidate's LoRA B matrices are all zero (for ``pooled``) and never for the layers that carry
adapters. Memory: at most ``MAX_BYTES`` per worker (beyond it, rounds run uncached).
"""

from __future__ import annotations

import contextlib
import re
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

#: cap on the cached tensors per worker (bytes)
MAX_BYTES = 256 * 2**20
_LAYER = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)$")
_ADAPTED = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\..*lora_[AB]")

# backbone model -> stream tensors -> WorkerCache (both weak: a dropped backbone or stream frees it)
_CACHES: "weakref.WeakKeyDictionary[Any, weakref.WeakKeyDictionary[Any, WorkerCache]]" = \
    weakref.WeakKeyDictionary()


@dataclass
class WorkerCache:
    """The cached tensors of one (backbone, stream tensors) pair in one worker."""

    entries: dict[tuple, list[torch.Tensor]] = field(default_factory=dict)
    #: a causal LM's untrained rounds (scores, answers: small), by round key
    rounds: dict[tuple, Any] = field(default_factory=dict)
    nbytes: int = 0
    hits: int = 0
    tuple_out: bool = False  # the layers return a tuple (transformers 4.x), not the hidden states

    def get(self, key: tuple) -> list[torch.Tensor] | None:
        return self.entries.get(key)

    def put(self, key: tuple, tensors: list[torch.Tensor]) -> None:
        size = sum(t.numel() * t.element_size() for t in tensors)
        if key in self.entries or self.nbytes + size > MAX_BYTES:
            return
        self.entries[key] = tensors
        self.nbytes += size


def worker_cache(backbone_model: Any, data: Any) -> WorkerCache:
    """The worker's cache for ``backbone_model`` (the pristine weights) and ``data``."""
    per_model = _CACHES.get(backbone_model)
    if per_model is None:
        per_model = _CACHES[backbone_model] = weakref.WeakKeyDictionary()
    cache = per_model.get(data)
    if cache is None:
        cache = per_model[data] = WorkerCache()
    return cache


def layer_modules(encoder: torch.nn.Module) -> dict[int, torch.nn.Module]:
    """The numbered transformer layers of ``encoder`` (``...layer.3`` -> 3), outermost list."""
    found: dict[int, tuple[int, torch.nn.Module]] = {}
    for name, module in encoder.named_modules():
        m = _LAYER.search(name)
        if m:
            depth = name.count(".")
            i = int(m.group(1))
            if i not in found or depth < found[i][0]:
                found[i] = (depth, module)
    return {i: mod for i, (_, mod) in sorted(found.items())}


def lowest_adapted_layer(model: torch.nn.Module) -> int | None:
    """The lowest layer index that carries a LoRA matrix (None: no numbered layers)."""
    layers = [int(m.group(1)) for n, _ in model.named_parameters() if (m := _ADAPTED.search(n))]
    return min(layers) if layers else None


def lora_b_all_zero(model: torch.nn.Module) -> bool:
    """True while every LoRA B matrix is zero (the adapted model equals the backbone)."""
    bs = [p for n, p in model.named_parameters() if ".lora_B." in n]
    return bool(bs) and not bool(sum(torch.count_nonzero(p) for p in bs))


class EvalRounds:
    """One candidate's use of the worker cache: ``round(...)`` gives the encoder function of
    each batch of a round (a plain forward, the head on cached features, or layers m.. on a
    cached prefix), capturing what later candidates can reuse."""

    def __init__(self, model: torch.nn.Module, cache: WorkerCache | None, device: torch.device,
                 amp: torch.dtype | None):
        self.model, self.cache = model, cache
        self.layers = layer_modules(model.encoder) if cache is not None else {}
        low = lowest_adapted_layer(model) if self.layers else None
        self.low = low if low is not None and 0 < low < len(self.layers) else None
        self.mid = len(self.layers) // 2 if len(self.layers) >= 2 else None
        self.base = (str(device), str(amp), torch.get_num_threads())

    @contextlib.contextmanager
    def round(self, split: str, end: int, bs: int, pristine: bool
              ) -> Iterator[Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]]:
        """Yields ``logits(k, ids, mask)`` for the k-th batch of the round. ``pristine``: the
        model is the untrained one (the baseline round)."""
        cache = self.cache
        if cache is None:
            yield lambda k, ids, mask: self.model(ids, mask)
            return
        pristine = pristine and lora_b_all_zero(self.model)
        pooled_key = self._key("pooled", split, end, bs)
        pooled = cache.get(pooled_key) if pristine else None
        if pooled is not None:
            cache.hits += 1
            yield lambda k, ids, mask: self.model.head(pooled[k])
            return
        start = None
        if self.low is not None:
            start = cache.get(self._key("prefix", split, end, bs, self.low))
        if start is not None:  # layers below low are skipped: nothing to capture
            cache.hits += 1
            grabbed: dict[Any, list[torch.Tensor]] = {}
        else:
            # inputs of layers with only pristine layers below them in this round
            grabbed = {m: [] for m in (self.low, self.mid) if m is not None
                       and (pristine or (self.low is not None and m <= self.low))
                       and cache.get(self._key("prefix", split, end, bs, m)) is None}
            if pristine:
                grabbed["pooled"] = []
        with self._hooks(grabbed, start) as set_batch:
            def logits(k: int, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
                set_batch(k)
                return self.model(ids, mask)
            yield logits
        for m, tensors in grabbed.items():
            key = pooled_key if m == "pooled" else self._key("prefix", split, end, bs, m)
            cache.put(key, tensors)

    def _key(self, what: str, split: str, end: int, bs: int, *more: Any) -> tuple:
        return (what, split, end, bs, *more) + self.base

    @contextlib.contextmanager
    def _hooks(self, grabbed: dict[Any, list[torch.Tensor]], start: list[torch.Tensor] | None
               ) -> Iterator[Callable[[int], None]]:
        state = {"k": 0}
        handles = []

        def capture_input(store: list[torch.Tensor]) -> Callable[..., None]:
            def hook(module: Any, args: tuple, kwargs: dict) -> None:
                store.append(args[0] if args else kwargs["hidden_states"])
            return hook

        def note_output(module: Any, args: tuple, kwargs: dict, out: Any) -> None:
            self.cache.tuple_out = isinstance(out, tuple)  # type: ignore[union-attr]

        for m, store in grabbed.items():
            target = self.model.head if m == "pooled" else self.layers[m]
            handles.append(target.register_forward_pre_hook(capture_input(store),
                                                            with_kwargs=True))
            if m != "pooled":
                handles.append(target.register_forward_hook(note_output, with_kwargs=True))
        skipped: list[torch.nn.Module] = []
        if start is not None:
            low = self.low
            assert low is not None and self.cache is not None

            def inject(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
                cached = start[state["k"]]
                if args:
                    return (cached,) + tuple(args[1:]), kwargs
                return args, {**kwargs, "hidden_states": cached}

            handles.append(self.layers[low].register_forward_pre_hook(inject, with_kwargs=True))
            for i in range(low):
                layer = self.layers[i]
                layer.forward = _identity(self.cache.tuple_out)  # type: ignore[method-assign]
                skipped.append(layer)
        try:
            def set_batch(k: int) -> None:
                state["k"] = k
            yield set_batch
        finally:
            for h in handles:
                h.remove()
            for layer in skipped:
                del layer.forward


def _identity(tuple_out: bool) -> Callable[..., Any]:
    def forward(hidden_states: Any = None, *args: Any, **kwargs: Any) -> Any:
        return (hidden_states,) if tuple_out else hidden_states
    return forward
