"""Direct Preference Optimization (Rafailov et al. 2023) for the preference tasks of a stream.

    loss(pair)  = -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r))))
    reward(y)   = beta * (log pi(y) - log ref(y))       (the implicit reward)

``log pi(y)`` is the sum of the answer's token log-probabilities given the prompt (the answer
alone is the target of a preference row, `evocl.streams.lm_tokens`). This is TRL's
``DPOTrainer`` with ``loss_type="sigmoid"``, no label smoothing, no length weighting; the test
`tests/test_cl_dpo.py` checks it against TRL's own loss on the same batch.

The reference of a preference task is the model as it stands when that task starts: with LoRA
(the only trainable tensors), the frozen backbone plus the adapter weights at that moment
(for the first task: the backbone itself, as TRL's PEFT default). Its log-probabilities of
every row of the task (train, val, test) are computed once, at the task's start, in eval mode
(TRL's ``precompute_ref_log_probs``), so a step costs no reference forward and a pair replayed
in a later task keeps the reference of its own task. ``dpo_beta`` is a searched parameter.

Held-out score (R[i][j] of a preference task j, `preference_accuracy`): the share of task j's
held-out pairs whose chosen answer's implicit reward is above the rejected one's (strictly, as
TRL's ``rewards/accuracies``), against task j's reference. Before task j starts its reference
does not exist yet (it would be the model scored, every margin 0): R[i][j] for i < j and the
untrained baseline are 0.5, chance, so FWT of a preference task is 0 by construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evocl.streams.preference import PREFERENCE_METRIC


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-pair sigmoid DPO losses, chosen rewards, rejected rewards) from the sequences'
    summed log-probabilities under the policy and the reference (module docstring)."""
    chosen_logratios = policy_chosen - ref_chosen
    rejected_logratios = policy_rejected - ref_rejected
    losses = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))
    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def preference_accuracy(policy: torch.Tensor, ref: torch.Tensor) -> float:
    """Share of pairs (rows of [n, 2] = chosen, rejected log-probs) whose chosen implicit
    reward is strictly above the rejected one's (beta > 0 does not change the order)."""
    if not len(policy):
        return 0.0
    margin = (policy[:, 0] - ref[:, 0]) - (policy[:, 1] - ref[:, 1])
    return float((margin > 0).double().mean())


def is_preference_task(data: Any, t: int) -> bool:
    return data.metric(t) == PREFERENCE_METRIC


def pair_logps(learner: Any, split: Any, rows: np.ndarray) -> torch.Tensor:
    """[len(rows), 2] float32 (chosen, rejected) summed answer log-probs of preference
    ``rows`` of ``split`` under the model now (eval mode, no grad), on the CPU."""
    out = []
    bs = max(1, learner.options.eval_batch_size // 2)  # each row is two sequences
    with learner.eval_mode(), torch.inference_mode():
        for k in range(0, len(rows), bs):
            part = rows[k:k + bs]
            b = learner._batch(split, torch.from_numpy(part), learner.current_task, part)
            with learner.autocast():
                hidden = learner.model(b.ids, b.mask)
            logp = learner.sequence_logps(b, hidden).float().cpu()
            n = len(part)
            out.append(torch.stack([logp[:n], logp[n:]], 1))
    return torch.cat(out) if out else torch.zeros(0, 2)


class References:
    """The reference log-probs of every preference row, per split (NaN until its task
    starts)."""

    def __init__(self, data: Any):
        self.data = data
        self.logps = {w: torch.full((len(getattr(data, w)), 2), float("nan"))
                      for w in ("train", "val", "test")}
        self.started: set[int] = set()

    def start(self, learner: Any, t: int) -> None:
        """Compute task t's reference log-probs (the model now) on its rows of every split."""
        if t in self.started or not is_preference_task(self.data, t):
            return
        for which, table in self.logps.items():
            split = getattr(self.data, which)
            rows = split.rows(t)
            if split.preference is not None:
                rows = rows[split.preference[rows].numpy()]
            table[torch.from_numpy(rows)] = pair_logps(learner, split, rows)
        self.started.add(t)

    def of(self, which: str, rows: np.ndarray) -> torch.Tensor:
        return self.logps[which][torch.from_numpy(np.asarray(rows, dtype=np.int64))]


def preference_scores(learner: Any, refs: References, which: str, tasks: list[int]
                      ) -> dict[int, float]:
    """R entries of preference tasks ``tasks`` on split ``which``: preference accuracy against
    each task's reference, 0.5 (chance) for a task not started yet."""
    split = getattr(learner.data, which)
    out: dict[int, float] = {}
    for j in tasks:
        if j not in refs.started:
            out[j] = 0.5
            continue
        rows = split.rows(j)
        if split.preference is not None:
            rows = rows[split.preference[rows].numpy()]
        out[j] = preference_accuracy(pair_logps(learner, split, rows), refs.of(which, rows))
    return out
