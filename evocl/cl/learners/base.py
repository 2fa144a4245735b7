"""What every learner shares: the trainable tensors, autocast, eval mode, assignment.

A learner is one per model family (`evocl.cl.learners.LEARNERS`). It owns what differs between
families -- how rows become a batch and a batch a loss, how a split is scored (one R row),
what a teacher distils, the per-sample loss of the Fisher -- so that strategies are written
once against this interface:

    batch(rows, t) -> Batch            rows of the training split, on the device (``.t``, ``.rows``)
    forward(batch, embeds=None) -> out model outputs (embeds: input embeddings instead of ids)
    embed(batch) -> embeddings         the input embeddings of the batch's tokens
    loss(batch, out) -> scalar         the task loss
    groups(rows) -> ints               replay groups of rows (classes; tasks for a causal LM)
    teacher() -> callable(batch)       a frozen snapshot; called on a batch, its targets
    distill_loss(out, teacher_out, batch, T)
    fisher(rows, t) -> {name: F}       mean squared per-sample gradients
    eval_round(split, after) -> (R row, {extra metric: row})
    begin_task(t, params)              before task t trains (a preference task's reference)
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch


class Learner:
    kind = "base"
    #: the worker's cache of what every candidate computes identically (`evocl.cl.evalcache`)
    shared: Any = None
    #: score, after task t, only the tasks trained so far (j <= t; the cheap pass of a low
    #: fidelity: forgetting and ACC need no more); a learner may ignore it
    seen_only: bool = False

    def __init__(self, model: Any, data: Any, n_tasks: int, device: torch.device,
                 amp: torch.dtype | None, options: Any, has_dropout: bool = False):
        self.model, self.data, self.n_tasks = model, data, n_tasks
        self.device, self.amp, self.options = device, amp, options
        self.has_dropout = has_dropout
        self.trainable = {n: t for n, t in model.named_parameters() if t.requires_grad}
        self.trainable_names = list(self.trainable)
        self.trainable_list = list(self.trainable.values())
        self.current_task = 0

    def begin_task(self, t: int, params: Any) -> None:
        """Work before task t trains (nothing for a classifier)."""

    def forward(self, batch: Any, embeds: torch.Tensor | None = None) -> torch.Tensor:
        """The model's output for ``batch`` (``embeds``: input embeddings instead of its ids)."""
        if embeds is None:
            return self.model(batch.ids, batch.mask)
        return self.model(None, batch.mask, inputs_embeds=embeds)

    def embed(self, batch: Any) -> torch.Tensor:
        return self.model.input_embeddings()(batch.ids)

    def autocast(self) -> Any:
        """bf16/fp16 autocast on a GPU (``amp``), nothing on the CPU."""
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    @contextlib.contextmanager
    def eval_mode(self) -> Iterator[None]:
        was_training = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was_training)

    @torch.no_grad()
    def assign(self, values: list[torch.Tensor]) -> None:
        """Set the trainable tensors (in ``trainable_list`` order) to ``values``."""
        for x, v in zip(self.trainable_list, values):
            x.copy_(v)
