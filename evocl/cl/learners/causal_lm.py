"""The causal-LM learner: a frozen causal LM + LoRA, next-token loss on the target tokens.

A row of a generative stream is a token sequence with a target mask (`target_mask[p] = 1`:
token p is predicted from the tokens before it: a prompt/response pair's response tokens, or
every token but the first of a plain text). The LM head is applied only at the positions
whose next token is a target, so the vocabulary projection is paid for targets alone.

    loss        mean token cross-entropy over the batch's target tokens
    R[i][j]     task j's metric on its held-out rows after task i (`evocl.cl.scoring`):
                teacher-forced next-token accuracy (micro-averaged over tokens; the default),
                or the exact match / ROUGE-L of greedy answers: bounded, higher is better, so
                ACC, BWT, FWT, forgetting and plasticity keep their definitions; the matrix of
                mean token NLL comes with it (``matrices.val_nll``), and ``perplexity``
    distillation token-level KD: T^2 * KL(teacher_T || student_T) over the full vocabulary at
                every target position, mean over target tokens; the teacher is the model after
                the previous task (its LoRA tensors through functional_call, eval mode)
    Fisher      squared gradients of each sample's mean target NLL, one sample at a time (a
                causal LM's attention masks are not vmap-friendly): memory stays that of one
                sample
    replay      groups are tasks (``replay_buffer_per_class`` rows per task)
    preference  a preference row (`evocl.streams.preference`) is two sequences, chosen (the
                row) and rejected (appended to the batch after its rows); its loss is DPO's
                (`evocl.cl.dpo`) against its task's reference, its score preference accuracy.
                A batch mixing both kinds (replay) weights the supervised loss (mean over its
                target tokens) and the DPO loss (mean over pairs) by their rows
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint

from evocl.cl.learners.base import Learner

#: target positions per LM-head chunk of the training losses beyond which they are computed in
#: checkpointed chunks (SmolLM2's 49,152-token vocabulary: 2,048 positions = 0.4 GB of fp32
#: logits, against 1.6 GB for a batch of 8 rows of 1,024 target tokens)
LOSS_CHUNK = 2048


@dataclass
class Batch:
    rows: np.ndarray
    ids: torch.Tensor
    mask: torch.Tensor
    sel: torch.Tensor      # bool [B, L-1]: position p predicts a target token p+1
    y: torch.Tensor        # the target tokens, in sel's order
    task: torch.Tensor
    t: int
    #: preference rows among the first ``n`` (bool [n]); their rejected sequences are rows
    #: n.. of ``ids`` in the same order. None when the batch holds no pair
    pref: torch.Tensor | None = None
    n: int = 0


class CausalLMLearner(Learner):
    kind = "causal_lm"

    def _batch(self, split: Any, idx: torch.Tensor, t: int, rows: np.ndarray,
               pairs: bool = True) -> Batch:
        """Rows ``idx`` of ``split``; with ``pairs``, the rejected sequences of its preference
        rows appended (token scoring reads the chosen ones alone)."""
        ids, mask, tgt, tk = split.lm_batch(idx)
        rej = split.rejected_batch(idx) if pairs else None
        pref = None
        if rej is not None:
            pref = split.preference[idx]
            width = max(ids.shape[1], rej[0].shape[1])
            ids, mask, tgt = (torch.cat([F.pad(a, (0, width - a.shape[1])),
                                         F.pad(b.to(a.dtype), (0, width - b.shape[1]))])
                              for a, b in zip((ids, mask, tgt), rej))
            tk = torch.cat([tk, tk[pref]])
            pref = pref.to(self.device)
        ids, mask, tgt, tk = (x.to(self.device, non_blocking=True) for x in (ids, mask, tgt, tk))
        sel = tgt[:, 1:].bool() & mask[:, 1:].bool()
        return Batch(rows, ids, mask, sel, ids[:, 1:][sel], tk, t, pref, len(idx))

    def batch(self, rows: np.ndarray, t: int) -> Batch:
        return self._batch(self.data.train, torch.from_numpy(rows), t, rows)

    def _target_logits(self, batch: Batch, hidden: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.model.logits(hidden[:, :-1][batch.sel]).float()

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.model.logits(h).float()

    def loss(self, batch: Batch, out: torch.Tensor) -> torch.Tensor:
        """The supervised loss, the DPO loss of the batch's pairs, or their row-weighted mean
        (module docstring)."""
        if batch.pref is None:
            return self.token_loss(batch, out)
        from evocl.cl.dpo import dpo_loss

        tok = self.token_logps(batch, out)
        row_of = batch.sel.nonzero(as_tuple=True)[0]
        seq = torch.zeros(batch.ids.shape[0], device=tok.device, dtype=tok.dtype)
        seq = seq.index_add(0, row_of, tok)
        n, pref = batch.n, batch.pref
        ref = self.references.of("train", batch.rows[pref.cpu().numpy()]).to(tok.device)
        pairs, _, _ = dpo_loss(seq[:n][pref], seq[n:], ref[:, 0], ref[:, 1], self.dpo_beta)
        n_pairs = int(pairs.shape[0])
        sup_rows = ~pref
        if not bool(sup_rows.any()):
            return pairs.mean()
        sup_tok = sup_rows[row_of.clamp(max=n - 1)] & (row_of < n)
        sup = -tok[sup_tok].mean()
        n_sup = int(sup_rows.sum())
        return (n_sup * sup + n_pairs * pairs.mean()) / (n_sup + n_pairs)

    def sequence_logps(self, batch: Batch, out: torch.Tensor) -> torch.Tensor:
        """Each sequence's summed target log-probability ([rows of ``batch.ids``])."""
        tok = self.token_logps(batch, out)
        row_of = batch.sel.nonzero(as_tuple=True)[0]
        return torch.zeros(batch.ids.shape[0], device=tok.device,
                           dtype=tok.dtype).index_add(0, row_of, tok)

    #: Checkpoint the vocabulary-sized logits whatever the number of target positions (set by
    #: `evocl.cl.pack` on its members: K candidates' logits would otherwise all be held until
    #: the pack's one backward pass; checkpointed, they are recomputed a chunk at a time).
    checkpoint_logits: bool = False

    def _chunked(self, n: int) -> bool:
        """Whether a loss over ``n`` target positions goes through checkpointed chunks."""
        return n > LOSS_CHUNK or (self.checkpoint_logits and n > 0 and torch.is_grad_enabled())

    def token_logps(self, batch: Batch, out: torch.Tensor) -> torch.Tensor:
        """Log-probability of each target token (in ``batch.sel``'s order), in checkpointed
        chunks past ``LOSS_CHUNK`` target positions (as `token_loss`)."""
        h = out[:, :-1][batch.sel]

        def logp(hc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
            return -F.cross_entropy(self._head(hc), yc, reduction="none")

        if not self._chunked(len(h)) or not torch.is_grad_enabled():
            return torch.cat([logp(h[c:c + LOSS_CHUNK], batch.y[c:c + LOSS_CHUNK])
                              for c in range(0, max(1, len(h)), LOSS_CHUNK)])
        return torch.cat([checkpoint(logp, h[c:c + LOSS_CHUNK], batch.y[c:c + LOSS_CHUNK],
                                     use_reentrant=False) for c in range(0, len(h), LOSS_CHUNK)])

    # ------------------------------------------------------------------ preference tasks
    dpo_beta: float = 0.1

    @property
    def references(self) -> Any:
        """Each preference task's reference log-probs (`evocl.cl.dpo.References`)."""
        if "_references" not in self.__dict__:
            from evocl.cl.dpo import References

            self._references = References(self.data)
        return self._references

    def begin_task(self, t: int, p: Any) -> None:
        """Before task t trains: a preference task takes the model now as its reference."""
        self.dpo_beta = float(getattr(p, "dpo_beta", self.dpo_beta))
        self.references.start(self, t)

    def token_loss(self, batch: Batch, out: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the target tokens; past ``LOSS_CHUNK`` target positions, in
        checkpointed chunks (the [n, vocab] logits of a chunk are recomputed in the backward
        pass, so memory holds one chunk's logits, not all of them)."""
        if not self._chunked(len(batch.y)):
            return F.cross_entropy(self._target_logits(batch, out), batch.y)
        h = out[:, :-1][batch.sel]

        def ce_sum(hc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(self._head(hc), yc, reduction="sum")

        total = sum(checkpoint(ce_sum, h[c:c + LOSS_CHUNK], batch.y[c:c + LOSS_CHUNK],
                               use_reentrant=False) for c in range(0, len(h), LOSS_CHUNK))
        return total / len(h)

    def groups(self, rows: np.ndarray) -> np.ndarray:
        return self.data.train.task[rows].numpy()

    # ------------------------------------------------------------------ distillation
    def teacher(self) -> "_Teacher":
        return _Teacher(self, {n: x.detach().clone() for n, x in self.trainable.items()})

    def distill_loss(self, out: torch.Tensor, teacher_out: torch.Tensor, batch: Batch,
                     temperature: float) -> torch.Tensor:
        """T^2 * KL(softmax(teacher/T) || softmax(student/T)) at every target position, mean
        over the target tokens. ``teacher_out``: the teacher's hidden states at the target
        positions; past ``LOSS_CHUNK`` of them, in checkpointed chunks (as `loss`)."""
        n = len(batch.y)
        if not self._chunked(n):
            s = self._target_logits(batch, out) / temperature
            with torch.no_grad():
                t = self._head(teacher_out) / temperature
            return F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True,
                            reduction="batchmean") * temperature ** 2
        h = out[:, :-1][batch.sel]

        def kl_sum(hc: torch.Tensor, tc: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                t = F.log_softmax(self._head(tc) / temperature, -1)
            return F.kl_div(F.log_softmax(self._head(hc) / temperature, -1), t,
                            log_target=True, reduction="sum")

        total = sum(checkpoint(kl_sum, h[c:c + LOSS_CHUNK], teacher_out[c:c + LOSS_CHUNK],
                               use_reentrant=False) for c in range(0, n, LOSS_CHUNK))
        return total / n * temperature ** 2

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
    #: the backbone's tokenizer (set by `evaluate`): generation-scored metrics decode with it
    tokenizer: Any = None

    @property
    def timings(self) -> dict[str, float]:
        """Seconds of this candidate's scoring: token passes, generation, retention."""
        if "_timings" not in self.__dict__:
            self._timings: dict[str, float] = {}
        return self._timings

    @property
    def retention_scores(self) -> list[float]:
        """The retention set's score before training and after each task so far."""
        if "_retention" not in self.__dict__:
            self._retention: list[float] = []
        return self._retention

    def eval_round(self, split: str, after: int) -> tuple[list[float], dict[str, list[float]]]:
        """Each task j < n_tasks of ``split`` scored by its metric (`evocl.cl.scoring`), with
        the mean token NLL (and, when a task is scored by generation, the token accuracy) as
        extra rows; a "val" round scores the retention set too (``retention_scores``). The
        untrained model's round (``after`` = -1) is the same for every candidate (LoRA B = 0):
        a worker computes it once (`evocl.cl.evalcache`)."""
        from evocl.cl import scoring
        from evocl.cl.evalcache import lora_b_all_zero

        key = None
        if after == -1 and self.shared is not None and lora_b_all_zero(self.model):
            key = ("lm-round", split, self.n_tasks, self.data.task_metrics,
                   self.options.eval_batch_size, self.options.max_new_tokens,
                   self.options.max_retention, str(self.device), str(self.amp),
                   torch.get_num_threads())
            hit = self.shared.rounds.get(key)
            if hit is not None:
                self.shared.hits += 1
                row, extra, retention, untrained = hit
                if retention is not None:
                    self.retention_scores.append(retention)
                    self._untrained = untrained
                return list(row), {k: list(v) for k, v in extra.items()}
        data = getattr(self.data, split)
        t0 = time.perf_counter()
        acc, nll = scoring.token_scores(self, data, self.n_tasks, after)
        self.timings["token_scoring"] = self.timings.get("token_scoring", 0.0) + \
            time.perf_counter() - t0
        metrics = [self.data.metric(j) for j in range(self.n_tasks)]
        generated = [j for j, m in enumerate(metrics) if m != "token_accuracy"]
        row = list(acc)
        extra: dict[str, list[float]] = {"nll": nll}
        if generated:
            from evocl.cl.dpo import preference_scores
            from evocl.streams.preference import PREFERENCE_METRIC

            extra["token_accuracy"] = list(acc)
            prefs = [j for j in generated if metrics[j] == PREFERENCE_METRIC]
            texts = [j for j in generated if metrics[j] != PREFERENCE_METRIC]
            if prefs:
                for j, v in preference_scores(self, self.references, split, prefs).items():
                    row[j] = v
            for j, v in scoring.generation_scores(self, data, texts, metrics).items():
                row[j] = v
        retention = None
        if split == "val" and self.data.retention is not None:
            retention = self.retention_round(after)
        if key is not None:
            self.shared.rounds[key] = (list(row), {k: list(v) for k, v in extra.items()},
                                       retention, getattr(self, "_untrained", None))
        return row, extra

    def retention_round(self, after: int) -> float:
        """The retention set's score now (appended to ``retention_scores``)."""
        from evocl.cl import scoring

        t0 = time.perf_counter()
        metric = self.data.retention_metric
        score, said = scoring.retention_score(self, self.data.retention, metric,
                                              getattr(self, "_untrained", None))
        if after == -1 and metric == "agreement":
            self._untrained = said
        self.timings["retention"] = self.timings.get("retention", 0.0) + \
            time.perf_counter() - t0
        self.retention_scores.append(score)
        return score


class _Teacher:
    """The model as it stood after the previous task: its last hidden states at the batch's
    target positions (the distillation loss applies the LM head, in chunks for long rows: a
    vocabulary-sized row per token is too big to keep)."""

    def __init__(self, learner: CausalLMLearner, params: dict[str, torch.Tensor]):
        self.learner, self.params = learner, params

    def __call__(self, batch: Batch) -> torch.Tensor:
        lr = self.learner
        with torch.no_grad(), lr.eval_mode() if lr.has_dropout else contextlib.nullcontext():
            with lr.autocast():
                hidden = functional_call(lr.model, self.params, (batch.ids, batch.mask))
            return hidden[:, :-1][batch.sel]
