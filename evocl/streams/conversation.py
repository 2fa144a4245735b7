"""Conversations: records -> turns (checked), turns -> token ids and each assistant turn's span.

A conversation is a tuple of turns ``(role, content)``, role ``system`` | ``user`` |
``assistant``. Two record formats are read:

- TRL / OpenAI ``messages``: ``[{"role": "user", "content": "..."}, ...]``;
- ShareGPT ``conversations``: ``[{"from": "human" | "gpt" | "system", "value": "..."}, ...]``
  (``user`` / ``assistant`` / ``chatgpt`` / ``model`` are read as their roles too).

Rules (`parse_turns`; each broken one is a `ConversationError` naming the field): a non-empty
list of mappings; a known role; content a non-empty string; a system turn only first; the
first turn after it a user turn; at least one assistant turn; the last turn an assistant turn
(a conversation ending on a user turn has nothing to learn from after it), unless
``open_end`` (retention prompts without an answer).

Rendering (`encode_conversations`). With a chat template, the whole conversation is rendered
once; each assistant turn k is found by rendering prefixes: ``head_k`` = turns[:k] with the
generation prompt, ``full_k`` = turns[:k+1]; the turn's target is what ``full_k`` adds to
``head_k``, up to and including its last eos (end-of-turn) token, so a template's trailing
newline is no target. Every ``head_k + target_k`` must be a prefix of the whole rendering
(else the template renders earlier turns differently in a longer conversation, and the
conversation is refused). This needs no ``{% generation %}`` markers (which
``return_assistant_tokens_mask`` needs and SmolLM2's template lacks). The text is cut at the
span boundaries and each piece tokenized without special tokens, so the ids before a span are
exactly the ids a model generates that turn from. Without a chat template: a system or user
turn is ``content + "\\n"`` (the first piece with the tokenizer's special tokens, a BOS where
it adds one), an assistant turn its content's tokens and the eos token (all of it the
target), so a one-exchange conversation is the prompt/response pair format of ``lm_tokens``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Sequence

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "model": "assistant", "system": "system"}
Turn = tuple[str, str]


class ConversationError(ValueError):
    """A broken conversation rule: ``field`` (e.g. ``messages[2].role``) and ``rule``."""

    def __init__(self, rule: str, field: str):
        super().__init__(f"{field}: {rule}")
        self.rule, self.field = rule, field


def parse_turns(value: Any, key: str = "messages", *, sharegpt: bool = False,
                open_end: bool = False) -> tuple[Turn, ...]:
    """The checked turns of a ``messages`` (or, with ``sharegpt``, ``conversations``) value;
    ``key`` names the field in errors."""
    role_key, content_key = ("from", "value") if sharegpt else ("role", "content")
    if not isinstance(value, (list, tuple)) or not value:
        raise ConversationError(f"expected a non-empty list of {{{role_key}, {content_key}}} "
                                "mappings", key)
    turns: list[Turn] = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise ConversationError(f"expected a mapping with {role_key} and {content_key}, got "
                                    f"{type(item).__name__}", where)
        raw = item.get(role_key)
        role = SHAREGPT_ROLES.get(raw) if sharegpt and isinstance(raw, str) else raw
        if role not in ROLES:
            known = "human, gpt or system" if sharegpt else "system, user or assistant"
            what = "missing" if raw is None else f"unknown role {raw!r:.40}"
            raise ConversationError(f"{what}; expected {known}", f"{where}.{role_key}")
        content = item.get(content_key)
        if not isinstance(content, str):
            what = "missing" if content is None else f"expected a string, got {type(content).__name__}"
            raise ConversationError(what, f"{where}.{content_key}")
        if not content.strip():
            raise ConversationError("empty content", f"{where}.{content_key}")
        if role == "system" and i > 0:
            raise ConversationError("a system turn may only come first", f"{where}.{role_key}")
        turns.append((str(role), content.strip()))
    first = 1 if turns[0][0] == "system" else 0
    if first >= len(turns) or turns[first][0] != "user":
        raise ConversationError("the first turn after the system turn must be a user turn",
                                f"{key}[{first}].{role_key}")
    if not any(r == "assistant" for r, _ in turns) and not open_end:
        raise ConversationError("no assistant turn: nothing to learn", key)
    if turns[-1][0] != "assistant" and not open_end:
        raise ConversationError(f"the conversation ends on a {turns[-1][0]} turn; it must end on "
                                "an assistant turn", f"{key}[{len(turns) - 1}].{role_key}")
    return tuple(turns)


def as_messages(turns: Sequence[Turn]) -> list[dict[str, str]]:
    """TRL / OpenAI messages of ``turns``."""
    return [{"role": r, "content": c} for r, c in turns]


def turns_key(turns: Sequence[Turn]) -> str:
    """A stable text of ``turns`` (for fingerprints and duplicate checks)."""
    return json.dumps([list(t) for t in turns], ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------------------------ rendering
class TemplateError(ValueError):
    """The tokenizer's chat template cannot be split into turns (one line for the user)."""


def has_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def template_digest(tokenizer: Any) -> str:
    template = getattr(tokenizer, "chat_template", None) or ""
    text = template if isinstance(template, str) else json.dumps(template, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def render(tokenizer: Any, turns: Sequence[Turn], generation: bool) -> str:
    """The chat template's text of ``turns`` (``generation``: with the assistant header)."""
    try:
        text = tokenizer.apply_chat_template(as_messages(turns), tokenize=False,
                                             add_generation_prompt=generation)
    except Exception as exc:  # jinja raises many types; one line for the user
        raise TemplateError(f"the chat template cannot render this conversation "
                            f"({type(exc).__name__}: {exc})".replace("\n", " ")) from None
    if not isinstance(text, str):
        raise TemplateError("the tokenizer's chat template did not render to text")
    return text


@dataclass(frozen=True)
class Encoded:
    """One conversation's ids: ``spans[k] = (start, end)`` of the k-th assistant turn's target
    tokens; ``prompt_end``: where the last assistant turn starts (the ids a model answers
    from), or ``len(ids)`` for an open-ended conversation (it ends on a user turn)."""

    ids: list[int]
    spans: list[tuple[int, int]]
    prompt_end: int


def _template_pieces(tokenizer: Any, turns: Sequence[Turn]) -> list[tuple[str, bool]]:
    open_end = turns[-1][0] != "assistant"
    full = render(tokenizer, turns, open_end)
    eos = getattr(tokenizer, "eos_token", None)
    pieces: list[tuple[str, bool]] = []
    pos = 0
    for k, (role, _) in enumerate(turns):
        if role != "assistant":
            continue
        head = render(tokenizer, turns[:k], True)
        whole = render(tokenizer, turns[:k + 1], False)
        if not whole.startswith(head):
            raise TemplateError("the chat template does not extend the prompt with the "
                                "answer; assistant turns cannot be found")
        tail = whole[len(head):]
        if eos and eos in tail:
            tail = tail[: tail.rindex(eos) + len(eos)]
        if not tail or not full.startswith(head + tail) or len(head) < pos:
            raise TemplateError("the chat template renders earlier turns differently in a "
                                "longer conversation; assistant turns cannot be found")
        pieces += [(full[pos:len(head)], False), (tail, True)]
        pos = len(head) + len(tail)
    if open_end:
        pieces.append((full[pos:], False))
    return [(t, target) for t, target in pieces if t or target]


def _plain_pieces(turns: Sequence[Turn]) -> list[tuple[str, bool]]:
    return [(c, True) if r == "assistant" else (c + "\n", False) for r, c in turns]


def encode_conversations(tokenizer: Any, conversations: Sequence[Sequence[Turn]]) -> list[Encoded]:
    """Ids and assistant spans of each conversation (module docstring); one tokenizer call
    for all their pieces. TemplateError when the template cannot be split into turns."""
    chat = has_template(tokenizer)
    all_pieces = [_template_pieces(tokenizer, t) if chat else _plain_pieces(t)
                  for t in conversations]
    flat = [text for pieces in all_pieces for text, _ in pieces]
    ids_of = tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
    firsts: list[list[int]] = []
    if not chat:  # the first piece with the tokenizer's special tokens (a BOS where it adds one)
        heads = [p[0][0] for p in all_pieces]
        firsts = [list(x) for x in tokenizer(heads)["input_ids"]] if heads else []
    eos = getattr(tokenizer, "eos_token_id", None)
    out, k = [], 0
    for c, pieces in enumerate(all_pieces):
        ids: list[int] = []
        spans: list[tuple[int, int]] = []
        for p, (_, target) in enumerate(pieces):
            piece = firsts[c] if (not chat and p == 0) else list(ids_of[k])
            k += 1
            if target and not chat and eos is not None:
                piece = piece + [int(eos)]
            if target:
                spans.append((len(ids), len(ids) + len(piece)))
            ids += piece
        open_end = conversations[c][-1][0] != "assistant"
        out.append(Encoded(ids, spans, len(ids) if open_end or not spans else spans[-1][0]))
    return out


def encode_prompt_turns(tokenizer: Any, turns: Sequence[Turn]) -> list[int]:
    """The ids a model answers the conversation's last assistant turn from (with the
    assistant header); for a conversation ending on a user turn, all of it."""
    enc = encode_conversations(tokenizer, [turns])[0]
    return enc.ids[:enc.prompt_end]
