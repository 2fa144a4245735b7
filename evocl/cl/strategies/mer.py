"""Meta-experience replay (MER; Riemer et al. 2019, "Learning to Learn without Forgetting by
Maximizing Transfer and Minimizing Interference"), batched first-order form.

Each training step takes the batch the loop composed (new rows plus, with replay on, rows
from the replay buffer: MER's reservoir memory), shuffles it, and splits it into
``MER_BATCHES`` sub-batches. Reptile's two levels (Algorithm 1 of the paper):

    theta_0 <- theta
    for each sub-batch b:
        theta_A <- theta;  one optimizer step on b;  theta <- theta_A + beta (theta - theta_A)
    theta <- theta_0 + gamma (theta - theta_0)

``mer_beta`` is the within-batch meta step, ``mer_gamma`` the across-batch meta step. The
paper takes plain SGD steps over single examples; evocl takes the candidate's optimizer step
over each sub-batch (the same optimizer, learning rate and schedule as every candidate), so
the cost of a step stays that of one batch. beta = gamma = 1 is sequential training over the
sub-batches. The shipped spaces offer MER only with replay on, as the paper pairs it with a
memory.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from evocl.cl.strategies.base import AvalancheSpec, Context, Param, Strategy, lazy

torch = lazy("torch")

#: sub-batches per step (at most the batch size)
MER_BATCHES = 4


class MER(Strategy):
    name = "mer"
    switch = "mer"
    streams = (4,)  # shuffles of the batch
    PARAMS = (
        Param("mer", False, help="meta-experience replay (Reptile meta-updates)"),
        Param("mer_beta", 1.0, low=0.0, low_open=True, high=1.0,
              help="within-batch meta step (Reptile interpolation per sub-batch)"),
        Param("mer_gamma", 0.5, low=0.0, low_open=True, high=1.0,
              help="across-batch meta step (Reptile interpolation per step)"),
    )

    def update(self, ctx: Context, rows: np.ndarray, step: Callable[[np.ndarray], float]) -> float:
        beta, gamma = float(ctx.params.mer_beta), float(ctx.params.mer_gamma)
        params = ctx.learner.trainable_list
        start = [x.detach().clone() for x in params]
        chunks = np.array_split(ctx.rng.permutation(rows), min(MER_BATCHES, len(rows)))
        loss = 0.0
        for chunk in chunks:
            before = [x.detach().clone() for x in params] if beta != 1.0 else None
            loss += step(chunk) / len(chunks)
            if before is not None:
                ctx.learner.assign([b + beta * (x.detach() - b) for x, b in zip(params, before)])
        if gamma != 1.0:
            ctx.learner.assign([s + gamma * (x.detach() - s) for x, s in zip(params, start)])
        return loss

    @classmethod
    def describe(cls, p: Any) -> dict[str, Any] | None:
        return {"beta": p.mer_beta, "gamma": p.mer_gamma, "sub_batches": MER_BATCHES,
                "update": "Reptile: theta <- theta_A + beta (theta - theta_A) per sub-batch, "
                          "theta <- theta_0 + gamma (theta - theta_0) per step "
                          "(Riemer et al. 2019, batched first-order form)"}

    @classmethod
    def avalanche(cls, p: Any, n_classes: int) -> AvalancheSpec:
        return AvalancheSpec(notes=["MER has no Avalanche plugin; it is left out."])
