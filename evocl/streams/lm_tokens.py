"""Tokens of a generative stream: pairs, conversations and plain texts for a causal LM.

A prompt/response pair is the conversation ``[user: prompt, assistant: response]``; pairs and
conversations are rendered by `evocl.streams.conversation` (its docstring: how each assistant
turn is found):

- with a chat template (``tokenizer.chat_template``): the template's text, each assistant
  turn's target its content up to and including the end-of-turn (eos) token (what a template
  writes after it, a newline, is left out); SmolLM2's template adds its default system turn;
- without one: a user (system) turn is ``content + "\\n"`` (the first with the tokenizer's
  special tokens: a BOS where it adds one), an assistant turn its tokens and the eos token.

``encode_prompt`` gives a prompt's ids alone: what a model generates from, the same ids as in
training. A plain text is its tokens with the tokenizer's special tokens.

Targets: ``target_mask[p] == 1`` when token ``p`` is a target predicted from tokens ``< p``.
Training rows: every assistant turn (TRL's ``assistant_only_loss``), every token but the first
of a text; a preference row (`evocl.streams.preference`) is two sequences, chosen and rejected,
each with its answer alone as the target; held-out rows (val, test): the last assistant turn only, the one that is scored;
never position 0 nor padding. Truncation to ``max_length`` (rule ``turns-left-v1``) keeps the
last assistant turn: the tokens before it (the history) lose tokens from their start (their
left: a system turn first, then the earliest turns) until the row fits, down to their last
``max_length // 4`` tokens (at least one, all of a shorter history: the end of the last user
turn and the assistant header stay); only then does the last assistant turn lose its end (a
cut answer loses its end-of-turn token). What follows the last assistant turn is dropped. A
text keeps its first ``max_length`` tokens. A row left with no target (a text of one token) is
dropped, and a warning names the task, split and count; ``rows`` maps tokenized rows to the
split's rows.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from evocl.errors import StreamError
from evocl.streams.conversation import (
    TemplateError,
    encode_conversations,
    encode_prompt_turns,
    has_template,
    template_digest,
)
from evocl.streams.types import SPLITS, GenerativeSplit, Stream

TRUNCATION = "turns-left-v1"
#: splits whose rows are scored: only their last assistant turn is a target
HELD_OUT = ("val", "test")


def format_rule(tokenizer: Any) -> str:
    """Names the pair format and the truncation rule: part of the token cache key."""
    if has_template(tokenizer):
        return f"chat:{template_digest(tokenizer)}:eos={tokenizer.eos_token!r}:{TRUNCATION}"
    return f"plain-newline-eos:{TRUNCATION}"


def _template_error(exc: TemplateError) -> StreamError:
    return StreamError(str(exc), source="tokenizer", field="chat_template")


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """The prompt part's ids, as in training: what a model generates an answer from."""
    return encode_turns_prompt(tokenizer, (("user", prompt),))


def encode_turns_prompt(tokenizer: Any, turns: Any) -> list[int]:
    """The ids a model answers ``turns``' last assistant turn from (all of an open-ended
    conversation, one that ends on a user turn)."""
    try:
        return encode_prompt_turns(tokenizer, turns)
    except TemplateError as exc:
        raise _template_error(exc) from None


def fit_pair(head: list[int], tail: list[int], max_length: int) -> tuple[list[int], int]:
    """(ids, index of the first response token) after truncation (module docstring)."""
    if len(head) + len(tail) <= max_length:
        return head + tail, len(head)
    floor = min(len(head), max(1, max_length // 4))
    keep_head = max(floor, max_length - len(tail))
    keep_tail = max_length - keep_head
    return head[len(head) - keep_head:] + tail[:keep_tail], keep_head


def fit_conversation(ids: list[int], spans: list[tuple[int, int]], max_length: int,
                     last_only: bool) -> tuple[list[int], list[int]]:
    """(ids, target flags) of one conversation after truncation (``turns-left-v1``)."""
    start, end = spans[-1]
    kept, first = fit_pair(ids[:start], ids[start:end], max_length)
    cut = start - first  # tokens dropped from the left of the history
    flags = [0] * len(kept)
    for s, e in (spans[-1:] if last_only else spans):
        for p in range(max(0, s - cut), min(len(kept), e - cut)):
            flags[p] = 1
    return kept, flags


def _padded(rows: list[tuple[list[int], list[int]]], pad: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, attention mask, target mask) of rows (ids, target flags), right-padded."""
    width = max([len(r) for r, _ in rows] + [1])
    ids = np.full((len(rows), width), pad, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    target = np.zeros((len(rows), width), dtype=np.int64)
    for k, (row, flags) in enumerate(rows):
        ids[k, : len(row)] = row
        mask[k, : len(row)] = 1
        target[k, 1: len(row)] = flags[1:]  # never position 0: nothing predicts it
    return ids, mask, target


def encode_split(split: GenerativeSplit, tokenizer: Any, max_length: int,
                 held_out: bool = False) -> tuple[np.ndarray, ...]:
    """(input_ids, attention_mask, target_mask, rows) of one split: int64, right-padded.
    ``held_out``: only the last assistant turn of a row is a target. A split with preference
    rows adds (rejected input_ids, attention_mask, target_mask, preference flags): a pair's
    chosen conversation is its row in the first arrays, its rejected one the same row of the
    second (zeros for a supervised row); the target of both is the answer alone, in every
    split (a DPO log-probability is the answer's)."""
    convs = [i for i in range(len(split)) if split.turns(i) is not None]
    texts = [i for i in range(len(split)) if split.turns(i) is None]
    pairs = [i for i in range(len(split)) if split.is_preference(i)]
    try:
        coded = encode_conversations(tokenizer, [split.turns(i) for i in convs])
        coded_rej = encode_conversations(tokenizer, [split.rejected_turns(i) for i in pairs])
    except TemplateError as exc:
        raise _template_error(exc) from None
    encoded: dict[int, tuple[list[int], list[int]]] = {}
    for i, enc in zip(convs, coded):
        encoded[i] = fit_conversation(enc.ids, enc.spans, max_length,
                                      held_out or split.is_preference(i))
    rejected = {i: fit_conversation(enc.ids, enc.spans, max_length, True)
                for i, enc in zip(pairs, coded_rej)}
    if texts:
        for i, ids in zip(texts, tokenizer([split.prompts[i] for i in texts])["input_ids"]):
            ids = list(ids)[:max_length]
            encoded[i] = (ids, [0] + [1] * (len(ids) - 1) if ids else [])
    rows = [i for i in range(len(split)) if any(encoded[i][1][1:])
            and (i not in rejected or any(rejected[i][1][1:]))]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, mask, target = _padded([encoded[i] for i in rows], pad)
    out: tuple[np.ndarray, ...] = (ids, mask, target, np.array(rows, dtype=np.int64))
    if pairs:
        out += _padded([rejected.get(i, ([], [])) for i in rows], pad)
        out += (np.array([int(i in rejected) for i in rows], dtype=np.int64),)
    return out


def encode_retention(split: GenerativeSplit, tokenizer: Any, max_length: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A retention split as `encode_split` gives a held-out split, every row kept: a row with
    a reference (it ends on an assistant turn) is truncated as a held-out row; a prompt without
    one keeps its last ``max_length - max_length // 4`` tokens (room for the answer) and has
    no target token."""
    try:
        coded = encode_conversations(tokenizer, [split.turns(i) for i in range(len(split))])
    except TemplateError as exc:
        raise _template_error(exc) from None
    rows = []
    for i, enc in enumerate(coded):
        if split.responses[i] is not None and enc.spans:
            rows.append(fit_conversation(enc.ids, enc.spans, max_length, True))
        else:
            keep = max(1, max_length - max_length // 4)
            rows.append((enc.ids[-keep:], [0] * min(keep, len(enc.ids))))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return (*_padded(rows, pad), np.arange(len(rows), dtype=np.int64))


def tokenize_generative(stream: Stream, tokenizer: Any, max_length: int) -> list[dict[str, Any]]:
    """Per task, per split: the arrays of ``encode_split``; warns about dropped rows."""
    out = []
    for task in stream.tasks:
        parts = {}
        for which in SPLITS:
            split = task.split(which)
            parts[which] = encode_split(split, tokenizer, max_length, which in HELD_OUT)
            dropped = len(split) - len(parts[which][3])
            if dropped:
                warnings.warn(f"stream {stream.name!r}: task {task.name!r} {which}: {dropped} "
                              f"of {len(split)} rows have no target token left at max_length "
                              f"{max_length} (texts of one token); dropped", stacklevel=3)
            if not len(parts[which][3]):
                raise StreamError(f"task {task.name!r} {which}: no row has a target token at "
                                  f"max_length {max_length}", source=f"stream:{stream.name}",
                                  field=f"tasks[{task.index}]")
        out.append(parts)
    return out
