"""Non-finite steps decided on the device: the training loop without a host sync per step.

`evocl.cl.train._NonFinite` reads every step's loss on the host (``float(loss)``): on a GPU
that is a synchronisation per step, so the host cannot prepare the next batch while the
device computes. `DeviceNonFinite` keeps the same rules with the decisions on the device:

    a step is bad      its loss (or, under autocast, a perturbed loss or the gradient norm)
                       is not finite
    a bad step         is skipped by the fused AdamW itself (``found_inf``, as a GradScaler
                       does): parameters, moments and step count stay as they were
    fp32               a bad step fails the candidate: "non-finite loss at task t step s"
    bf16 / fp16        more than ``limit`` bad steps in a task fail it: "non-finite loss at
                       task t step s (n steps skipped under bfloat16 autocast)"

read on the host once per task (`task_end`), with the same messages and counts, so a failing
candidate fails with the same reason, only at the end of the task rather than at the step.
The loop uses it on a GPU when nothing else syncs per step (no GradScaler, no gradient
transform such as A-GEM's, which decides on the host); the CPU keeps `_NonFinite` (same
results as before, bit for bit). One difference: a skipped step still runs its backward and,
with adversarial training, its perturbed pass, which draws LoRA dropout masks that the
host-decided loop does not draw for a skipped step; so an adversarial candidate with skipped
steps trains on other dropout masks afterwards (deterministically; GPU only).
"""

from __future__ import annotations

from typing import Any

import torch

from evocl.errors import EvaluationError


class DeviceNonFinite:
    """`_NonFinite`'s rules, decided on ``device`` (see the module docstring)."""

    deferred = True

    def __init__(self, amp: torch.dtype | None, steps_per_task: int, device: torch.device):
        self.amp, self.device = amp, device
        self.limit = max(2, steps_per_task // 5)
        self.skipped: list[int] = []
        self._bad = torch.zeros((), dtype=torch.bool, device=device)
        self._count = torch.zeros((), dtype=torch.int64, device=device)
        self._at = torch.full((), -1, dtype=torch.int64, device=device)  # the failing step

    def check(self, value: torch.Tensor, t: int, step: int) -> torch.Tensor:
        """Mark the current step bad when ``value`` is not finite; returns ``value``."""
        self._bad = self._bad | ~torch.isfinite(value)
        return value

    def finish_step(self, opt: torch.optim.Optimizer, value: torch.Tensor, step: int
                    ) -> torch.Tensor:
        """Before ``opt.step()``: let the fused optimizer skip a bad step; count it. Returns
        the step's loss in float64, NaN for a skipped step (as `_NonFinite` does)."""
        bad = self._bad
        opt.found_inf = bad.float()  # type: ignore[attr-defined]  # read by the fused AdamW
        self._count = self._count + bad.long()
        failed = bad if self.amp is None else self._count > self.limit
        self._at = torch.where((self._at < 0) & failed, torch.full_like(self._at, step), self._at)
        self._bad = torch.zeros_like(bad)
        # float64, as the host loop's Python floats (MER sums its sub-steps' losses)
        value = value.double()
        return torch.where(bad, torch.full_like(value, float("nan")), value)

    def track(self, value: torch.Tensor, last: Any) -> torch.Tensor:
        """The last finite loss of the task so far (``value``: this step's, a tensor)."""
        if not torch.is_tensor(last):  # the task's first step (no host-to-device copy)
            last = torch.full_like(value, float(last))
        return torch.where(torch.isfinite(value), value, last)

    def task_end(self, t: int, last: Any) -> float:
        """One host read per task: raise as `_NonFinite` would have; the task's last finite
        loss."""
        count, at, last_value = (int(self._count), int(self._at), float(last))
        if count and self.amp is not None:  # listed up to the last task with a skip
            while len(self.skipped) <= t:
                self.skipped.append(0)
            self.skipped[t] = min(count, self.limit + 1)
        if at >= 0:
            if self.amp is None:
                raise EvaluationError(f"non-finite loss at task {t} step {at}", transient=False)
            raise EvaluationError(f"non-finite loss at task {t} step {at} ({self.limit + 1} "
                                  f"steps skipped under {str(self.amp)[6:]} autocast)",
                                  transient=False)
        self._count = torch.zeros_like(self._count)
        return last_value
