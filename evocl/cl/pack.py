"""A pack: K candidates trained at once on one frozen backbone (issue 20).

`Pack` holds one `SharedBackbone` (`evocl.cl.multilora`) and up to ``size`` `Member`s, each a
candidate's whole run state: its adapters and head, its learner, strategies, optimizer, batch
sampler, task and step, accuracy rows. One `Pack.step` trains every member by one step:

    each member draws its rows (its batch order, its strategies' mixed-in rows) -> its batch
    the batches are concatenated (right-padded to the longest, mask 0) -> one forward of the
        frozen layers over all rows; each member's LoRA delta on its own row slice only
    each member's loss over its own rows (+ its strategies' loss terms); non-finite ones are
        left out; the kept losses are summed; one backward (disjoint parameters: each adapter
        gets its own gradient)
    per member: its gradient transforms (A-GEM), clip to norm 1, its own AdamW step (its lr,
        schedule, weight decay), zero grad

A member that ends its task runs, alone, what `evocl.cl.train.run_stream` runs there (its
strategies' end-of-task work, its evaluation round, the scheduler's ``on_task_end``); one that
finishes, is pruned or fails leaves, and `Pack.join` can put the next candidate in its slot.
The numbers a member draws are its own (batch order and strategy draws from its seed as alone,
LoRA dropout from its own generator), so the pack changes a candidate's result only by the
rounding of different matrix shapes -- except LoRA dropout: alone it draws from the global
torch RNG, in the pack from the member's generator (same distribution, other masks).

Strategies: replay, online EWC (its own Fisher), distillation (its own teacher: its adapters
after the previous task, a no-grad pass routed to it alone), A-GEM (its own memory gradient)
and FGM (the forward takes the input embeddings as a leaf; each perturbing member's
perturbation comes from its own rows' gradient, and their second passes are one more packed
forward) are packed; MER (its own update rule around several inner steps) and gradient
checkpointing (recomputation would see another route) are not: `Pack.join` raises `NotPackable` with the
reason, and the caller runs that candidate solo (`evocl.cl.evaluation.evaluate`).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from evocl.cl.evaluation import (_seeded, autocast_dtype, build_result, evaluate,
                                 fidelity_hook, resolve_device)
from evocl.cl.evalcache import worker_cache
from evocl.cl.learners import LEARNERS
from evocl.cl.model import build_model
from evocl.cl.multilora import (NotPackable, PackedClassifier, PackedLM, SharedBackbone,
                                adapters_from_peft, shared_hidden)
from evocl.cl.names import Options
from evocl.cl.params import resolve
from evocl.cl.train import (GROUP_BATCHES, RunOutput, Strategy, _counters, _lr_factor,
                            _NonFinite, _optimizer, _Skip, _TaskSampler, build_strategies)
from evocl.errors import EvaluationError, UserError
from evocl.records import Candidate, Result

#: strategies whose hooks a packed step runs as they are (the rest: `NotPackable`)
PACKED_STRATEGIES = ("replay", "ewc", "distill", "agem", "adversarial")


class Member:
    """One candidate inside a pack: everything `run_stream` keeps for it, step by step."""

    def __init__(self, pack: "Pack", candidate: Candidate,
                 on_task_end: Callable[[dict[str, Any]], bool] | None):
        self.pack, self.candidate, self.start = pack, candidate, time.perf_counter()
        self.key = candidate.id
        p = self.params = resolve(candidate.config)
        opts, seed, dev = pack.options, candidate.seed, pack.device
        if opts.gradient_checkpointing:
            raise NotPackable("gradient_checkpointing recomputes a forward outside the pack's route")
        with _seeded(seed, dev):  # the adapters' and head's initial values, as alone
            peft = build_model(pack.backbone, p, pack.data.n_classes, seed, share_frozen=True)
        gen = torch.Generator(device=dev)
        gen.manual_seed(int(seed) + 0x5EED)
        if pack.causal:
            adapters = adapters_from_peft(peft.lm, dev, gen)
            model: Any = PackedLM(pack.shared, self.key, adapters)
        else:
            adapters = adapters_from_peft(peft.encoder, dev, gen)
            model = PackedClassifier(pack.shared, self.key, adapters, peft.head.to(dev))
        del peft
        pack.shared.attach(self.key, adapters)
        try:
            model.train()
            lr = self.learner = LEARNERS.load(pack.kind)(
                model, pack.data, pack.n_tasks, dev, pack.amp, opts,
                has_dropout=p.lora_dropout > 0.0)
            lr.shared = worker_cache(pack.backbone.model, pack.data)  # as alone
            if pack.causal:  # one chunk of logits at a time in the backward, not K candidates'
                lr.checkpoint_logits = True
            lr.tokenizer = pack.backbone.tokenizer
            self.rng_batch, self.strategies = build_strategies(lr, p, seed)
            other = [s.name for s in self.strategies if s.name not in PACKED_STRATEGIES]
            if other:
                raise NotPackable(f"strategy {other[0]} is not packed")
        except BaseException:
            pack.shared.detach(self.key)
            raise
        self.mixers = [s for s in self.strategies if type(s).n_mix is not Strategy.n_mix]
        self.perturbers = [s for s in self.strategies if s.needs_input_grad]
        self.transforms = [s for s in self.strategies
                           if type(s).transform_grads is not Strategy.transform_grads]
        self.plist = lr.trainable_list
        self.n_trainable = sum(x.numel() for x in self.plist)
        self.guard = _NonFinite(pack.amp, p.steps_per_task)
        self.hook = fidelity_hook(on_task_end, lr, pack.n_tasks, self.n_trainable, self.start,
                                  dev)
        self.timings: dict[str, Any] = {"train": 0.0, "eval": 0.0, "train_per_task": [],
                                        "strategies": {s.name: 0.0 for s in self.strategies},
                                        "pack_rows_mean": 0.0}
        self.extra: dict[str, list[list[float]]] = {}
        self.losses: list[float] = []
        self.R: list[list[float]] = []
        self.after_first: list[torch.Tensor] = []
        self.n_steps = 0
        self.baseline = self._score("val", -1)
        self._begin_task(0)

    # ------------------------------------------------------------------ the loop, per member
    def _score(self, split: str, after: int) -> list[float]:
        t0 = time.perf_counter()
        row, more = self.learner.eval_round(split, after)
        for k, v in more.items():
            self.extra.setdefault(f"{split}_{k}", []).append(v)
        self.timings["eval" if split == "val" else "test"] = \
            self.timings.get("eval" if split == "val" else "test", 0.0) + time.perf_counter() - t0
        return row

    def _begin_task(self, t: int) -> None:
        p, data = self.params, self.pack.data
        self.t, self.step_in_task, self.drawn, self.last_finite = t, 0, [], float("nan")
        self.learner.current_task = t
        group = getattr(self.pack.options, "group_by_length", False)
        self.sampler = _TaskSampler(data.train.rows(t), self.rng_batch,
                                    data.train.lengths.numpy() if group else None,
                                    GROUP_BATCHES * p.batch_size)
        self.opt = _optimizer(self.learner.trainable, p)
        self.task_t0 = time.perf_counter()
        self.task_train = 0.0

    def next_rows(self) -> np.ndarray:
        """This step's rows (new ones, then what the strategies mix in); sets the lr."""
        p = self.params
        for g in self.opt.param_groups:
            g["lr"] = p.lr * _lr_factor(self.step_in_task, p.steps_per_task, p.warmup_ratio,
                                        self.pack.options.lr_decay)
        wants = [(s, s.n_mix(s.ctx)) for s in self.mixers]
        new_rows = self.sampler.take(p.batch_size - sum(n for _, n in wants))
        self.drawn.append(new_rows)
        mixed = [s.mix(s.ctx, n) for s, n in wants if n > 0]
        return np.concatenate([new_rows, *mixed]) if mixed else new_rows

    def loss(self, batch: Any, out: Any) -> torch.Tensor:
        loss = self.learner.loss(batch, out)
        for s in self.strategies:
            for term in s.loss_terms(s.ctx, batch, out):
                loss = loss + term
        return loss

    def apply(self) -> None:
        """After the backward: transforms, clipping, this member's optimizer step."""
        for s in self.transforms:
            new = s.transform_grads(s.ctx, [x.grad for x in self.plist])
            if new is not None:
                for x, g in zip(self.plist, new):
                    x.grad = g
        norm = torch.nn.utils.clip_grad_norm_(self.plist, 1.0, foreach=True)
        if self.learner.amp is not None:
            self.guard.check(norm.detach(), self.t, self.step_in_task)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def after_step(self, value: float, seconds: float, rows_in_pack: int) -> Result | None:
        """Count the step; at the end of a task, the task's end (a Result when it leaves)."""
        self.last_finite = self.guard.track(value, self.last_finite)
        self.task_train += seconds
        self.n_steps += 1
        self.timings["pack_rows_mean"] += (rows_in_pack - self.timings["pack_rows_mean"]) \
            / self.n_steps
        self.step_in_task += 1
        if self.step_in_task < self.params.steps_per_task:
            return None
        return self._end_task()

    def _end_task(self) -> Result | None:
        t, n_tasks = self.t, self.pack.n_tasks
        self.losses.append(self.guard.task_end(t, self.last_finite))
        self.timings["train"] += self.task_train
        self.timings["train_per_task"].append(self.task_train)
        seen_rows = np.concatenate(self.drawn)
        for s in self.strategies:
            t1 = time.perf_counter()
            s.end_task(s.ctx, t, seen_rows)
            self.timings["strategies"][s.name] += time.perf_counter() - t1
        if t == 0:
            self.after_first = [x.detach().clone() for x in self.plist]
        self.R.append(self._score("val", t))
        if self.hook is not None and t < n_tasks - 1 and not self.hook(t, self.R, self.baseline):
            return self._result(RunOutput(R=self.R, baseline=self.baseline, test_acc=[],
                                          timings=self.timings, final_losses=self.losses,
                                          stopped_after=t + 1, extra=self.extra,
                                          counters=_counters(self.strategies, self.guard)))
        if t < n_tasks - 1:
            self._begin_task(t + 1)
            return None
        test = self._score("test", n_tasks - 1)
        drift = torch.stack([(a.detach() - b).float().norm()
                             for a, b in zip(self.plist, self.after_first)]).norm()
        return self._result(RunOutput(R=self.R, baseline=self.baseline, test_acc=test,
                                      timings=self.timings, final_losses=self.losses,
                                      drift_from_task0=float(drift), extra=self.extra,
                                      counters=_counters(self.strategies, self.guard)))

    def _result(self, out: RunOutput) -> Result:
        self.timings.update(getattr(self.learner, "timings", {}))
        pk = self.pack
        res = build_result(out, self.params, pk.data, pk.n_tasks, self.n_trainable,
                           pk.backbone.name, pk.device, self.candidate.seed, pk.options,
                           list(getattr(self.learner, "retention_scores", [])),
                           time.perf_counter() - self.start)
        res.metrics["pack"] = {"packed": True, "size": pk.size}
        return res


class Pack:
    """Up to ``size`` members on one shared frozen backbone (see the module docstring)."""

    def __init__(self, backbone: Any, data: Any, size: int, device: str = "auto",
                 fitness_tasks: int | None = None, options: Options | None = None):
        if size < 1:
            raise UserError(f"must be >= 1, got {size}", field="pack")
        self.backbone, self.data, self.size = backbone, data, int(size)
        self.options = options if options is not None else Options()
        self.fitness_tasks = fitness_tasks
        self.n_tasks = data.n_tasks if fitness_tasks is None else int(fitness_tasks)
        self.device = resolve_device(device)
        self.amp = autocast_dtype(self.options.precision, self.device)
        self.kind = getattr(backbone, "kind", "encoder")
        self.causal = self.kind == "causal_lm"
        frozen = torch.bfloat16 if self.causal and self.amp == torch.bfloat16 else None
        self.shared = SharedBackbone(backbone.model, frozen, self.device)
        self.pad_id = 0
        self.members: list[Member] = []
        self.solo_runs: list[dict[str, Any]] = []  # candidates run alone, and why

    @property
    def free(self) -> int:
        return self.size - len(self.members)

    def join(self, candidate: Candidate,
             on_task_end: Callable[[dict[str, Any]], bool] | None = None) -> Result | None:
        """Add ``candidate`` to the pack (None), or return its Result at once: run solo when
        it cannot be packed (``metrics["pack"]`` says why), failed when it cannot start."""
        if self.free < 1:
            raise RuntimeError("the pack is full")
        try:
            self.members.append(Member(self, candidate, on_task_end))
            return None
        except NotPackable as why:
            self.solo_runs.append({"id": candidate.id, "reason": str(why)})
            res = evaluate(candidate.config, self.data, self.backbone, candidate.seed,
                           device=str(self.device), fitness_tasks=self.fitness_tasks,
                           options=self.options, on_task_end=on_task_end)
            res.metrics["pack"] = {"packed": False, "reason": str(why)}
            return res
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - one candidate's failure is its own
            return Result.failed(_reason(exc))

    def step(self) -> list[tuple[Candidate, Result]]:
        """One step of every member; the members that left, with their Results."""
        if not self.members:
            return []
        t0 = time.perf_counter()
        members, batches, failed = [], [], []
        for m in self.members:
            try:
                batches.append(m.learner.batch(m.next_rows(), m.t))
                members.append(m)
            except Exception as exc:  # noqa: BLE001
                failed.append((m, exc))
        done = [self._leave(m, Result.failed(_reason(e))) for m, e in failed]
        if not members:
            return done
        kept: list[tuple[Member, torch.Tensor, float]] = []
        for group, group_batches in self._groups(members, batches):
            try:
                kept += self._step_group(group, group_batches, done)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # noqa: BLE001 - the group's pass failed: its members fail
                done += [self._leave(m, Result.failed(_reason(exc))) for m in group
                         if m in self.members]
        rows = sum(len(b.rows) for b in batches)
        stepped = {id(m): v for m, _, v in kept}
        for m in members:
            if m not in self.members:
                continue
            value = float("nan")
            try:
                if id(m) in stepped:
                    m.apply()
                    value = stepped[id(m)]
            except _Skip:
                m.opt.zero_grad(set_to_none=True)
            except Exception as exc:  # noqa: BLE001
                done.append(self._leave(m, Result.failed(_reason(exc))))
                continue
            try:
                res = m.after_step(value, time.perf_counter() - t0, rows)
            except Exception as exc:  # noqa: BLE001
                res = Result.failed(_reason(exc))
            if res is not None:
                done.append(self._leave(m, res))
        return done

    def _groups(self, members: list[Member], batches: list[Any]
                ) -> list[tuple[list[Member], list[Any]]]:
        """The members in order, cut into groups of at most ``pack_max_rows`` rows (a group
        holds at least one member); each group is its own forward and backward pass."""
        limit = self.options.pack_max_rows
        if limit is None:
            return [(members, batches)]
        groups: list[tuple[list[Member], list[Any]]] = []
        rows = limit + 1
        for m, b in zip(members, batches):
            if rows + len(b.ids) > limit:
                groups.append(([], []))
                rows = 0
            groups[-1][0].append(m)
            groups[-1][1].append(b)
            rows += len(b.ids)
        return groups

    def _step_group(self, members: list[Member], batches: list[Any],
                    done: list[tuple[Candidate, Result]]
                    ) -> list[tuple[Member, torch.Tensor, float]]:
        """One forward and backward of a group: its members' (member, loss, value) that step."""
        losses, embeds = self._forward(members, batches)
        values = torch.stack([x.detach().float() for x in losses]).tolist()  # one sync
        kept = []
        for m, x, v in zip(members, losses, values):
            try:
                m.guard.check(v, m.t, m.step_in_task)
                kept.append((m, x, v))
            except _Skip:
                pass  # skipped under autocast, as a loss scaler would
            except EvaluationError as exc:
                done.append(self._leave(m, Result.failed(exc.reason)))
        if kept:
            sum(x for _, x, _ in kept).backward()
        if embeds is not None:
            left, skipped = self._adversarial([m for m, _, _ in kept], members, batches, embeds)
            done += left
            for m in skipped:
                m.opt.zero_grad(set_to_none=True)
            kept = [k for k in kept if k[0] in self.members and k[0] not in skipped]
        return kept

    def _forward(self, members: list[Member], batches: list[Any],
                 embeds: list[torch.Tensor] | None = None, task_loss_only: bool = False
                 ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Each member's loss of one packed forward; with a perturbing member (FGM) the
        forward takes the input embeddings as a leaf that requires grad (returned too).
        ``embeds``: the members' own input embeddings instead of their ids."""
        width = max(b.ids.shape[1] for b in batches)
        mask = torch.cat([F.pad(b.mask, (0, width - b.mask.shape[1]), value=0)
                          for b in batches])
        slices, s = [], 0
        for m, b in zip(members, batches):
            slices.append((m.key, s, s + len(b.ids)))
            s += len(b.ids)
        self.shared.route.set_slices(slices)
        self.shared.model.train()
        outs, leaf = [], None
        with members[0].learner.autocast():
            if embeds is not None:
                inputs = torch.cat([F.pad(e, (0, 0, 0, width - e.shape[1])) for e in embeds])
            else:
                ids = torch.cat([F.pad(b.ids, (0, width - b.ids.shape[1]), value=self.pad_id)
                                 for b in batches])
                inputs = None
                if any(m.perturbers for m in members):
                    inputs = leaf = self.shared.model.get_input_embeddings()(ids) \
                        .detach().requires_grad_(True)
            hidden = shared_hidden(self.shared, None if inputs is not None else ids, mask,
                                   self.causal, inputs)
            for m, b, (_, s0, s1) in zip(members, batches, slices):
                outs.append(m.learner.model.head_out(hidden[s0:s1, :b.ids.shape[1]], b.mask))
        if task_loss_only:
            return [m.learner.loss(b, o) for m, b, o in zip(members, batches, outs)], None
        return [m.loss(b, o) for m, b, o in zip(members, batches, outs)], leaf

    def _adversarial(self, kept: list[Member], members: list[Member], batches: list[Any],
                     embeds: torch.Tensor) -> tuple[list[tuple[Candidate, Result]],
                                                    list[Member]]:
        """FGM's second pass for the perturbing members, packed: each one's perturbation from
        its own rows' embedding gradient, its task loss on embeddings + perturbation."""
        done: list[tuple[Candidate, Result]] = []
        skipped: list[Member] = []
        adv_m, adv_b, adv_e, s = [], [], [], 0
        for m, b in zip(members, batches):
            n, width = len(b.ids), b.ids.shape[1]
            if m in kept and m.perturbers:
                e = embeds[s:s + n, :width]
                g = embeds.grad[s:s + n, :width]  # type: ignore[index]
                for st in m.perturbers:
                    adv_m.append(m)
                    adv_b.append(b)
                    adv_e.append(e.detach() + st.perturb(st.ctx, b, g))
            s += n
        if not adv_m:
            return done, skipped
        losses, _ = self._forward(adv_m, adv_b, adv_e, task_loss_only=True)
        values = torch.stack([x.detach().float() for x in losses]).tolist()
        keep = []
        for m, x, v in zip(adv_m, losses, values):
            try:
                m.guard.check(v, m.t, m.step_in_task)
                keep.append(x)
            except _Skip:  # the whole step of this member is skipped, as alone
                skipped.append(m)
            except EvaluationError as exc:
                if m in self.members:
                    done.append(self._leave(m, Result.failed(exc.reason)))
        if keep:
            sum(keep).backward()
        return done, skipped

    def _leave(self, m: Member, res: Result) -> tuple[Candidate, Result]:
        self.shared.detach(m.key)
        self.members.remove(m)
        return m.candidate, res


def _reason(exc: BaseException) -> str:
    from evocl.errors import failure_reason as reason

    return reason(exc)


def run_pack(backbone: Any, data: Any, candidates: list[Candidate], size: int,
             device: str = "auto", fitness_tasks: int | None = None,
             options: Options | None = None) -> dict[str, Result]:
    """Evaluate ``candidates`` in one pack of ``size`` (in order; a slot that frees takes the
    next); Results by candidate id."""
    pack = Pack(backbone, data, size, device, fitness_tasks, options)
    todo, out = list(candidates), {}
    while todo or pack.members:
        while todo and pack.free > 0:
            c = todo.pop(0)
            res = pack.join(c)
            if res is not None:
                out[c.id] = res
        for c, res in pack.step():
            out[c.id] = res
    return out
