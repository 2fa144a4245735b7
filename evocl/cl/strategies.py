"""Continual-learning strategies: online EWC, experience replay, LwF distillation, FGM.

Each piece is small and functional; the trainer (train.py) composes them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap


# ----------------------------------------------------------------------------- EWC
class OnlineEWC:
    """Online EWC (Schwarz et al. 2018, "Progress & Compress"), diagonal empirical Fisher.

    Fisher of task t: F_t[i] = mean over n samples (x, y) of the task's training data of
    (d/d theta_i  CE(f_theta(x), y))**2 -- squared PER-SAMPLE gradients of the loss at the
    true label, so it does not shrink with the batch size the way squared mini-batch gradients
    do. Online accumulation: F <- gamma * F + F_t; anchor <- parameters after task t.
    Penalty: lambda / 2 * sum_i F[i] * (theta_i - anchor_i)**2, over trainable parameters only
    (LoRA matrices and head). Per-sample gradients come from torch.func (functional_call +
    vmap(grad)) in eval mode (no dropout) and fp32; the encoder gets a 4-D additive mask so
    vmap sees no data-dependent branches.
    """

    def __init__(self, lam: float, gamma: float):
        self.lam = lam
        self.gamma = gamma
        self.fisher: list[torch.Tensor] | None = None
        self.anchor: list[torch.Tensor] | None = None

    def penalty(self, params: list[torch.Tensor]) -> torch.Tensor | None:
        if self.fisher is None or self.anchor is None or self.lam == 0.0:
            return None
        diffs = torch._foreach_sub(params, self.anchor)
        terms = [(f * d * d).sum() for f, d in zip(self.fisher, diffs)]
        return 0.5 * self.lam * torch.stack(terms).sum()

    def consolidate(self, names: list[str], params: list[torch.Tensor],
                    fisher_new: dict[str, torch.Tensor]) -> None:
        new = [fisher_new[n] for n in names]
        if self.fisher is None:
            self.fisher = new
        else:
            self.fisher = [self.gamma * f + g for f, g in zip(self.fisher, new)]
        self.anchor = [p.detach().clone() for p in params]


def empirical_fisher(model: nn.Module, names: list[str], ids: torch.Tensor, mask: torch.Tensor,
                     labels: torch.Tensor, allowed: torch.Tensor,
                     chunk: int = 16) -> dict[str, torch.Tensor]:
    """Mean over the given samples of squared per-sample gradients of the masked CE loss."""
    params = {n: p.detach() for n, p in model.named_parameters() if n in set(names)}
    neg = torch.finfo(torch.float32).min

    def loss(p: dict[str, torch.Tensor], i: torch.Tensor, m: torch.Tensor, y: torch.Tensor,
             a: torch.Tensor) -> torch.Tensor:
        enc_mask = (1.0 - m[None, None, None, :].to(torch.float32)) * neg
        logits = functional_call(model, p, (i[None], m[None]), {"encoder_mask": enc_mask})
        logits = logits.float().masked_fill(~a[None], float("-inf"))
        return F.cross_entropy(logits, y[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0, 0, 0), chunk_size=chunk)
    was_training = model.training
    model.eval()
    try:
        g = per_sample(params, ids, mask, labels, allowed)
    finally:
        model.train(was_training)
    return {n: (g[n].float() ** 2).mean(0) for n in names}


# ----------------------------------------------------------------------------- replay
class ReplayBuffer:
    """Rows of the training split kept for rehearsal, ``per_class`` slots per class.

    Updated at the end of each task (so replay while learning task t rehearses tasks < t):
    reservoir      per-class reservoir sampling over the training rows seen, in the order the
                   trainer drew them (each row retained with probability per_class / n_seen)
    class_balanced each class's slots are split equally over the tasks that had the class and
                   filled with a random subset of that task's rows of the class (in class-
                   incremental streams: a random subset of the class)
    """

    def __init__(self, per_class: int, policy: str, rng: np.random.Generator):
        self.per_class = per_class
        self.policy = policy
        self.rng = rng
        self.slots: dict[int, list[int]] = {}
        self.seen: dict[int, int] = {}
        self.by_task: dict[int, dict[int, list[int]]] = {}
        self._flat = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._flat.shape[0])

    def update(self, task: int, seen_rows: np.ndarray, seen_labels: np.ndarray,
               all_rows: np.ndarray, all_labels: np.ndarray) -> None:
        if self.policy == "reservoir":
            for row, c in zip(seen_rows.tolist(), seen_labels.tolist()):
                slot = self.slots.setdefault(c, [])
                n = self.seen.get(c, 0) + 1
                self.seen[c] = n
                if len(slot) < self.per_class:
                    slot.append(row)
                else:
                    j = int(self.rng.integers(n))
                    if j < self.per_class:
                        slot[j] = row
        else:
            for c in np.unique(all_labels).tolist():
                rows = all_rows[all_labels == c]
                self.by_task.setdefault(c, {})[task] = self.rng.permutation(rows).tolist()
            for c, tasks in self.by_task.items():
                share, extra = divmod(self.per_class, len(tasks))
                kept: list[int] = []
                for k, t in enumerate(sorted(tasks)):
                    kept += tasks[t][: share + (1 if k < extra else 0)]
                self.slots[c] = kept
        self._flat = np.array(sorted(r for s in self.slots.values() for r in s), dtype=np.int64)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows drawn uniformly from the buffer (without replacement when possible)."""
        return rng.choice(self._flat, size=n, replace=n > len(self._flat))


# ----------------------------------------------------------------------------- distillation
def distill_loss(student: torch.Tensor, teacher: torch.Tensor, old: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    """LwF (Li & Hoiem 2016): T^2 * KL(softmax(teacher/T) || softmax(student/T)) over the old
    classes' logits, mean over the batch."""
    s = student.float()[:, old] / temperature
    t = teacher.float()[:, old] / temperature
    return F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True,
                    reduction="batchmean") * temperature ** 2


# ----------------------------------------------------------------------------- FGM
def fgm_perturbation(embeds_grad: torch.Tensor, epsilon: float) -> torch.Tensor:
    """FGM (Miyato et al. 2017): epsilon * g / ||g||_2, the norm taken per sample over all of
    its token embeddings."""
    g = embeds_grad.float()
    norm = g.flatten(1).norm(dim=1).clamp(min=1e-12)
    return (epsilon * g / norm[:, None, None]).to(embeds_grad.dtype)

