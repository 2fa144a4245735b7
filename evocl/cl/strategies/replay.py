"""Experience replay: a share of every batch is drawn from a buffer of earlier tasks' rows.

The buffer holds ``replay_buffer_per_class`` training rows per group -- per class for a
classifier, per task for a causal LM (`Learner.groups`) -- and is updated at the end of each
task, so replay while learning task t rehearses tasks < t. A batch of ``batch_size`` rows is
``round(replay_ratio * batch_size)`` buffer rows (at most batch_size - 1) plus new ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evocl.cl.strategies.base import AvalancheSpec, Context, Param, Strategy

POLICIES = ("reservoir", "class_balanced")


class ReplayBuffer:
    """Rows of the training split kept for rehearsal, ``per_class`` slots per group.

    reservoir      per-group reservoir sampling over the training rows seen, in the order the
                   trainer drew them (each row retained with probability per_class / n_seen)
    class_balanced each group's slots are split equally over the tasks that had the group and
                   filled with a random subset of that task's rows of the group (in class-
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

    @property
    def rows(self) -> np.ndarray:
        """Every buffered row id, sorted."""
        return self._flat

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


def first_occurrences(rows: np.ndarray) -> np.ndarray:
    """``rows`` without repeats, in the order each first appeared."""
    _, first = np.unique(rows, return_index=True)
    return rows[np.sort(first)]


class Replay(Strategy):
    name = "replay"
    switch = "replay"
    streams = (1, 2)  # buffer updates, batch draws
    PARAMS = (
        Param("replay", False, help="experience replay from a buffer of earlier tasks"),
        Param("replay_buffer_per_class", 16, low=1, high=100_000,
              help="buffer rows per class (per task for causal LMs)"),
        Param("replay_ratio", 0.25, low=0.0, high=0.95,
              help="fraction of each batch drawn from the buffer"),
        Param("replay_policy", "reservoir", choices=POLICIES, help="how the buffer is filled"),
    )

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.buffer = ReplayBuffer(ctx.params.replay_buffer_per_class,
                                   ctx.params.replay_policy, ctx.rngs[0])

    def n_mix(self, ctx: Context) -> int:
        p = ctx.params
        if p.replay_ratio <= 0.0 or len(self.buffer) == 0:
            return 0
        return min(int(round(p.replay_ratio * p.batch_size)), p.batch_size - 1)

    def mix(self, ctx: Context, n: int) -> np.ndarray:
        return self.buffer.sample(n, ctx.rngs[1])

    def end_task(self, ctx: Context, t: int, drawn: np.ndarray) -> None:
        learner = ctx.learner
        seen = first_occurrences(drawn)
        rows = learner.data.train.rows(t)
        self.buffer.update(t, seen, learner.groups(seen), rows, learner.groups(rows))

    @classmethod
    def describe(cls, p: Any) -> dict[str, Any] | None:
        return {"buffer_per_class": p.replay_buffer_per_class, "ratio": p.replay_ratio,
                "policy": p.replay_policy}

    @classmethod
    def avalanche(cls, p: Any, n_classes: int) -> AvalancheSpec:
        batch = int(p.batch_size)
        mem = int(p.replay_buffer_per_class) * n_classes
        mem_batch = max(1, int(round(p.replay_ratio * batch)))
        train_mb = max(1, batch - mem_batch)
        policy = ("avalanche.training.storage_policy.ClassBalancedBuffer"
                  if p.replay_policy == "class_balanced" else
                  "avalanche.training.storage_policy.ReservoirSamplingBuffer")
        return AvalancheSpec(
            plugins=[{"class": "avalanche.training.plugins.ReplayPlugin",
                      "kwargs": {"mem_size": mem, "batch_size": train_mb,
                                 "batch_size_mem": mem_batch},
                      "storage_policy": {"class": policy, "kwargs": {"max_size": mem}}}],
            notes=[f"replay: {train_mb} new + {mem_batch} buffer samples per step "
                   f"(ratio {p.replay_ratio:.3g} of {batch}); mem_size = "
                   f"{p.replay_buffer_per_class} per class x {n_classes} classes"],
            train_mb=train_mb)
