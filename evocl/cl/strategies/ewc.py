"""Online EWC (Schwarz et al. 2018, "Progress & Compress"), diagonal empirical Fisher.

Fisher of task t: F_t[i] = mean over n samples (x, y) of the task's training data of
(d/d theta_i  loss(f_theta(x), y))**2 -- squared PER-SAMPLE gradients of the learner's loss
(a classifier: CE at the true label; a causal LM: the mean token NLL of the sample's targets),
so it does not shrink with the batch size the way squared mini-batch gradients do. Online
accumulation: F <- gamma * F + F_t; anchor <- parameters after task t. Penalty:
lambda / 2 * sum_i F[i] * (theta_i - anchor_i)**2 over the trainable parameters only (LoRA
matrices, and a classifier's head). Per-sample gradients come from torch.func (vmap(grad)) in
eval mode and fp32, in chunks (`Learner.fisher`), so memory stays bounded.
"""

from __future__ import annotations

from typing import Any

from evocl.cl.strategies.base import AvalancheSpec, Context, Param, Strategy, lazy

torch = lazy("torch")


def fisher_samples_for(p: Any, requested: int | None) -> int:
    """Samples for a task's Fisher: ``requested``, or by default steps*batch/16 within
    [16, 64] -- a per-sample gradient costs ~1.4x a batched training sample, so the Fisher
    stays under ~10% of the task's training time."""
    if requested is not None:
        return int(requested)
    return int(min(64, max(16, p.steps_per_task * p.batch_size // 16)))


class EWC(Strategy):
    name = "ewc"
    switch = "ewc"
    streams = (3,)
    PARAMS = (
        Param("ewc", False, help="online elastic weight consolidation"),
        Param("ewc_lambda", 100.0, low=0.0, help="strength of the EWC penalty"),
        Param("ewc_gamma", 1.0, low=0.0, high=1.0,
              help="decay of older tasks' Fisher information (online EWC)"),
    )

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.fisher: list[Any] | None = None
        self.anchor: list[Any] | None = None

    def loss_terms(self, ctx: Context, batch: Any, out: Any) -> list[Any]:
        if self.fisher is None or self.anchor is None or ctx.params.ewc_lambda == 0.0:
            return []
        params = ctx.learner.trainable_list
        diffs = torch._foreach_sub(params, self.anchor)
        terms = [(f * d * d).sum() for f, d in zip(self.fisher, diffs)]
        return [0.5 * ctx.params.ewc_lambda * torch.stack(terms).sum()]

    def end_task(self, ctx: Context, t: int, drawn: Any) -> None:
        learner = ctx.learner
        rows = learner.data.train.rows(t)
        n = min(fisher_samples_for(ctx.params, learner.options.fisher_samples), len(rows))
        pick = ctx.rng.choice(rows, size=n, replace=False)
        new = learner.fisher(pick, t)
        names = learner.trainable_names
        if self.fisher is None:
            self.fisher = [new[k] for k in names]
        else:
            g = ctx.params.ewc_gamma
            self.fisher = [g * f + new[k] for f, k in zip(self.fisher, names)]
        self.anchor = [x.detach().clone() for x in learner.trainable_list]

    @classmethod
    def describe(cls, p: Any) -> dict[str, Any] | None:
        return {"lambda": p.ewc_lambda, "gamma": p.ewc_gamma, "mode": "online",
                "fisher": "empirical diagonal Fisher: mean over training samples of squared "
                          "per-sample gradients (independent of batch size)",
                "penalty": "lambda/2 * sum(F * (theta - theta_old)^2)"}

    @classmethod
    def avalanche(cls, p: Any, n_classes: int) -> AvalancheSpec:
        # evocl: lambda/2 * sum(F (theta - theta*)^2) with F the mean of squared PER-SAMPLE
        # gradients. Avalanche's EWCPlugin: lambda * sum(I (theta - theta*)^2) with I the mean
        # over mini-batches of squared MINI-BATCH gradients, about F / batch_size. Same penalty
        # when lambda_avalanche = lambda_evocl * batch_size / 2.
        batch = int(p.batch_size)
        return AvalancheSpec(
            plugins=[{"class": "avalanche.training.plugins.EWCPlugin",
                      "kwargs": {"ewc_lambda": p.ewc_lambda * batch / 2.0, "mode": "online",
                                 "decay_factor": p.ewc_gamma}}],
            notes=["Fisher normalization differs: evocl averages squared per-sample gradients "
                   "(independent of batch size) and penalizes lambda/2 * sum F (theta - theta*)^2; "
                   "Avalanche averages squared mini-batch gradients (about F / batch_size) and "
                   "penalizes lambda * sum I (theta - theta*)^2. "
                   f"ewc_lambda here is evocl's {p.ewc_lambda:g} * batch_size {batch} / 2; it "
                   "matches only when Avalanche's train_mb_size equals that batch size."])
