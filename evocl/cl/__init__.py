"""Continual learning of a frozen transformer with LoRA: evaluate one configuration on a stream.

    from evocl.cl import evaluate, CLEvaluator, KNOWN_PARAMETERS, load_backbone
    result = evaluate(config, stream, load_backbone("tiny"), seed=0)

Imports are lazy: ``evocl.cl.KNOWN_PARAMETERS`` or ``OBJECTIVES`` never load torch;
``evaluate``, ``CLEvaluator`` and ``load_backbone`` load torch, transformers and peft on first
use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Backbone": "evocl.cl.backbone", "load_backbone": "evocl.cl.backbone",
    "evaluate": "evocl.cl.evaluation", "prepare": "evocl.cl.evaluation",
    "CLEvaluator": "evocl.cl.evaluator",
    "OBJECTIVES": "evocl.cl.names", "ALL_OBJECTIVES": "evocl.cl.names",
    "Options": "evocl.cl.names",
    "CLParams": "evocl.cl.params", "DEFAULTS": "evocl.cl.params",
    "KNOWN_PARAMETERS": "evocl.cl.params", "resolve": "evocl.cl.params",
    "STRATEGIES": "evocl.cl.strategies",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evocl.cl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
