"""Adversarial training with FGM (Miyato et al. 2017) on the input embeddings.

After the backward pass of a batch, the perturbation epsilon * g / ||g||_2 (the norm taken per
sample over all of its token embeddings, g the gradient of the loss at the embeddings) is
added to the embeddings and the task loss of the perturbed batch is back-propagated too (the
gradients of both passes add up before the optimizer step).
"""

from __future__ import annotations

from typing import Any

from evocl.cl.strategies.base import AvalancheSpec, Context, Param, Strategy


def fgm_perturbation(embeds_grad: Any, epsilon: float) -> Any:
    """epsilon * g / ||g||_2, per sample over all of its token embeddings."""
    g = embeds_grad.float()
    norm = g.flatten(1).norm(dim=1).clamp(min=1e-12)
    return (epsilon * g / norm[:, None, None]).to(embeds_grad.dtype)


class FGM(Strategy):
    name = "adversarial"
    switch = "adversarial"
    needs_input_grad = True
    PARAMS = (
        Param("adversarial", False, help="FGM adversarial training on the input embeddings"),
        Param("adv_epsilon", 0.01, low=0.0, help="L2 norm of the perturbation per sample"),
    )

    def perturb(self, ctx: Context, batch: Any, grad: Any) -> Any:
        return fgm_perturbation(grad, ctx.params.adv_epsilon)

    @classmethod
    def describe(cls, p: Any) -> dict[str, Any] | None:
        return {"method": "FGM on input embeddings", "epsilon": p.adv_epsilon}

    @classmethod
    def avalanche(cls, p: Any, n_classes: int) -> AvalancheSpec:
        return AvalancheSpec(notes=["adversarial (FGM) training has no Avalanche plugin; it is "
                                    "left out."])
