"""The causal-LM learner: a frozen causal LM + LoRA, next-token loss on the target tokens.

A row of a generative stream is a token sequence with a target mask (`target_mask[p] = 1`:
token p is predicted from the tokens before it: a prompt/response pair's response tokens, or
every token but the first of a plain text). The LM head is applied only at the positions
whose next token is a target, so the vocabulary projection is paid for targets alone.

    loss        mean token cross-entropy over the batch's target tokens
    R[i][j]     teacher-forced next-token accuracy on task j's held-out target tokens after
                task i (micro-averaged over tokens): bounded, higher is better, so ACC, BWT,
                FWT, forgetting and plasticity keep their definitions; the matrix of mean
                token NLL comes with it (``matrices.val_nll``), and ``perplexity``
    distillation token-level KD: T^2 * KL(teacher_T || student_T) over the full vocabulary at
                every target position, mean over target tokens; the teacher is the model after
                the previous task (its LoRA tensors through functional_call, eval mode)
    Fisher      squared gradients of each sample's mean target NLL, one sample at a time (a
                causal LM's attention masks are not vmap-friendly): memory stays that of one
                sample
    replay      groups are tasks (``replay_buffer_per_class`` rows per task)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from evocl.cl.learners.base import Learner

#: target positions per LM-head chunk in evaluation (bounds the [n, vocab] logits in memory)
EVAL_CHUNK = 512


@dataclass
class Batch:
    rows: np.ndarray
    ids: torch.Tensor
    mask: torch.Tensor
    sel: torch.Tensor      # bool [B, L-1]: position p predicts a target token p+1
    y: torch.Tensor        # the target tokens, in sel's order
    task: torch.Tensor
    t: int


class CausalLMLearner(Learner):
    kind = "causal_lm"

    def _batch(self, split: Any, idx: torch.Tensor, t: int, rows: np.ndarray) -> Batch:
        ids, mask, tgt, tk = (x.to(self.device, non_blocking=True) for x in split.lm_batch(idx))
        sel = tgt[:, 1:].bool() & mask[:, 1:].bool()
        return Batch(rows, ids, mask, sel, ids[:, 1:][sel], tk, t)

    def batch(self, rows: np.ndarray, t: int) -> Batch:
        return self._batch(self.data.train, torch.from_numpy(rows), t, rows)

    def _target_logits(self, batch: Batch, hidden: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.model.logits(hidden[:, :-1][batch.sel]).float()

    def loss(self, batch: Batch, out: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self._target_logits(batch, out), batch.y)

    def groups(self, rows: np.ndarray) -> np.ndarray:
        return self.data.train.task[rows].numpy()

    # ------------------------------------------------------------------ distillation
    def teacher(self) -> "_Teacher":
        return _Teacher(self, {n: x.detach().clone() for n, x in self.trainable.items()})

    def distill_loss(self, out: torch.Tensor, teacher_out: torch.Tensor, batch: Batch,
                     temperature: float) -> torch.Tensor:
        """T^2 * KL(softmax(teacher/T) || softmax(student/T)) at every target position, mean
        over the target tokens."""
        s = self._target_logits(batch, out) / temperature
        t = teacher_out / temperature
        return F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True,
                        reduction="batchmean") * temperature ** 2

    # ------------------------------------------------------------------ EWC
    def fisher(self, rows: np.ndarray, t: int, chunk: int = 1) -> dict[str, torch.Tensor]:
        """Mean over ``rows`` of the squared gradient of each sample's mean target NLL (fp32,
        eval mode), one sample at a time."""
        acc = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in self.trainable.items()}
        params = self.trainable_list
        with self.eval_mode():
            for r in rows:
                b = self.batch(np.array([r]), t)
                if not bool(b.sel.any()):
                    continue
                with self.autocast():
                    hidden = self.forward(b)
                grads = torch.autograd.grad(self.loss(b, hidden), params, allow_unused=True)
                for (n, _), g in zip(self.trainable.items(), grads):
                    if g is not None:
                        acc[n] += g.float() ** 2
        return {n: a / max(1, len(rows)) for n, a in acc.items()}

    # ------------------------------------------------------------------ scoring
    def eval_round(self, split: str, after: int) -> tuple[list[float], dict[str, list[float]]]:
        """Token accuracy and mean token NLL on each task j < n_tasks of ``split``."""
        data = getattr(self.data, split)
        end = data.offsets[self.n_tasks]
        order = torch.argsort(data.lengths[:end], stable=True)
        correct = torch.zeros(self.n_tasks, dtype=torch.float64)
        nll = torch.zeros(self.n_tasks, dtype=torch.float64)
        count = torch.zeros(self.n_tasks, dtype=torch.float64)
        bs = self.options.eval_batch_size
        with self.eval_mode(), torch.inference_mode():
            for k in range(0, end, bs):
                idx = order[k:k + bs]
                b = self._batch(data, idx, after, np.empty(0, dtype=np.int64))
                with self.autocast():
                    hidden = self.model(b.ids, b.mask)[:, :-1][b.sel]
                row_task = b.task[:, None].expand_as(b.sel)[b.sel]
                for c in range(0, len(b.y), EVAL_CHUNK):
                    with self.autocast():
                        logits = self.model.logits(hidden[c:c + EVAL_CHUNK]).float()
                    y = b.y[c:c + EVAL_CHUNK]
                    task = row_task[c:c + EVAL_CHUNK].cpu()
                    hit = (logits.argmax(-1) == y).double().cpu()
                    tok_nll = F.cross_entropy(logits, y, reduction="none").double().cpu()
                    correct.index_add_(0, task, hit)
                    nll.index_add_(0, task, tok_nll)
                    count.index_add_(0, task, torch.ones_like(hit))
        acc = [float(correct[j] / count[j]) if count[j] > 0 else 0.0 for j in range(self.n_tasks)]
        mean_nll = [float(nll[j] / count[j]) if count[j] > 0 else 0.0 for j in range(self.n_tasks)]
        return acc, {"nll": mean_nll}


class _Teacher:
    """The model as it stood after the previous task: its logits at the batch's target
    positions (not cached: a vocabulary-sized row per token is too big to keep)."""

    def __init__(self, learner: CausalLMLearner, params: dict[str, torch.Tensor]):
        self.learner, self.params = learner, params

    def __call__(self, batch: Batch) -> torch.Tensor:
        lr = self.learner
        with torch.no_grad(), lr.eval_mode() if lr.has_dropout else contextlib.nullcontext():
            with lr.autocast():
                hidden = functional_call(lr.model, self.params, (batch.ids, batch.mask))
            return lr._target_logits(batch, hidden)
