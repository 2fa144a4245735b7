"""Continual-learning strategies: one module each, one line each in ``STRATEGIES``.

The order of the table is the order in which the training loop consults the strategies
(batch mixing, loss terms, gradient transforms, end-of-task work); adding a strategy is one
new module (see `base.py` for the protocol) plus one line here and its lines in the shipped
search spaces. The modules import torch lazily: reading the table and the parameters costs
no torch import.
"""

from __future__ import annotations

from evocl.cl.strategies.base import AvalancheSpec, Context, Param, Strategy
from evocl.registry import Registry

STRATEGIES = Registry("strategy", {
    "replay": ("evocl.cl.strategies.replay:Replay", "experience replay from a buffer"),
    "distill": ("evocl.cl.strategies.distill:Distill", "LwF distillation from the previous model"),
    "ewc": ("evocl.cl.strategies.ewc:EWC", "online EWC, empirical Fisher"),
    "adversarial": ("evocl.cl.strategies.fgm:FGM", "FGM adversarial training on embeddings"),
    "agem": ("evocl.cl.strategies.agem:AGEM", "A-GEM gradient projection"),
    "mer": ("evocl.cl.strategies.mer:MER", "meta-experience replay (Reptile)"),
})


def strategy_classes() -> list[type[Strategy]]:
    """Every registered strategy class, in table order."""
    return [STRATEGIES.load(name) for name in STRATEGIES.names()]


def __getattr__(name: str):  # the buffer is part of the public surface (tests, benchmarks)
    if name == "ReplayBuffer":
        from evocl.cl.strategies.replay import ReplayBuffer
        return ReplayBuffer
    raise AttributeError(name)


__all__ = ["AvalancheSpec", "Context", "Param", "STRATEGIES", "Strategy", "strategy_classes"]
