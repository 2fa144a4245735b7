"""One candidate's run over the stream: train each task, consolidate, evaluate.

`run_stream` holds the loop; `evaluate.py` wraps it with seeding, timing and the Result. The
per-step path is kept lean: pre-tokenized rows, one gather per batch, dynamic padding, no
per-step allocations beyond the forward/backward itself.

Loss on a step of task t (batch = new rows + a replay_ratio share from the buffer):
    CE(masked logits, y) + distill_alpha * KD_old  + EWC penalty   [+ CE on FGM-perturbed
    embeddings, as a second backward on the same batch]
KD is LwF's T^2-scaled KL from the model as it stood after task t-1 (a frozen copy of the
trainable tensors, run through torch.func.functional_call, eval mode) over the classes of
tasks < t; teacher logits are cached per training row within a task.
CE + alpha * KD (not (1-alpha) CE + alpha KD): alpha = 0 is exactly no distillation.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from evocl.cl.data import StreamTensors, allowed_classes, class_masks, old_classes
from evocl.cl.model import CLModel
from evocl.cl.params import CLParams
from evocl.cl.strategies import (OnlineEWC, ReplayBuffer, distill_loss, empirical_fisher,
                                 fgm_perturbation)
from evocl.errors import EvaluationError


@dataclass(frozen=True)
class Options:
    """Evaluator options (not searched): evaluation caps and costs, schedule shape."""

    eval_batch_size: int = 128
    fisher_samples: int | None = None  # None: fisher_samples_for(params)
    lr_decay: str = "linear"  # or "constant" after warm-up, per task


@dataclass
class RunOutput:
    R: list[list[float]]
    baseline: list[float]
    test_acc: list[float]
    timings: dict[str, Any] = field(default_factory=dict)
    final_losses: list[float] = field(default_factory=list)
    drift_from_task0: float = 0.0  # L2 distance of the trainable tensors from their state after task 0
    stopped_after: int | None = None  # tasks trained when on_task_end stopped the run


class _TaskSampler:
    """Rows of one task in a seeded random order, reshuffled when exhausted."""

    def __init__(self, rows: np.ndarray, rng: np.random.Generator):
        self.rows, self.rng = rows, rng
        self.order, self.pos = rng.permutation(rows), 0

    def take(self, n: int) -> np.ndarray:
        out = []
        while n > 0:
            if self.pos >= len(self.order):
                self.order, self.pos = self.rng.permutation(self.rows), 0
            k = min(n, len(self.order) - self.pos)
            out.append(self.order[self.pos:self.pos + k])
            self.pos, n = self.pos + k, n - k
        return np.concatenate(out)


def fisher_samples_for(p: CLParams, requested: int | None) -> int:
    """Samples for a task's Fisher: ``requested``, or by default steps*batch/16 within
    [16, 64] -- a per-sample gradient costs ~1.4x a batched training sample, so the Fisher
    stays under ~10% of the task's training time."""
    if requested is not None:
        return int(requested)
    return int(min(64, max(16, p.steps_per_task * p.batch_size // 16)))


def _lr_factor(step: int, steps: int, warmup_ratio: float, decay: str) -> float:
    warm = int(round(warmup_ratio * steps))
    if step < warm:
        return (step + 1) / warm
    if decay == "constant":
        return 1.0
    return (steps - step) / max(1, steps - warm)


def _optimizer(params: dict[str, torch.Tensor], p: CLParams) -> torch.optim.Optimizer:
    decay = [t for t in params.values() if t.ndim >= 2]
    no_decay = [t for t in params.values() if t.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": p.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=p.lr)


def _masked(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    return logits.float().masked_fill(~allowed, float("-inf"))


def run_stream(model: CLModel, data: StreamTensors, p: CLParams, seed: int, n_tasks: int,
               device: torch.device, amp: torch.dtype | None, opts: Options,
               on_task_end: Callable[[int, list[list[float]], list[float]], bool] | None = None,
               ) -> RunOutput:
    """Train tasks 0..n_tasks-1 in order; R[i][j] over j < n_tasks. Uses the torch global RNG
    (dropout): call inside a forked, seeded RNG scope.

    ``on_task_end(t, R, baseline)`` is called after task t's evaluation round (t < n_tasks-1);
    when it returns False the run stops there (``RunOutput.stopped_after`` = t + 1 tasks) and
    no test round is run."""
    rng_batch, rng_buffer, rng_replay, rng_fisher = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    seen, own = (m.to(device) for m in class_masks(data, n_tasks))
    named = {n: t for n, t in model.named_parameters() if t.requires_grad}
    names, plist = list(named), list(named.values())
    ewc = OnlineEWC(p.ewc_lambda, p.ewc_gamma) if p.ewc else None
    buffer = ReplayBuffer(p.replay_buffer_per_class, p.replay_policy, rng_buffer) \
        if p.replay else None
    use_kd = p.distill and p.distill_alpha > 0.0
    teacher: dict[str, torch.Tensor] | None = None
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    autocast = (lambda: torch.autocast(device.type, dtype=amp)) if amp is not None \
        else contextlib.nullcontext
    timings: dict[str, Any] = {"train": 0.0, "fisher": 0.0, "eval": 0.0, "train_per_task": []}
    losses: list[float] = []

    t0 = time.perf_counter()
    baseline = _eval_round(model, data, data.val, seen, own, -1, n_tasks, device, autocast, opts)
    timings["eval"] += time.perf_counter() - t0
    R: list[list[float]] = []
    after_first: list[torch.Tensor] = []
    for t in range(n_tasks):
        t0 = time.perf_counter()
        sampler = _TaskSampler(data.train.rows(t), rng_batch)
        old = old_classes(data, t).to(device) if (use_kd and t > 0) else None
        cache = _TeacherCache(len(data.train), data.n_classes, device) if old is not None \
            else None
        opt = _optimizer(named, p)
        drawn: list[np.ndarray] = []
        loss_val = float("nan")
        for step in range(p.steps_per_task):
            for g in opt.param_groups:
                g["lr"] = p.lr * _lr_factor(step, p.steps_per_task, p.warmup_ratio, opts.lr_decay)
            n_rep = 0
            if buffer is not None and p.replay_ratio > 0.0 and len(buffer) > 0:
                n_rep = min(int(round(p.replay_ratio * p.batch_size)), p.batch_size - 1)
            new_rows = sampler.take(p.batch_size - n_rep)
            drawn.append(new_rows)
            rows = new_rows if n_rep == 0 else np.concatenate(
                [new_rows, buffer.sample(n_rep, rng_replay)])  # type: ignore[union-attr]
            ids, mask, y, tk = (x.to(device, non_blocking=True)
                                for x in data.train.batch(torch.from_numpy(rows)))
            allowed = allowed_classes(data.scenario, seen, own, t, tk)
            embeds = None
            with autocast():
                if p.adversarial:
                    embeds = model.input_embeddings()(ids).detach().requires_grad_(True)
                    logits = model(None, mask, inputs_embeds=embeds)
                else:
                    logits = model(ids, mask)
                loss = F.cross_entropy(_masked(logits, allowed), y)
                if teacher is not None and old is not None:
                    t_logits = _teacher_cached(model, teacher, cache, data, rows, device, p)
                    loss = loss + p.distill_alpha * distill_loss(
                        logits, t_logits, old, p.distill_temperature)
            if ewc is not None:
                pen = ewc.penalty(plist)
                if pen is not None:
                    loss = loss + pen
            loss_val = float(loss.detach())
            if not np.isfinite(loss_val):
                raise EvaluationError(f"non-finite loss at task {t} step {step}", transient=False)
            (scaler.scale(loss) if scaler else loss).backward()
            if embeds is not None:
                delta = fgm_perturbation(embeds.grad, p.adv_epsilon)  # type: ignore[arg-type]
                with autocast():
                    adv = model(None, mask, inputs_embeds=embeds.detach() + delta)
                    adv_loss = F.cross_entropy(_masked(adv, allowed), y)
                if not torch.isfinite(adv_loss):
                    raise EvaluationError(f"non-finite loss at task {t} step {step}",
                                          transient=False)
                (scaler.scale(adv_loss) if scaler else adv_loss).backward()
            if scaler:
                scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(plist, 1.0, foreach=True)
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            opt.zero_grad(set_to_none=True)
        losses.append(loss_val)
        timings["train"] += time.perf_counter() - t0
        timings["train_per_task"].append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        if ewc is not None:
            task_rows = data.train.rows(t)
            n_fisher = min(fisher_samples_for(p, opts.fisher_samples), len(task_rows))
            pick = rng_fisher.choice(task_rows, size=n_fisher, replace=False)
            ids, mask, y, tk = (x.to(device) for x in data.train.batch(torch.from_numpy(pick)))
            fisher = empirical_fisher(model, names, ids, mask, y,
                                      allowed_classes(data.scenario, seen, own, t, tk))
            ewc.consolidate(names, plist, fisher)
        timings["fisher"] += time.perf_counter() - t0
        if buffer is not None:
            seen_rows = _first_occurrences(np.concatenate(drawn))
            task_rows = data.train.rows(t)
            buffer.update(t, seen_rows, data.train.labels[seen_rows].numpy(), task_rows,
                          data.train.labels[task_rows].numpy())
        if use_kd:
            teacher = {n: x.detach().clone() for n, x in named.items()}
        if t == 0:
            after_first = [x.detach().clone() for x in plist]

        t0 = time.perf_counter()
        R.append(_eval_round(model, data, data.val, seen, own, t, n_tasks, device, autocast,
                             opts))
        timings["eval"] += time.perf_counter() - t0
        if on_task_end is not None and t < n_tasks - 1 and not on_task_end(t, R, baseline):
            return RunOutput(R=R, baseline=baseline, test_acc=[], timings=timings,
                             final_losses=losses, drift_from_task0=0.0, stopped_after=t + 1)
    t0 = time.perf_counter()
    test = _eval_round(model, data, data.test, seen, own, n_tasks - 1, n_tasks, device,
                       autocast, opts)
    timings["test"] = time.perf_counter() - t0
    drift = torch.stack([(a.detach() - b).float().norm() for a, b in zip(plist, after_first)]).norm()
    return RunOutput(R=R, baseline=baseline, test_acc=test, timings=timings,
                     final_losses=losses, drift_from_task0=float(drift))


def _first_occurrences(rows: np.ndarray) -> np.ndarray:
    _, first = np.unique(rows, return_index=True)
    return rows[np.sort(first)]


class _TeacherCache:
    """Teacher logits per training row for the current task (the teacher is frozen during a
    task), filled lazily: a row drawn again, or replayed, costs no second teacher forward."""

    def __init__(self, n_rows: int, n_classes: int, device: torch.device):
        self.logits = torch.zeros(n_rows, n_classes, device=device)
        self.have = torch.zeros(n_rows, dtype=torch.bool)


def _teacher_cached(model: CLModel, teacher: dict[str, torch.Tensor], cache: Any,
                    data: StreamTensors, rows: np.ndarray, device: torch.device,
                    p: CLParams) -> torch.Tensor:
    idx = torch.from_numpy(rows)
    need = torch.unique(idx[~cache.have[idx]])
    if len(need):
        ids, mask, _, _ = (x.to(device, non_blocking=True) for x in data.train.batch(need))
        with torch.no_grad(), _eval_mode(model, p.lora_dropout > 0.0):
            cache.logits[need.to(device)] = functional_call(model, teacher, (ids, mask)).float()
        cache.have[need] = True
    return cache.logits[idx.to(device)]


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module, switch: bool) -> Iterator[None]:
    if not switch:
        yield
        return
    model.eval()
    try:
        yield
    finally:
        model.train()


def _eval_round(model: CLModel, data: StreamTensors, split: Any, seen: torch.Tensor,
                own: torch.Tensor, after: int, n_tasks: int, device: torch.device,
                autocast: Any, opts: Options) -> list[float]:
    """Accuracy on each task j < n_tasks of ``split`` after training task ``after``."""
    end = split.offsets[n_tasks]
    order = torch.argsort(split.lengths[:end], stable=True)
    correct = torch.zeros(end, dtype=torch.bool)
    model.eval()
    try:
        with torch.inference_mode(), autocast():
            for k in range(0, end, opts.eval_batch_size):
                idx = order[k:k + opts.eval_batch_size]
                ids, mask, y, tk = (x.to(device) for x in split.batch(idx))
                logits = _masked(model(ids, mask), allowed_classes(
                    data.scenario, seen, own, after, tk))
                correct[idx] = (logits.argmax(-1) == y).cpu()
    finally:
        model.train()
    return [float(correct[split.offsets[j]:split.offsets[j + 1]].float().mean())
            if split.offsets[j + 1] > split.offsets[j] else 0.0 for j in range(n_tasks)]
