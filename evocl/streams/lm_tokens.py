"""Tokens of a generative stream: prompt/response pairs and plain texts for a causal LM.

Format of a prompt/response pair:

- with a chat template (``tokenizer.chat_template``): the prompt part is the template rendered
  for ``[user: prompt]`` with the generation prompt; the response part is what the template
  adds for ``[user: prompt, assistant: response]`` beyond it, up to and including the last
  eos (end-of-turn) token: so the target includes the end-of-turn token, and what a template
  writes after it (a newline) is left out. SmolLM2's template also adds its default system
  turn to the prompt part.
- without one: the prompt part is ``prompt + "\\n"`` with the tokenizer's special tokens (a
  BOS where it adds one); the response part is the response's tokens and the eos token.

``encode_prompt`` gives the prompt part alone: what a model generates from, the same ids as in
training. A plain text is its tokens with the tokenizer's special tokens.

Targets: ``target_mask[p] == 1`` when token ``p`` is a target predicted from tokens ``< p``:
the response tokens of a pair, every token but the first of a text; never position 0 nor
padding. Truncation to ``max_length`` (rule ``prompt-left-v1``) keeps the response: the
prompt loses tokens from its start (its left: a system turn first, then the start of the
question) until the row fits, down to its last ``max_length // 4`` tokens (at least one, all
of a shorter prompt: the end of the question and the assistant header stay); then the
response keeps its first tokens (a cut response loses its end-of-turn token). A text keeps
its first ``max_length`` tokens. A row left with no target (a text of one token) is dropped,
and a warning names the task, split and count; ``rows`` maps tokenized rows to the split's
rows.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from typing import Any

import numpy as np

from evocl.errors import StreamError
from evocl.streams.types import SPLITS, GenerativeSplit, Stream

TRUNCATION = "prompt-left-v1"


def format_rule(tokenizer: Any) -> str:
    """Names the pair format and the truncation rule: part of the token cache key."""
    template = getattr(tokenizer, "chat_template", None)
    if template:
        text = template if isinstance(template, str) else json.dumps(template, sort_keys=True)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
        return f"chat:{digest}:eos={tokenizer.eos_token!r}:{TRUNCATION}"
    return f"plain-newline-eos:{TRUNCATION}"


def _chat(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _render(tokenizer: Any, messages: list[dict[str, str]], generation: bool) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=generation)
    if not isinstance(text, str):
        raise StreamError("the tokenizer's chat template did not render to text",
                          source="tokenizer", field="chat_template")
    return text


def pair_texts(tokenizer: Any, prompt: str, response: str) -> tuple[str, str]:
    """(prompt part, response part) of a pair with a chat template, as text."""
    user = [{"role": "user", "content": prompt}]
    head = _render(tokenizer, user, True)
    full = _render(tokenizer, user + [{"role": "assistant", "content": response}], False)
    if not full.startswith(head):
        raise StreamError("the tokenizer's chat template does not extend the prompt with the "
                          "answer; pairs cannot be split into prompt and response",
                          source="tokenizer", field="chat_template")
    tail = full[len(head):]
    eos = getattr(tokenizer, "eos_token", None)
    if eos and eos in tail:
        tail = tail[: tail.rindex(eos) + len(eos)]
    return head, tail


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """The prompt part's ids, as in training: what a model generates an answer from."""
    if _chat(tokenizer):
        text = _render(tokenizer, [{"role": "user", "content": prompt}], True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(prompt + "\n")["input_ids"])


def _encode_pairs(tokenizer: Any, prompts: list[str], responses: list[str]
                  ) -> tuple[list[list[int]], list[list[int]]]:
    if not prompts:
        return [], []
    if _chat(tokenizer):
        parts = [pair_texts(tokenizer, p, r) for p, r in zip(prompts, responses)]
        heads = tokenizer([h for h, _ in parts], add_special_tokens=False)["input_ids"]
        tails = tokenizer([t for _, t in parts], add_special_tokens=False)["input_ids"]
        return [list(x) for x in heads], [list(x) for x in tails]
    heads = tokenizer([p + "\n" for p in prompts])["input_ids"]
    tails = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    eos = getattr(tokenizer, "eos_token_id", None)
    end = [] if eos is None else [int(eos)]
    return [list(x) for x in heads], [list(x) + end for x in tails]


def fit_pair(head: list[int], tail: list[int], max_length: int) -> tuple[list[int], int]:
    """(ids, index of the first response token) after truncation (module docstring)."""
    if len(head) + len(tail) <= max_length:
        return head + tail, len(head)
    floor = min(len(head), max(1, max_length // 4))
    keep_head = max(floor, max_length - len(tail))
    keep_tail = max_length - keep_head
    return head[len(head) - keep_head:] + tail[:keep_tail], keep_head


def encode_split(split: GenerativeSplit, tokenizer: Any, max_length: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, attention_mask, target_mask, rows) of one split: int64, right-padded."""
    pairs = [i for i, r in enumerate(split.responses) if r is not None]
    texts = [i for i, r in enumerate(split.responses) if r is None]
    heads, tails = _encode_pairs(tokenizer, [split.prompts[i] for i in pairs],
                                 [split.responses[i] for i in pairs])
    encoded: dict[int, tuple[list[int], list[int]]] = {}
    for i, h, t in zip(pairs, heads, tails):
        ids, start = fit_pair(h, t, max_length)
        encoded[i] = (ids, [0] * start + [1] * (len(ids) - start))
    if texts:
        for i, ids in zip(texts, tokenizer([split.prompts[i] for i in texts])["input_ids"]):
            ids = list(ids)[:max_length]
            encoded[i] = (ids, [0] + [1] * (len(ids) - 1) if ids else [])
    rows = [i for i in range(len(split)) if any(encoded[i][1][1:])]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max([len(encoded[i][0]) for i in rows] + [1])
    ids = np.full((len(rows), width), pad, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    target = np.zeros((len(rows), width), dtype=np.int64)
    for k, i in enumerate(rows):
        row, flags = encoded[i]
        ids[k, : len(row)] = row
        mask[k, : len(row)] = 1
        target[k, 1: len(row)] = flags[1:]  # never position 0: nothing predicts it
    return ids, mask, target, np.array(rows, dtype=np.int64)


def tokenize_generative(stream: Stream, tokenizer: Any, max_length: int) -> list[dict[str, Any]]:
    """Per task, per split: the arrays of ``encode_split``; warns about dropped rows."""
    out = []
    for task in stream.tasks:
        parts = {}
        for which in SPLITS:
            split = task.split(which)
            parts[which] = encode_split(split, tokenizer, max_length)
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
