"""The encoder-classifier learner: frozen encoder + LoRA, mean pooling, one linear head.

A batch's loss is the cross-entropy of the head's logits masked per scenario
(`evocl.cl.data.allowed_classes`); R[i][j] is the accuracy on task j's validation rows after
task i; a teacher distils the old classes' logits (cached per training row within a task);
the Fisher is over per-sample CE gradients at the true label.
"""

from __future__ import annotations

import math

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from evocl.cl.data import StreamTensors, allowed_classes, class_masks, old_classes
from evocl.cl.evalcache import EvalRounds
from evocl.cl.learners.base import Learner


@dataclass
class Batch:
    """Rows of the training split on the device; ``t`` is the task being trained."""

    rows: np.ndarray
    ids: torch.Tensor
    mask: torch.Tensor
    y: torch.Tensor
    task: torch.Tensor
    allowed: torch.Tensor
    t: int


def _masked(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    return logits.float().masked_fill(~allowed, float("-inf"))


class ClassifierLearner(Learner):
    kind = "encoder"

    def __init__(self, model: Any, data: StreamTensors, n_tasks: int, device: torch.device,
                 amp: torch.dtype | None, options: Any, has_dropout: bool = False):
        super().__init__(model, data, n_tasks, device, amp, options, has_dropout)
        self.seen, self.own = (m.to(device) for m in class_masks(data, n_tasks))
        self._rounds: EvalRounds | None = None

    # ------------------------------------------------------------------ batches and loss
    def batch(self, rows: np.ndarray, t: int) -> Batch:
        ids, mask, y, tk = (x.to(self.device, non_blocking=True)
                            for x in self.data.train.batch(torch.from_numpy(rows)))
        return Batch(rows, ids, mask, y, tk,
                     allowed_classes(self.data.scenario, self.seen, self.own, t, tk), t)

    def loss(self, batch: Batch, out: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(_masked(out, batch.allowed), batch.y)

    def groups(self, rows: np.ndarray) -> np.ndarray:
        return self.data.train.labels[rows].numpy()

    # ------------------------------------------------------------------ distillation
    def teacher(self) -> "_Teacher":
        return _Teacher(self, {n: x.detach().clone() for n, x in self.trainable.items()})

    def distill_loss(self, out: torch.Tensor, teacher_out: torch.Tensor, batch: Batch,
                     temperature: float) -> torch.Tensor:
        """LwF: T^2 * KL(softmax(teacher/T) || softmax(student/T)) over the classes of the
        tasks before ``batch.t``, mean over the batch."""
        old = old_classes(self.data, batch.t).to(self.device, non_blocking=True)
        s = out.float()[:, old] / temperature
        t = teacher_out.float()[:, old] / temperature
        return F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True,
                        reduction="batchmean") * temperature ** 2

    # ------------------------------------------------------------------ EWC
    def fisher(self, rows: np.ndarray, t: int, chunk: int = 16) -> dict[str, torch.Tensor]:
        """Mean over ``rows`` of squared per-sample gradients of the masked CE loss (fp32,
        eval mode; the encoder gets a 4-D additive mask so vmap sees no data-dependent
        branches)."""
        b = self.batch(rows, t)
        names = self.trainable_names
        params = {n: p.detach() for n, p in self.model.named_parameters() if n in set(names)}
        neg = torch.finfo(torch.float32).min
        model = self.model

        def loss(p: dict[str, torch.Tensor], i: torch.Tensor, m: torch.Tensor, y: torch.Tensor,
                 a: torch.Tensor) -> torch.Tensor:
            enc_mask = (1.0 - m[None, None, None, :].to(torch.float32)) * neg
            logits = functional_call(model, p, (i[None], m[None]), {"encoder_mask": enc_mask})
            logits = logits.float().masked_fill(~a[None], float("-inf"))
            return F.cross_entropy(logits, y[None])

        per_sample = vmap(grad(loss), in_dims=(None, 0, 0, 0, 0), chunk_size=chunk)
        with self.eval_mode():
            g = per_sample(params, b.ids, b.mask, b.y, b.allowed)
        return {n: (g[n].float() ** 2).mean(0) for n in names}

    # ------------------------------------------------------------------ scoring
    def eval_round(self, split: str, after: int) -> tuple[list[float], dict[str, list[float]]]:
        """Accuracy on each task j < n_tasks of ``split`` after training task ``after``
        (``seen_only``: tasks j <= ``after`` only, NaN for the others). The worker's
        `evocl.cl.evalcache` spares what every candidate computes identically."""
        data = getattr(self.data, split)
        upto = after + 1 if self.seen_only and after >= 0 else self.n_tasks
        end = data.offsets[upto]   # tasks are contiguous: the first ``upto`` of them
        order = torch.argsort(data.lengths[:end], stable=True)
        correct = torch.zeros(end, dtype=torch.bool)
        bs = self.options.eval_batch_size
        if self._rounds is None:
            self._rounds = EvalRounds(self.model, self.shared, self.device, self.amp)
        with self.eval_mode(), torch.inference_mode(), self.autocast(), \
                self._rounds.round(split, end, bs, pristine=after < 0) as encode:
            for k in range(0, end, bs):
                idx = order[k:k + bs]
                ids, mask, y, tk = (x.to(self.device) for x in data.batch(idx))
                logits = _masked(encode(k // bs, ids, mask), allowed_classes(
                    self.data.scenario, self.seen, self.own, after, tk))
                correct[idx] = (logits.argmax(-1) == y).cpu()
        return [float(correct[data.offsets[j]:data.offsets[j + 1]].float().mean())
                if data.offsets[j + 1] > data.offsets[j] else 0.0
                if j < upto else math.nan for j in range(self.n_tasks)], {}


class _Teacher:
    """The model as it stood after the previous task; its logits per training row are cached
    lazily (the teacher is frozen during a task): a row drawn again, or replayed, costs no
    second teacher forward."""

    def __init__(self, learner: ClassifierLearner, params: dict[str, torch.Tensor]):
        self.learner, self.params = learner, params
        n_rows, n_classes = len(learner.data.train), learner.data.n_classes
        self.logits = torch.zeros(n_rows, n_classes, device=learner.device)
        self.have = torch.zeros(n_rows, dtype=torch.bool)

    def __call__(self, batch: Batch) -> torch.Tensor:
        lr = self.learner
        idx = torch.from_numpy(batch.rows)
        need = torch.unique(idx[~self.have[idx]])
        if len(need):
            ids, mask, _, _ = (x.to(lr.device, non_blocking=True)
                               for x in lr.data.train.batch(need))
            with torch.no_grad(), _dropout_off(lr.model, lr.has_dropout):
                self.logits[need.to(lr.device, non_blocking=True)] = functional_call(
                    lr.model, self.params, (ids, mask)).float()
            self.have[need] = True
        return self.logits[idx.to(lr.device, non_blocking=True)]


@contextlib.contextmanager
def _dropout_off(model: torch.nn.Module, switch: bool) -> Iterator[None]:
    if not switch:
        yield
        return
    model.eval()
    try:
        yield
    finally:
        model.train()
