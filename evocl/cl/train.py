"""One candidate's run over the stream: train each task, let the strategies work, evaluate.

`run_stream` holds the loop; `evaluate.py` wraps it with seeding, timing and the Result. The
loop knows no strategy by name: it asks the active strategies (`evocl.cl.strategies`, in
their table's order) for batch rows, loss terms, input perturbations, gradient transforms, an
update rule and end-of-task work, and the learner (`evocl.cl.learners`) for everything that
depends on the model family. The per-step path is kept lean: pre-tokenized rows, one gather
per batch, dynamic padding.

A step of task t (batch = new rows + rows the strategies mix in, e.g. replay):
    loss = learner.loss(batch, forward(batch)) + sum of the strategies' loss terms
    backward; [perturbed pass: the task loss on embeddings + perturbation, backward]
    gradient transforms (e.g. A-GEM); clip to norm 1; AdamW step
The forward runs under autocast on a GPU; losses and loss terms are computed in fp32 outside
it. A non-finite loss ends the candidate in fp32; under bf16/fp16 autocast the step is skipped
(as a dynamic loss scaler does) up to a fifth of a task's steps (`_NonFinite`), so that a
configuration that trains on the CPU does not fail only on a GPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from evocl.cl.device_guard import DeviceNonFinite
from evocl.cl.strategies import Context, Strategy, strategy_classes
from evocl.errors import EvaluationError

#: child generators of the candidate's seed: 0 = batch order, the rest per strategy ``streams``
N_STREAMS = 8


@dataclass
class RunOutput:
    R: list[list[float]]
    baseline: list[float]
    test_acc: list[float]
    timings: dict[str, Any] = field(default_factory=dict)
    final_losses: list[float] = field(default_factory=list)
    drift_from_task0: float = 0.0  # L2 distance of the trainable tensors from their state after task 0
    stopped_after: int | None = None  # tasks trained when on_task_end stopped the run
    extra: dict[str, Any] = field(default_factory=dict)  # the learner's extra matrices (e.g. NLL)
    counters: dict[str, Any] = field(default_factory=dict)  # per-strategy counts (e.g. projections)


#: rows per length-sorted group of ``group_by_length``, in batches (as transformers' megabatches)
GROUP_BATCHES = 50


class _TaskSampler:
    """Rows of one task in a seeded random order, reshuffled when exhausted. With ``lengths``
    (``group_by_length``), each run of ``group`` rows of the order is sorted by length, longest
    first, so that a batch holds rows of similar length (little padding) while the order of
    groups, and which rows meet in one, stay random."""

    def __init__(self, rows: np.ndarray, rng: np.random.Generator,
                 lengths: np.ndarray | None = None, group: int = 0):
        self.rows, self.rng = rows, rng
        self.lengths, self.group = lengths, group
        self.order, self.pos = self._shuffled(), 0

    def _shuffled(self) -> np.ndarray:
        order = self.rng.permutation(self.rows)
        if self.lengths is None or self.group < 2:
            return order
        parts = [order[k:k + self.group] for k in range(0, len(order), self.group)]
        return np.concatenate([p[np.argsort(-self.lengths[p], kind="stable")] for p in parts])

    def take(self, n: int) -> np.ndarray:
        out = []
        while n > 0:
            if self.pos >= len(self.order):
                self.order, self.pos = self._shuffled(), 0
            k = min(n, len(self.order) - self.pos)
            out.append(self.order[self.pos:self.pos + k])
            self.pos, n = self.pos + k, n - k
        return np.concatenate(out)


def _lr_factor(step: int, steps: int, warmup_ratio: float, decay: str) -> float:
    warm = int(round(warmup_ratio * steps))
    if step < warm:
        return (step + 1) / warm
    if decay == "constant":
        return 1.0
    return (steps - step) / max(1, steps - warm)


def _optimizer(params: dict[str, torch.Tensor], p: Any, fused: bool = False
               ) -> torch.optim.Optimizer:
    decay = [t for t in params.values() if t.ndim >= 2]
    no_decay = [t for t in params.values() if t.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": p.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=p.lr,
                             **({"fused": True} if fused else {}))


def _checks_on_device(learner: Any, scaler: Any, transforms: list[Any]) -> bool:
    """Decide non-finite steps on the device (`evocl.cl.device_guard`, a fused AdamW, no host
    sync per step): on a GPU, unless a GradScaler or a gradient transform syncs anyway."""
    return learner.device.type == "cuda" and scaler is None and not transforms


def build_strategies(learner: Any, p: Any, seed: int) -> tuple[np.random.Generator,
                                                               list[Strategy]]:
    """(batch-order generator, the active strategies in table order), each with its Context."""
    gens = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(N_STREAMS)]
    active: dict[str, Strategy] = {}
    for cls in strategy_classes():
        if cls.active(p):
            ctx = Context(learner, p, learner.device, tuple(gens[i] for i in cls.streams),
                          others=active)
            active[cls.name] = cls(ctx)
    if sum(type(s).update is not None for s in active.values()) > 1:
        raise EvaluationError("at most one strategy may replace the update rule "
                              f"({[n for n, s in active.items() if type(s).update]})")
    return gens[0], list(active.values())


class _Skip(Exception):
    """A step whose loss or gradients are not finite under reduced-precision autocast."""


class _NonFinite:
    """What a non-finite loss or gradient does. In fp32 it ends the candidate (a diverging
    configuration). Under bf16/fp16 autocast the step is skipped, as a dynamic loss scaler
    skips an overflowing step, so that a configuration that trains on the CPU does not fail
    only on a GPU; more than ``limit`` skipped steps in a task still end it."""

    def __init__(self, amp: torch.dtype | None, steps_per_task: int):
        self.amp = amp
        self.limit = max(2, steps_per_task // 5)
        self.skipped: list[int] = []

    # the loop's hooks for `evocl.cl.device_guard.DeviceNonFinite` (decisions on the device)
    def finish_step(self, opt: Any, value: float, step: int) -> float:
        return value

    def track(self, value: float, last: float) -> float:
        return value if np.isfinite(value) else last

    def task_end(self, t: int, last: float) -> float:
        return last

    def check(self, value: float | torch.Tensor, t: int, step: int) -> float:
        value = float(value)
        if np.isfinite(value):
            return value
        if self.amp is None:
            raise EvaluationError(f"non-finite loss at task {t} step {step}", transient=False)
        while len(self.skipped) <= t:
            self.skipped.append(0)
        self.skipped[t] += 1
        if self.skipped[t] > self.limit:
            raise EvaluationError(f"non-finite loss at task {t} step {step} ({self.skipped[t]} "
                                  f"steps skipped under {str(self.amp)[6:]} autocast)",
                                  transient=False)
        raise _Skip()


def run_stream(learner: Any, p: Any, seed: int, opts: Any,
               on_task_end: Callable[[int, list[list[float]], list[float]], bool] | None = None,
               observe: Callable[[int, Any], None] | None = None,
               test: bool = True) -> RunOutput:
    """Train tasks 0..learner.n_tasks-1 in order; R[i][j] over all j < n_tasks. Uses the torch
    global RNG (dropout): call inside a forked, seeded RNG scope.

    ``on_task_end(t, R, baseline)`` is called after task t's evaluation round (t < n_tasks-1);
    when it returns False the run stops there (``RunOutput.stopped_after`` = t + 1 tasks) and
    no test round is run. ``observe(t, model)`` sees the model before training (t = -1) and
    after each task's training (it must not change it, e.g. greedy generation of samples).
    ``test=False`` skips the test round (the cheap pass of a low fidelity)."""
    n_tasks, data = learner.n_tasks, learner.data
    rng_batch, strategies = build_strategies(learner, p, seed)
    mixers = [s for s in strategies if type(s).n_mix is not Strategy.n_mix]
    perturbers = [s for s in strategies if s.needs_input_grad]
    transforms = [s for s in strategies if type(s).transform_grads is not Strategy.transform_grads]
    updater = next((s for s in strategies if type(s).update is not None), None)
    named, plist = learner.trainable, learner.trainable_list
    scaler = (torch.amp.GradScaler("cuda")
              if learner.amp == torch.float16 and learner.device.type == "cuda" else None)
    timings: dict[str, Any] = {"train": 0.0, "eval": 0.0, "train_per_task": [],
                               "strategies": {s.name: 0.0 for s in strategies}}
    losses: list[float] = []
    extra: dict[str, list[list[float]]] = {}
    on_device = _checks_on_device(learner, scaler, transforms)
    guard = (DeviceNonFinite(learner.amp, p.steps_per_task, learner.device) if on_device
             else _NonFinite(learner.amp, p.steps_per_task))

    def score(split: str, after: int) -> list[float]:
        row, more = learner.eval_round(split, after)
        for k, v in more.items():
            extra.setdefault(f"{split}_{k}", []).append(v)
        return row

    if observe is not None:
        observe(-1, learner.model)
    t0 = time.perf_counter()
    baseline = score("val", -1)
    timings["eval"] += time.perf_counter() - t0
    R: list[list[float]] = []
    after_first: list[torch.Tensor] = []
    for t in range(n_tasks):
        t0, c0 = time.perf_counter(), time.process_time()
        learner.current_task = t
        learner.begin_task(t, p)
        sampler = _TaskSampler(data.train.rows(t), rng_batch,
                               data.train.lengths.numpy() if getattr(opts, "group_by_length",
                                                                     False) else None,
                               GROUP_BATCHES * p.batch_size)
        opt = _optimizer(named, p, fused=on_device)
        drawn: list[np.ndarray] = []
        step = 0

        def one_step(rows: np.ndarray) -> float:
            batch = learner.batch(rows, t)
            embeds = None
            with learner.autocast():
                if perturbers:
                    embeds = learner.embed(batch).detach().requires_grad_(True)
                out = learner.forward(batch, embeds)
            loss = learner.loss(batch, out)
            for s in strategies:
                for term in s.loss_terms(s.ctx, batch, out):
                    loss = loss + term
            try:
                value = guard.check(loss.detach(), t, step)
                (scaler.scale(loss) if scaler else loss).backward()
                for s in perturbers:
                    delta = s.perturb(s.ctx, batch, embeds.grad)  # type: ignore[union-attr]
                    with learner.autocast():
                        adv = learner.forward(batch, embeds.detach() + delta)  # type: ignore[union-attr]
                    adv_loss = learner.loss(batch, adv)
                    guard.check(adv_loss.detach(), t, step)
                    (scaler.scale(adv_loss) if scaler else adv_loss).backward()
                if scaler:
                    scaler.unscale_(opt)
                for s in transforms:
                    new = s.transform_grads(s.ctx, [x.grad for x in plist])
                    if new is not None:
                        for x, g in zip(plist, new):
                            x.grad = g
                norm = torch.nn.utils.clip_grad_norm_(plist, 1.0, foreach=True)
                if learner.amp is not None and scaler is None:
                    guard.check(norm.detach(), t, step)  # inf gradients: skip, as a scaler would
            except _Skip:
                opt.zero_grad(set_to_none=True)
                return float("nan")
            value = guard.finish_step(opt, value, step)
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            opt.zero_grad(set_to_none=True)
            return value

        loss_val = float("nan")
        last_finite = float("nan")
        for step in range(p.steps_per_task):
            for g in opt.param_groups:
                g["lr"] = p.lr * _lr_factor(step, p.steps_per_task, p.warmup_ratio, opts.lr_decay)
            wants = [(s, s.n_mix(s.ctx)) for s in mixers]
            new_rows = sampler.take(p.batch_size - sum(n for _, n in wants))
            drawn.append(new_rows)
            mixed = [s.mix(s.ctx, n) for s, n in wants if n > 0]
            rows = np.concatenate([new_rows, *mixed]) if mixed else new_rows
            loss_val = (updater.update(updater.ctx, rows, one_step) if updater is not None
                        else one_step(rows))
            last_finite = guard.track(loss_val, last_finite)
        losses.append(guard.task_end(t, last_finite))
        timings["train"] += time.perf_counter() - t0
        # CPU seconds of the process (all its threads): the cost on a machine shared with others
        timings["train_cpu"] = timings.get("train_cpu", 0.0) + time.process_time() - c0
        timings["train_per_task"].append(time.perf_counter() - t0)

        seen_rows = np.concatenate(drawn)
        for s in strategies:
            t1 = time.perf_counter()
            s.end_task(s.ctx, t, seen_rows)
            timings["strategies"][s.name] += time.perf_counter() - t1
        if t == 0:
            after_first = [x.detach().clone() for x in plist]
        if observe is not None:
            observe(t, learner.model)

        t0 = time.perf_counter()
        R.append(score("val", t))
        timings["eval"] += time.perf_counter() - t0
        if on_task_end is not None and t < n_tasks - 1 and not on_task_end(t, R, baseline):
            timings.update(getattr(learner, "timings", {}))
            return RunOutput(R=R, baseline=baseline, test_acc=[], timings=timings,
                             final_losses=losses, stopped_after=t + 1, extra=extra,
                             counters=_counters(strategies, guard))
    t0 = time.perf_counter()
    test_acc = score("test", n_tasks - 1) if test else []
    timings["test"] = time.perf_counter() - t0
    timings.update(getattr(learner, "timings", {}))  # the learner's scoring phases
    drift = torch.stack([(a.detach() - b).float().norm() for a, b in zip(plist, after_first)]).norm()
    return RunOutput(R=R, baseline=baseline, test_acc=test_acc, timings=timings,
                     final_losses=losses, drift_from_task0=float(drift), extra=extra,
                     counters=_counters(strategies, guard))


def _counters(strategies: list[Strategy], guard: _NonFinite) -> dict[str, Any]:
    out = {s.name: c for s in strategies if (c := s.counters())}
    if any(guard.skipped):
        out["nonfinite_steps_skipped"] = guard.skipped
    return out
