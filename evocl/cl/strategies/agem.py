"""A-GEM (Chaudhry et al. 2019, "Efficient Lifelong Learning with A-GEM").

An episodic memory keeps ``agem_mem_per_class`` training rows per group (class; task for a
causal LM), filled class-balanced at the end of each task. At every step after the first
task, the reference gradient g_ref of the learner's loss on a batch drawn from the memory
(``batch_size`` rows, or all of it when smaller) is computed; when the step's gradient g
conflicts with it (g . g_ref < 0) g is projected onto the half-space where it does not:
g <- g - (g . g_ref / g_ref . g_ref) g_ref  (eq. 11 of the paper). The dot products run over
all trainable parameters at once. Cost: one extra forward/backward per step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evocl.cl.strategies.base import AvalancheSpec, Context, Param, Strategy, lazy
from evocl.cl.strategies.replay import ReplayBuffer, first_occurrences

torch = lazy("torch")


def agem_project(g: list[Any], ref: list[Any]) -> list[Any] | None:
    """g - (g.ref / ref.ref) ref when g.ref < 0 (the dot products over all tensors at once),
    else None (g is kept)."""
    dot = sum((a.float() * b.float()).sum() for a, b in zip(g, ref))
    if float(dot) >= 0.0:
        return None
    scale = dot / sum((b.float() ** 2).sum() for b in ref).clamp(min=1e-12)
    return [a - (scale * b.float()).to(a.dtype) for a, b in zip(g, ref)]


class AGEM(Strategy):
    name = "agem"
    switch = "agem"
    streams = (5, 6)  # memory updates, reference batch draws
    PARAMS = (
        Param("agem", False, help="A-GEM gradient projection against an episodic memory"),
        Param("agem_mem_per_class", 16, low=1, high=100_000,
              help="episodic memory rows per class (per task for causal LMs)"),
    )

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.memory = ReplayBuffer(ctx.params.agem_mem_per_class, "class_balanced", ctx.rngs[0])
        self.n_projected = 0
        self.n_steps = 0

    def transform_grads(self, ctx: Context, grads: list[Any]) -> list[Any] | None:
        if len(self.memory) == 0:
            return None
        self.n_steps += 1
        n = min(ctx.params.batch_size, len(self.memory))
        rows = self.memory.sample(n, ctx.rngs[1])
        learner = ctx.learner
        ref_batch = learner.batch(rows, learner.current_task)
        params = learner.trainable_list
        with learner.autocast():
            ref_loss = learner.loss(ref_batch, learner.forward(ref_batch))
        ref = torch.autograd.grad(ref_loss, params, allow_unused=True)
        ref = [torch.zeros_like(p) if r is None else r for p, r in zip(params, ref)]
        g = [torch.zeros_like(p) if x is None else x for p, x in zip(params, grads)]
        out = agem_project(g, ref)
        self.n_projected += out is not None
        return out

    def end_task(self, ctx: Context, t: int, drawn: np.ndarray) -> None:
        learner = ctx.learner
        seen = first_occurrences(drawn)
        rows = learner.data.train.rows(t)
        self.memory.update(t, seen, learner.groups(seen), rows, learner.groups(rows))

    def counters(self) -> dict[str, Any]:
        return {"steps_with_memory": self.n_steps, "projected": self.n_projected}

    @classmethod
    def describe(cls, p: Any) -> dict[str, Any] | None:
        return {"memory_per_class": p.agem_mem_per_class,
                "projection": "g <- g - (g.g_ref / g_ref.g_ref) g_ref when g.g_ref < 0, g_ref "
                              "from a memory batch of batch_size rows (Chaudhry et al. 2019)"}

    @classmethod
    def avalanche(cls, p: Any, n_classes: int) -> AvalancheSpec:
        mem = int(p.agem_mem_per_class) * n_classes
        return AvalancheSpec(
            plugins=[{"class": "avalanche.training.plugins.AGEMPlugin",
                      "kwargs": {"patterns_per_experience": mem,
                                 "sample_size": int(p.batch_size)}}],
            notes=["A-GEM: Avalanche fills patterns_per_experience rows per experience; evocl "
                   f"keeps {p.agem_mem_per_class} per class ({mem} in all over {n_classes} "
                   "classes), split equally over the tasks that had each class."])
