"""The built-in ``chat`` stream: the English conversations of ``chatterbot-corpus``.

Each file of ``chatterbot_corpus/data/english/*.yml`` holds conversations, lists of turns;
every two consecutive turns make a prompt -> response pair (as ChatterBot's own trainer reads
them: turn k+1 answers turn k). The files are read within evocl's YAML limits with YAML's
base loader (every scalar a string: "yes" stays "yes") and grouped into four tasks of usable size (tech_support.yml
repeats 10 pairs about 100 times each, so it joins coding rather than being a task):

- ``coding``: coding, computers, tech_support
- ``trivia``: trivia, science, history, literature, movies, sports, politics, money, food,
  health
- ``conversation``: conversations, greetings, humor, gossip
- ``feelings``: emotion, psychology, ai, botprofile (feelings, and the bot on itself)

Pairs per task after dropping duplicates (chatterbot-corpus 1.3.3): coding 143, trivia 460,
conversation 180, feelings 393 (1,176 of 2,306 pairs; tech_support alone repeats 1,040).
Splits at seed 0 (val and test 15% of a task, capped at 48; train uncapped): coding
101/21/21, trivia 322/48/48, conversation 126/27/27, feelings 275/48/48 (a test pins them).

``chat-multiturn`` reads the same files as whole conversations, one row each: turns alternate
user, assistant, user, ... from the first (as ChatterBot reads them), a trailing user turn is
dropped (a conversation must end on an assistant turn), so every assistant turn is trained on
and the last one is scored. Same four tasks. Both streams carry the default retention set
(`evocl.streams.retention.default_retention`: BBC News headlines).

``chat-feedback`` is a stream of user feedback built offline from the same pairs: two
supervised tasks (``coding`` and ``conversation``, as in ``chat``), then one preference task,
``feedback``: every pair of the ``feelings`` group is a preference record whose chosen answer
is the corpus answer and whose rejected answer is the answer of a ``trivia`` pair (picked by a
fixed stride through the trivia answers, never equal to the chosen one), as if a user had
preferred the on-topic answer over an off-topic one. It measures whether DPO teaches the model
to rank an answer that fits the prompt above a fluent answer to another question, and whether
that ranking survives (and the supervised tasks survive it): a relevance preference. It does
not measure helpfulness, tone, safety or factuality (no rejected answer is a subtly worse
answer to the same question), nor learning from real users' judgements.
"""

from __future__ import annotations

import functools
from typing import Any

import yaml

from evocl.errors import StreamError, UserError
from evocl.streams.corpora import package_dir
from evocl.streams.generative import GenRecord
from evocl.streams.types import Builtin
from evocl.yamlsafe import read_yaml

PACKAGE = "chatterbot_corpus"
INSTALL = "pip install chatterbot-corpus"
GROUPS: dict[str, tuple[str, ...]] = {
    "coding": ("coding", "computers", "tech_support"),
    "trivia": ("trivia", "science", "history", "literature", "movies", "sports", "politics",
               "money", "food", "health"),
    "conversation": ("conversations", "greetings", "humor", "gossip"),
    "feelings": ("emotion", "psychology", "ai", "botprofile"),
}


def _grouped(rows_of: Any) -> tuple[GenRecord, ...]:
    """``rows_of(path, task)``'s records of every grouped English file, in GROUPS order."""
    root = package_dir(PACKAGE, INSTALL) / "data" / "english"
    return tuple(rec for task, files in GROUPS.items() for stem in files
                 for rec in rows_of(root / f"{stem}.yml", task))


@functools.cache
def chat_records() -> tuple[GenRecord, ...]:
    """Every (turn, next turn) pair of the grouped English files, in GROUPS order."""
    return _grouped(lambda path, task: [GenRecord(p, r, task) for p, r in _pairs(path)])


@functools.cache
def conversation_records() -> tuple[GenRecord, ...]:
    """Every conversation of the grouped English files as one row, in GROUPS order."""
    from evocl.streams.generative import conversation_record

    return _grouped(lambda path, task: [conversation_record(t, task)
                                        for t in _conversations(path)])


def _conversations(path) -> list[tuple[tuple[str, str], ...]]:
    out = []
    for turns in _dialogs(path):
        texts: list[str] = []
        for t in turns:  # a blank turn ends the usable part of a dialog
            if not t:
                break
            texts.append(t)
        texts = texts[: len(texts) // 2 * 2]
        if texts:
            out.append(tuple(("user" if i % 2 == 0 else "assistant", t)
                             for i, t in enumerate(texts)))
    return out


def _pairs(path) -> list[tuple[str, str]]:
    out = []
    for turns in _dialogs(path):
        out.extend((a, b) for a, b in zip(turns, turns[1:]) if a and b)
    return out


def _dialogs(path) -> list[list[str]]:
    try:
        data = read_yaml(path, loader_cls=yaml.BaseLoader, what="chatterbot-corpus file")
    except UserError as exc:
        raise StreamError(f"{exc.rule}; reinstall it with `{INSTALL}`", source=str(path),
                          field="file") from None
    conversations = data.get("conversations") if isinstance(data, dict) else None
    if not isinstance(conversations, list):
        raise StreamError(f"no conversations; reinstall it with `{INSTALL}`", source=str(path),
                          field="conversations")
    return [[t.strip() if isinstance(t, str) else "" for t in turns] for turns in conversations
            if isinstance(turns, list)]  # trivia.yml holds one stray string: not a dialog


def _default_retention():
    from evocl.streams.retention import default_retention

    return default_retention()


@functools.cache
def feedback_records() -> tuple[GenRecord, ...]:
    """``coding`` and ``conversation`` pairs, then the ``feelings`` pairs as preference records
    against ``trivia`` answers (module docstring)."""
    pairs = chat_records()
    off_topic = list(dict.fromkeys(r.response for r in pairs if r.task == "trivia"))
    out = [r for task in ("coding", "conversation") for r in pairs if r.task == task]
    for i, r in enumerate(r for r in pairs if r.task == "feelings"):
        k = (i * 7919) % len(off_topic)
        rejected = off_topic[k] if off_topic[k] != r.response else off_topic[(k + 1) % len(off_topic)]
        out.append(GenRecord(r.prompt, r.response, "feedback", rejected=rejected))
    return tuple(out)


CHAT = Builtin("chat", "generative, 4 tasks of English question -> answer pairs (chatterbot-corpus): "
               "coding, trivia, conversation, feelings", "generative",
               lambda: list(chat_records()), tuple(GROUPS), max_train=None, max_eval=48,
               retention=_default_retention)
CHAT_MULTITURN = Builtin("chat-multiturn", "generative, the chat stream's 4 tasks as whole "
                         "multi-turn conversations (chatterbot-corpus), the last answer scored",
                         "generative", lambda: list(conversation_records()), tuple(GROUPS),
                         max_train=None, max_eval=48, retention=_default_retention)
CHAT_FEEDBACK = Builtin("chat-feedback", "generative, chatterbot-corpus: coding and "
                        "conversation pairs, then feedback (chosen: the corpus answer; rejected: "
                        "an off-topic answer), a preference task trained by DPO", "generative",
                        lambda: list(feedback_records()), ("coding", "conversation", "feedback"),
                        max_train=None, max_eval=48, retention=_default_retention)
