"""What every backbone module shares: the ``Backbone`` record, the ``builtin`` mark of a
registered loader, freezing a loaded model, and quiet transformers logs.

Kept apart from `evocl.cl.backbone` (which resolves names and local paths and loads the
encoders) so that `evocl.cl.causal_lm` and `evocl.cl.gguf` import these without importing
the module that imports them: no import circle. `evocl.cl.backbone` re-exports every name.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from evocl.errors import BackboneError

KINDS = ("encoder", "causal_lm")


@dataclass(frozen=True, eq=False)
class Backbone:
    """A frozen model (eval mode, no grad, CPU), its tokenizer, and what kind it is."""

    name: str
    model: Any
    tokenizer: Any
    hidden_size: int
    num_layers: int
    kind: str = "encoder"


def builtin(kind: str, check: Callable[[], None] | None = None) -> Callable[[Any], Any]:
    """Marks a registered loader ``load(seed=0) -> Backbone`` with its ``kind`` and a ``check``
    of what it needs (packages, files) that loads no weights: what ``backbone_kind`` and
    ``check_backbone`` read. A loader registered without it is an encoder, unchecked."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def mark(load: Any) -> Any:
        load.kind, load.check = kind, check
        return load
    return mark


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' progress bars and info/warning logs off while a checkpoint loads."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _freeze(name: str, model: Any, tokenizer: Any, kind: str = "encoder") -> Backbone:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    cfg = model.config
    hidden = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "dim", 0)
                 or getattr(cfg, "d_model", 0))
    layers = int(getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "n_layers", 0))
    if tokenizer.pad_token_id is None:
        raise BackboneError("tokenizer has no pad token", source="backbone", field=name)
    return Backbone(name=name, model=model, tokenizer=tokenizer, hidden_size=hidden,
                    num_layers=layers, kind=kind)
