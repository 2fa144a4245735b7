"""Scores of a generated answer against a reference, each in [0, 1] (pure Python, no torch).

    exact_match   1 when the answer and the reference are equal after SQuAD's normalisation
                  (lower case, punctuation removed, articles a / an / the removed, whitespace
                  collapsed), as in SQuAD v1.1's evaluation script and O-LoRA's / SuperNI's
                  ``compute_metrics.py``
    rougeL        ROUGE-L F-measure (longest common subsequence) of the ``rouge-score`` package,
                  Google's reference implementation, with its default tokenizer (lower case,
                  runs of [a-z0-9]) and Porter stemmer (nltk's, rule-based: nothing is
                  downloaded), as SuperNI and O-LoRA score; two answers with no word (e.g. both
                  empty) score 1 when equal after normalisation, else 0

``score_texts(metric, answers, references)`` gives one score per row.
"""

from __future__ import annotations

import functools
import re
import string
from typing import Any, Callable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(answer: str, reference: str) -> float:
    return float(normalize_answer(answer) == normalize_answer(reference))


@functools.cache
def _rouge_scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError:  # pragma: no cover - a dependency of evocl
        from evocl.errors import UserError

        raise UserError("the rouge-score package is not installed; run `pip install "
                        "rouge-score`", field="metric") from None
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F-measure (module docstring)."""
    scorer = _rouge_scorer()
    tokens = scorer._tokenizer.tokenize  # the scorer's own tokenizer, to spot empty texts
    if not tokens(answer) or not tokens(reference):
        return float(normalize_answer(answer) == normalize_answer(reference))
    return float(scorer.score(reference, answer)["rougeL"].fmeasure)


SCORERS: dict[str, Callable[[str, str], float]] = {"exact_match": exact_match,
                                                   "rougeL": rouge_l, "agreement": rouge_l}


def score_texts(metric: str, answers: Sequence[str], references: Sequence[str]) -> list[float]:
    """One score in [0, 1] per (answer, reference) under ``metric`` (``agreement`` is ROUGE-L
    against the untrained model's answer, given as the reference)."""
    fn = SCORERS[metric]
    return [fn(a, r) for a, r in zip(answers, references)]
