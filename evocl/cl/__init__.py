"""Continual learning of a frozen transformer with LoRA: evaluate one configuration on a stream.

    from evocl.cl import evaluate, CLEvaluator, KNOWN_PARAMETERS, load_backbone
    result = evaluate(config, stream, load_backbone("tiny"), seed=0)

torch, transformers and peft are imported here (not at evocl import time).
"""

from __future__ import annotations

from evocl.cl.backbone import Backbone, load_backbone
from evocl.cl.evaluate import OBJECTIVES, evaluate, prepare
from evocl.cl.evaluator import OPTIONS, CLEvaluator
from evocl.cl.params import DEFAULTS, KNOWN_PARAMETERS, CLParams, resolve

__all__ = ["Backbone", "CLEvaluator", "CLParams", "DEFAULTS", "KNOWN_PARAMETERS", "OBJECTIVES",
           "OPTIONS", "evaluate", "load_backbone", "prepare", "resolve"]
