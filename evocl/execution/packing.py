"""``--gpus-per-eval auto``: how many evaluations share a GPU, from the memory they were seen to use.

Ray's fractional GPUs are bookkeeping only: an actor holding 0.0625 of a GPU may use all of
its memory. ``auto`` therefore packs by measured memory (pure logic here; the Ray executor
applies it):

1. Every one of the ``workers`` actors asks for ``1 / ceil(workers / gpus)`` of a GPU (the
   finest packing the request could need) and builds its evaluator (imports, backbone,
   stream: CPU only), but evaluations go to ``PROBES`` actor(s) first.
2. A finished evaluation reports the GPU's memory and its own peak
   (``Result.metrics["gpu"]``: ``total_mb`` and ``peak_reserved_mb``, what torch's caching
   allocator held). One evaluation needs ``peak + CONTEXT_MB`` (the CUDA context and kernels,
   which torch's counters do not see), so

       workers per GPU = floor((1 - MARGIN) * total / (max peak seen + CONTEXT_MB))

   within [1, ceil(workers / gpus)]; after the first ``PROBES`` results, evaluations go to
   that many actors per GPU (at most ``workers``) and the others are stopped before they
   ever touch the GPU.
3. Every later result updates the max peak: when fewer fit, actors are retired as they
   finish; an evaluation that runs out of memory retires its actor (never the last one) and
   is retried.

Evaluations whose peaks differ (rank 64 on every linear layer vs rank 2 on attention) are
covered by the max seen and by ``MARGIN``; a run whose first candidates are all small can
still meet a large one later: step 3 is the safety net.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

#: share of each GPU's memory left unplanned (fragmentation, candidates larger than those seen)
MARGIN = 0.15
#: memory of one process that torch's allocator counters do not show (CUDA context, kernels), MiB
CONTEXT_MB = 600.0
#: evaluations that must finish before the pool grows past the probe actors
PROBES = 1


def fraction_per_eval(workers: int, gpus: float) -> float:
    """The GPU share every actor asks Ray for: 1 / ceil(workers / gpus), at most 1 (Ray takes
    four decimals: rounded down)."""
    if gpus <= 0:
        return 0.0
    per_gpu = max(1, math.ceil(workers / gpus))
    return math.floor(10_000 / per_gpu) / 10_000


def workers_per_gpu(total_mb: float, peak_mb: float, cap: int, margin: float = MARGIN,
                    context_mb: float = CONTEXT_MB) -> int:
    """How many evaluations of peak ``peak_mb`` fit in a GPU of ``total_mb``: floor((1 -
    margin) * total / (peak + context)), within [1, cap]."""
    need = max(1.0, float(peak_mb) + context_mb)
    fit = int(math.floor((1.0 - margin) * float(total_mb) / need))
    return max(1, min(int(cap), fit))


def gpu_memory(result_metrics: Mapping[str, Any]) -> tuple[float, float] | None:
    """(total_mb, peak_mb) of a result's ``metrics["gpu"]``, or None (a CPU evaluation)."""
    gpu = result_metrics.get("gpu")
    if not isinstance(gpu, Mapping):
        return None
    try:
        total, peak = float(gpu["total_mb"]), float(gpu["peak_reserved_mb"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(total) and math.isfinite(peak) and total > 0 and peak >= 0):
        return None
    return total, peak


def keep_slots(gpu_of_slot: Sequence[Any], per_gpu: int, limit: int) -> list[int]:
    """Indices of the slots to keep: at most ``per_gpu`` on each GPU (``gpu_of_slot[i]``: the
    GPU ids of slot i; None when unknown: counted as one more GPU of its own), at most
    ``limit`` in all, in slot order."""
    used: dict[Any, int] = {}
    keep: list[int] = []
    for i, gpu in enumerate(gpu_of_slot):
        key = ("slot", i) if gpu is None else tuple(gpu) if isinstance(gpu, (list, tuple)) else gpu
        if used.get(key, 0) < per_gpu and len(keep) < limit:
            used[key] = used.get(key, 0) + 1
            keep.append(i)
    return keep


@dataclass
class AutoPacking:
    """The state of ``auto`` for one executor: how many actors may evaluate (``limit``)."""

    workers: int
    gpus: float
    probes: int = PROBES
    margin: float = MARGIN
    context_mb: float = CONTEXT_MB
    total_mb: float | None = None
    max_peak_mb: float | None = None
    seen: int = 0
    per_gpu: int | None = None
    oom_cap: int | None = None  # per GPU at most, since an evaluation ran out of memory
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def cap(self) -> int:
        """Actors per GPU at the finest packing asked for."""
        return max(1, math.ceil(self.workers / self.gpus)) if self.gpus > 0 else self.workers

    @property
    def limit(self) -> int:
        """Actors that may evaluate now."""
        if self.seen < self.probes:
            return min(self.workers, max(1, self.probes))
        if self.per_gpu is None:  # results without GPU memory: nothing to pack by
            return self.workers
        return min(self.workers, self.per_gpu * max(1, int(self.gpus)))

    def observe(self, metrics: Mapping[str, Any]) -> int:
        """Take one finished evaluation's metrics; returns the new ``limit``."""
        self.seen += 1
        mem = gpu_memory(metrics)
        if mem is not None:
            total, peak = mem
            self.total_mb = total if self.total_mb is None else min(self.total_mb, total)
            self.max_peak_mb = peak if self.max_peak_mb is None else max(self.max_peak_mb, peak)
        if self.seen >= self.probes and self.total_mb is not None and self.max_peak_mb is not None:
            per_gpu = workers_per_gpu(self.total_mb, self.max_peak_mb,
                                      min(self.cap, self.oom_cap or self.cap), self.margin,
                                      self.context_mb)
            if per_gpu != self.per_gpu:
                self.history.append({"after_results": self.seen, "max_peak_mb":
                                     round(self.max_peak_mb, 1), "workers_per_gpu": per_gpu})
            self.per_gpu = per_gpu
        return self.limit

    def out_of_memory(self, active: int) -> int:
        """An evaluation ran out of memory with ``active`` actors evaluating: one fewer per GPU
        (never below one); returns the new ``limit``."""
        gpus = max(1, int(self.gpus))
        self.per_gpu = self.oom_cap = max(1, min(self.per_gpu or self.cap,
                                                 math.ceil(active / gpus)) - 1)
        self.history.append({"after_results": self.seen, "out_of_memory": True,
                             "workers_per_gpu": self.per_gpu})
        return self.limit

    def report(self) -> dict[str, Any]:
        return {"mode": "auto", "oom_cap": self.oom_cap, "gpus": self.gpus, "fraction": fraction_per_eval(self.workers,
                                                                                 self.gpus),
                "total_mb": self.total_mb, "max_peak_mb": self.max_peak_mb,
                "margin": self.margin, "context_mb": self.context_mb,
                "workers_per_gpu": self.per_gpu, "limit": self.limit, "history": self.history}
