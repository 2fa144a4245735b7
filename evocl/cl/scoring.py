"""Scorers of a causal LM on a held-out split: small functions the learner calls per round.

Each takes the learner (its model, device, autocast, options, tokenizer) and a generative
`SplitTensors` (held-out rows: the target is each row's last assistant turn) and returns one
score in [0, 1] per task, so R[i][j] keeps its meaning whatever the metric:

    token_scores       teacher-forced next-token accuracy (micro-averaged over a task's target
                       tokens) and mean token NLL, one pass of the model over the rows
    generation_scores  the greedy answer to each row's prompt (the ids before its target, as in
                       training) scored against the row's reference by `text_metrics`
                       (exact_match, rougeL; agreement: against given answers), mean per task

A retention set is a split of one "task" scored by the same functions.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch
import torch.nn.functional as F

#: target positions per LM-head chunk in evaluation (bounds the [n, vocab] logits in memory)
EVAL_CHUNK = 512


def token_scores(learner: Any, data: Any, n_tasks: int, after: int
                 ) -> tuple[list[float], list[float]]:
    """(token accuracy, mean token NLL) of each task j < n_tasks of ``data``."""
    import numpy as np

    end = data.offsets[n_tasks]
    order = torch.argsort(data.lengths[:end], stable=True)
    correct = torch.zeros(n_tasks, dtype=torch.float64)
    nll = torch.zeros(n_tasks, dtype=torch.float64)
    count = torch.zeros(n_tasks, dtype=torch.float64)
    bs = learner.options.eval_batch_size
    with learner.eval_mode(), torch.inference_mode():
        for k in range(0, end, bs):
            idx = order[k:k + bs]
            b = learner._batch(data, idx, after, np.empty(0, dtype=np.int64), pairs=False)
            with learner.autocast():
                hidden = learner.model(b.ids, b.mask)[:, :-1][b.sel]
            row_task = b.task[:, None].expand_as(b.sel)[b.sel]
            for c in range(0, len(b.y), EVAL_CHUNK):
                with learner.autocast():
                    logits = learner.model.logits(hidden[c:c + EVAL_CHUNK]).float()
                y = b.y[c:c + EVAL_CHUNK]
                task = row_task[c:c + EVAL_CHUNK].cpu()
                hit = (logits.argmax(-1) == y).double().cpu()
                tok_nll = F.cross_entropy(logits, y, reduction="none").double().cpu()
                correct.index_add_(0, task, hit)
                nll.index_add_(0, task, tok_nll)
                count.index_add_(0, task, torch.ones_like(hit))
    acc = [float(correct[j] / count[j]) if count[j] > 0 else 0.0 for j in range(n_tasks)]
    mean_nll = [float(nll[j] / count[j]) if count[j] > 0 else 0.0 for j in range(n_tasks)]
    return acc, mean_nll


def prompts_of(data: Any, rows: Sequence[int]) -> list[list[int]]:
    """Each row's prompt: its ids before its first target token (all of a row without one)."""
    out = []
    for r in rows:
        n = int(data.lengths[r])
        tgt = data.targets[r, :n]
        first = int(torch.argmax(tgt.int())) if bool(tgt.any()) else n
        out.append(data.ids[r, :first].tolist())
    return out


def reference_lengths(data: Any, rows: Sequence[int]) -> list[int]:
    """Target tokens of each row (its reference answer's length in tokens, end of turn
    included)."""
    return [int(data.targets[r].sum()) for r in rows]


def answers(learner: Any, prompts: list[list[int]], max_new_tokens: int) -> list[str]:
    """Greedy answers (`evocl.cl.generation`), timed into ``learner.timings["generation"]``."""
    from evocl.cl.generation import greedy_answers

    t0 = time.perf_counter()
    out = greedy_answers(learner.model.lm, learner.tokenizer, prompts, max_new_tokens,
                         learner.options.eval_batch_size, learner.device,
                         learner.autocast if learner.amp is not None else None)
    learner.timings["generation"] = learner.timings.get("generation", 0.0) + \
        time.perf_counter() - t0
    return out


def generation_scores(learner: Any, data: Any, tasks: Sequence[int], metrics: Sequence[str]
                      ) -> dict[int, float]:
    """Mean score of each task in ``tasks`` (``metrics[j]``: exact_match or rougeL) on the
    greedy answers to its rows' prompts."""
    from evocl.cl.generation import budget
    from evocl.cl.text_metrics import score_texts

    out: dict[int, float] = {}
    for j in tasks:
        rows = list(range(data.offsets[j], data.offsets[j + 1]))
        if not rows:
            out[j] = 0.0
            continue
        refs = [data.references[r] or "" for r in rows]
        said = answers(learner, prompts_of(data, rows),
                       budget(reference_lengths(data, rows), learner.options.max_new_tokens))
        scores = score_texts(metrics[j], said, refs)
        out[j] = sum(scores) / len(scores)
    return out


def retention_score(learner: Any, data: Any, metric: str, untrained: list[str] | None
                    ) -> tuple[float, list[str] | None]:
    """(score, answers) of a retention split. ``agreement`` scores the answers against
    ``untrained`` (the untrained model's answers; None: these are they, score 1)."""
    from evocl.cl.generation import budget
    from evocl.cl.text_metrics import score_texts

    rows = list(range(len(data)))
    if metric == "token_accuracy":
        acc, _ = token_scores(learner, data, 1, -1)
        return acc[0], None
    if metric == "agreement":
        if untrained is None:
            lengths: list[int] = []
        else:
            lengths = [len(learner.tokenizer(a, add_special_tokens=False)["input_ids"]) + 1
                       for a in untrained]
        said = answers(learner, prompts_of(data, rows),
                       budget(lengths, learner.options.max_new_tokens))
        refs = said if untrained is None else untrained
    else:
        said = answers(learner, prompts_of(data, rows),
                       budget(reference_lengths(data, rows), learner.options.max_new_tokens))
        refs = [data.references[r] or "" for r in rows]
    scores = score_texts(metric, said, refs)
    return sum(scores) / len(scores), said
