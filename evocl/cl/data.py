"""Pre-tokenized stream tensors and per-scenario logit masks.

Each split of every task is concatenated into one padded int64 tensor so that a batch mixing
the current task with replayed rows of older tasks is a single index operation, then trimmed
to the batch's own longest row (dynamic padding). Validation rows are capped per task
(``max_eval_per_task``, a fixed subset that does not depend on the candidate) and sorted by
length so evaluation batches carry little padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True, eq=False)
class SplitTensors:
    """Rows of one split over all tasks: ``task`` gives each row's task index,
    ``offsets[t]:offsets[t+1]`` the rows of task t."""

    ids: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    task: torch.Tensor
    offsets: tuple[int, ...]
    targets: torch.Tensor | None = None  # generative streams: 1 where a token is predicted
    #: generative held-out splits: each row's reference answer (its last assistant turn; None
    #: for a text row or a prompt without an answer), for the generation-scored metrics
    references: tuple[str | None, ...] | None = None
    #: preference rows (`evocl.streams.preference`): each row's rejected sequence (ids, mask,
    #: targets: zeros for a supervised row) and ``preference[i]`` True for a pair (whose
    #: chosen sequence is its row in ``ids``); None when no task holds pairs
    rejected: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    preference: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def rows(self, t: int) -> np.ndarray:
        return np.arange(self.offsets[t], self.offsets[t + 1])

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids, mask, labels, task) of rows ``idx``, trimmed to their longest sequence."""
        width = int(self.lengths[idx].max())
        return self.ids[idx, :width], self.mask[idx, :width], self.labels[idx], self.task[idx]

    def lm_batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids, mask, target mask, task) of rows ``idx`` of a generative split, trimmed."""
        width = int(self.lengths[idx].max())
        assert self.targets is not None
        return (self.ids[idx, :width], self.mask[idx, :width], self.targets[idx, :width],
                self.task[idx])

    def rejected_batch(self, idx: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(ids, mask, target mask) of the rejected sequences of the preference rows among
        ``idx`` (in ``idx``'s order), trimmed; None when none of them is a pair."""
        if self.preference is None or self.rejected is None:
            return None
        pairs = idx[self.preference[idx]]
        if not len(pairs):
            return None
        ids, mask, tgt = (x[pairs] for x in self.rejected)
        width = max(1, int(mask.sum(1).max()))
        return ids[:, :width], mask[:, :width], tgt[:, :width]


@dataclass(frozen=True, eq=False)
class StreamTensors:
    """Everything `evaluate` needs from a stream, as tensors (CPU)."""

    scenario: str
    n_classes: int
    task_classes: tuple[tuple[int, ...], ...]
    train: SplitTensors
    val: SplitTensors
    test: SplitTensors
    fingerprint: str
    max_length: int = 0
    max_eval_per_task: int | None = None
    #: generative streams: each task's metric (`evocl.cl.names.TASK_METRICS`)
    task_metrics: tuple[str, ...] = ()
    #: generative streams: the retention set's rows (one "task", references), metric and name
    retention: SplitTensors | None = None
    retention_metric: str = ""
    retention_name: str = ""

    @property
    def n_tasks(self) -> int:
        return len(self.task_classes)

    def metric(self, t: int) -> str:
        """Task t's metric (token accuracy for a classifier's or an unnamed one)."""
        return self.task_metrics[t] if t < len(self.task_metrics) else "token_accuracy"


def _split(parts: list[Any], cap: int | None, sort: bool,
           answers: list[tuple[str | None, ...]] | None = None) -> SplitTensors:
    """Rows of every task's part, padded to one width. A part of a generative stream has a
    ``target_mask`` and no labels (its labels tensor is zeros); ``answers[t]`` are the
    reference answers of task t's source rows (looked up through the part's ``rows``)."""
    ids_l, mask_l, lab_l, task_l, tgt_l, offsets = [], [], [], [], [], [0]
    rej_l: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    pref_l: list[np.ndarray] = []
    refs: list[str | None] = []
    generative = bool(parts) and getattr(parts[0], "target_mask", None) is not None
    pairs = generative and any(getattr(p, "preference", None) is not None for p in parts)
    for t, part in enumerate(parts):
        ids = np.asarray(part.input_ids, dtype=np.int64)
        mask = np.asarray(part.attention_mask, dtype=np.int64)
        if generative:
            tgt = np.asarray(part.target_mask, dtype=np.int64).reshape(mask.shape)
            lab = np.zeros(len(ids), dtype=np.int64)
        else:
            lab = np.asarray(part.labels, dtype=np.int64)
        order = np.arange(len(lab))
        if cap is not None and len(lab) > cap:
            # a fixed stratified-by-chance subset: same rows for every candidate
            order = np.sort(np.random.default_rng(t).permutation(len(lab))[:cap])
        if sort:
            order = order[np.argsort(mask[order].sum(1), kind="stable")]
        if answers is not None:
            refs.extend(answers[t][int(part.rows[i])] for i in order)
        ids_l.append(ids[order])
        mask_l.append(mask[order])
        lab_l.append(lab[order])
        if generative:
            tgt_l.append(tgt[order])
        if pairs:
            if getattr(part, "preference", None) is not None:
                rej_l.append(tuple(np.asarray(x, dtype=np.int64)[order] for x in (  # type: ignore[arg-type]
                    part.rejected_ids, part.rejected_mask, part.rejected_target)))
                pref_l.append(np.asarray(part.preference, dtype=np.bool_)[order])
            else:
                rej_l.append(tuple(np.zeros((len(order), 1), dtype=np.int64)  # type: ignore[arg-type]
                                   for _ in range(3)))
                pref_l.append(np.zeros(len(order), dtype=np.bool_))
        task_l.append(np.full(len(order), t, dtype=np.int64))
        offsets.append(offsets[-1] + len(order))
    width = max([a.shape[1] for a in ids_l] + [1])
    ids = np.zeros((offsets[-1], width), dtype=np.int64)
    mask = np.zeros((offsets[-1], width), dtype=np.int64)
    tgt_all = np.zeros((offsets[-1], width), dtype=np.bool_) if generative else None
    for t, (a, m) in enumerate(zip(ids_l, mask_l)):
        ids[offsets[t]:offsets[t + 1], : a.shape[1]] = a
        mask[offsets[t]:offsets[t + 1], : m.shape[1]] = m
        if tgt_all is not None:
            tgt_all[offsets[t]:offsets[t + 1], : a.shape[1]] = tgt_l[t] > 0
    rejected = None
    if pairs:
        rw = max(a[0].shape[1] for a in rej_l)
        stacked = [np.zeros((offsets[-1], rw), dtype=np.int64) for _ in range(3)]
        for t, arrays in enumerate(rej_l):
            for k, a in enumerate(arrays):
                stacked[k][offsets[t]:offsets[t + 1], : a.shape[1]] = a
        rejected = (torch.from_numpy(stacked[0]), torch.from_numpy(stacked[1]),
                    torch.from_numpy(stacked[2] > 0))
    mask_t = torch.from_numpy(mask)
    # a row's length is up to its last attended token (right padding)
    last = np.where(mask.any(1), mask.shape[1] - np.argmax(mask[:, ::-1] > 0, axis=1), 1)
    return SplitTensors(ids=torch.from_numpy(ids), mask=mask_t,
                        lengths=torch.from_numpy(last.astype(np.int64)).clamp(min=1),
                        labels=torch.from_numpy(np.concatenate(lab_l)),
                        task=torch.from_numpy(np.concatenate(task_l)), offsets=tuple(offsets),
                        targets=None if tgt_all is None else torch.from_numpy(tgt_all),
                        references=tuple(refs) if answers is not None else None,
                        rejected=rejected,
                        preference=torch.from_numpy(np.concatenate(pref_l)) if pairs else None)


def stream_tensors(tokenized: Any, max_eval_per_task: int | None = None,
                   max_test_per_task: int | None = None, retention: Any = None
                   ) -> StreamTensors:
    """From a streams.TokenizedStream (``.stream`` and ``.tasks[t].train/val/test``);
    ``retention``: the retention set's tokenized part (`lm_tokens.encode_retention` arrays as
    a TokenizedGenerativeSplit), already capped."""
    stream = tokenized.stream
    tasks = tokenized.tasks
    generative = stream.scenario == "generative"

    def answers(which: str) -> list[tuple[str | None, ...]] | None:
        return [t.split(which).responses for t in stream.tasks] if generative else None

    ret = stream.retention if generative else None
    return StreamTensors(
        scenario=stream.scenario, n_classes=len(stream.class_names),
        task_classes=tuple(tuple(int(c) for c in getattr(t, "classes", ()) or ())
                           for t in stream.tasks),
        train=_split([t.train for t in tasks], None, sort=False),
        val=_split([t.val for t in tasks], max_eval_per_task, sort=True, answers=answers("val")),
        test=_split([t.test for t in tasks], max_test_per_task, sort=True,
                    answers=answers("test")),
        fingerprint=stream.fingerprint, max_length=int(tokenized.max_length),
        max_eval_per_task=max_eval_per_task,
        task_metrics=tuple(t.metric or "token_accuracy" for t in stream.tasks)
        if generative else (),
        retention=(_split([retention], None, sort=True, answers=[ret.split.responses])
                   if retention is not None and ret is not None else None),
        retention_metric=ret.metric if ret is not None else "",
        retention_name=ret.name if ret is not None else "")


def class_masks(data: StreamTensors, n_tasks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(seen, own): bool [n_tasks, n_classes]; seen[t] = classes of tasks 0..t, own[t] = task
    t's classes."""
    own = torch.zeros(n_tasks, data.n_classes, dtype=torch.bool)
    for t in range(n_tasks):
        own[t, list(data.task_classes[t])] = True
    return own.cumsum(0) > 0, own


def allowed_classes(scenario: str, seen: torch.Tensor, own: torch.Tensor, after: int,
                    sample_task: torch.Tensor) -> torch.Tensor:
    """Bool [B, n_classes]: which logits may win for each sample, after training task ``after``
    (``after=-1``: the untrained model; training task t uses ``after=t``).

    class-incremental: classes of tasks 0..max(after, sample's task) (a future task is scored
    over the classes up to it, so FWT is defined); task-incremental: the sample's task's
    classes; domain-incremental: all classes.
    """
    if scenario == "task-incremental":
        return own[sample_task]
    if scenario == "domain-incremental":
        return torch.ones(sample_task.shape[0], own.shape[1], dtype=torch.bool, device=own.device)
    return seen[sample_task.clamp(min=after)]


def old_classes(data: StreamTensors, t: int) -> torch.Tensor:
    """Global ids of the classes of tasks 0..t-1 (distillation targets while learning task t)."""
    cls = sorted({c for k in range(t) for c in data.task_classes[k]})
    return torch.tensor(cls, dtype=torch.long)
