"""Knowledge distillation from the previous task's model (LwF, Li & Hoiem 2016).

The teacher is the model as it stood after task t-1 (a frozen copy of the trainable tensors,
run through torch.func.functional_call in eval mode). The loss while learning task t is
CE + alpha * T^2 * KL(teacher_T || student_T) -- CE + alpha * KD, not (1-alpha) CE + alpha
KD, so alpha = 0 is exactly no distillation. What is distilled is the learner's: a classifier
distils the old classes' logits (teacher logits cached per training row within a task); a
causal LM distils the next-token distributions on the target tokens (token-level KD).
"""

from __future__ import annotations

from typing import Any

from evocl.cl.strategies.base import AvalancheSpec, Context, Param, Strategy


class Distill(Strategy):
    name = "distill"
    switch = "distill"
    PARAMS = (
        Param("distill", False, help="distillation from the previous task's model (LwF)"),
        Param("distill_temperature", 2.0, low=0.0, low_open=True, help="temperature T"),
        Param("distill_alpha", 0.5, low=0.0, help="weight of the KD term"),
    )

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.teacher: Any = None

    @classmethod
    def active(cls, p: Any) -> bool:
        return bool(p.distill) and p.distill_alpha > 0.0

    def loss_terms(self, ctx: Context, batch: Any, out: Any) -> list[Any]:
        if self.teacher is None:
            return []
        p = ctx.params
        kd = ctx.learner.distill_loss(out, self.teacher(batch), batch, p.distill_temperature)
        return [p.distill_alpha * kd]

    def end_task(self, ctx: Context, t: int, drawn: Any) -> None:
        self.teacher = ctx.learner.teacher()

    @classmethod
    def describe(cls, p: Any) -> dict[str, Any] | None:
        return {"temperature": p.distill_temperature, "alpha": p.distill_alpha,
                "teacher": "the model after the previous task",
                "loss": "CE + alpha * T^2 * KL(teacher_T || student_T)"}

    @classmethod
    def avalanche(cls, p: Any, n_classes: int) -> AvalancheSpec:
        t = float(p.distill_temperature)
        return AvalancheSpec(
            plugins=[{"class": "avalanche.training.plugins.LwFPlugin",
                      "kwargs": {"alpha": p.distill_alpha * t * t, "temperature": t}}],
            notes=["LwF: Avalanche adds alpha * KL at temperature T without the T^2 factor "
                   "evocl applies, so alpha here is evocl's alpha * T^2."])
