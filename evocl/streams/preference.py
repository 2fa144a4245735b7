"""Preference records: a prompt, the answer users preferred and the one they did not.

    {"prompt": "...", "chosen": "...", "rejected": "...", "task": "..."}
    {"messages": [{"role": "user", "content": "..."}, ...], "chosen": "...", "rejected": "...",
     "task": "..."}

(TRL's "explicit prompt" preference format; ``messages`` is the conversation so far, ending on
a user turn.) A preference record is a `GenRecord` whose ``response`` is the chosen answer and
``rejected`` the other one, so that a generative stream mixes them with supervised rows and
every split, dedup and replay rule applies unchanged. A task holds either kind, not both: a
task of preference records is trained by DPO (`evocl.cl.dpo`) and scored by
``preference_accuracy`` (the held-out share of pairs whose chosen answer's implicit reward is
above the rejected one's).

Rules (each broken one is one StreamError naming the file and line, the field and the rule):
``chosen`` and ``rejected`` both present, non-empty strings, and different (after stripping
whitespace); a non-empty ``prompt`` or a valid open-ended ``messages`` (`parse_turns`, ending
on a user turn), not both; a ``task``; no ``response`` / ``text`` beside them.
"""

from __future__ import annotations

from typing import Any

from evocl.errors import StreamError
from evocl.streams.types import PREFERENCE_METRIC  # noqa: F401  (the name users import from here)

PREFERENCE_FIELDS = ("chosen", "rejected")


def is_preference(row: dict[str, Any]) -> bool:
    """Whether a source row is a preference record (it has ``chosen`` or ``rejected``)."""
    return any(row.get(k) is not None for k in PREFERENCE_FIELDS)


def _answer(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if value is None:
        raise StreamError(f"a preference record needs both 'chosen' and 'rejected'; {key!r} is "
                          "missing", source=where, field=key)
    if isinstance(value, list):  # TRL's conversational form: [{"role": "assistant", ...}]
        if (len(value) == 1 and isinstance(value[0], dict)
                and value[0].get("role") == "assistant"):
            value = value[0].get("content")
        else:
            raise StreamError("expected a string or one assistant message", source=where,
                              field=key)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise StreamError(f"expected a string, got {type(value).__name__}", source=where,
                          field=key)
    text = str(value).strip()
    if not text:
        raise StreamError("empty answer", source=where, field=key)
    return text


def parse_preference(row: dict[str, Any], cols: dict[str, str], where: str) -> Any:
    """The `GenRecord` of a preference row (module docstring: the rules)."""
    from evocl.streams.conversation import ConversationError, parse_turns
    from evocl.streams.generative import GenRecord

    chosen, rejected = _answer(row, "chosen", where), _answer(row, "rejected", where)
    if chosen == rejected:
        raise StreamError("chosen and rejected are the same answer: no preference to learn",
                          source=where, field="rejected")
    for other in ("response", "text"):
        if row.get(cols[other]) not in (None, ""):
            raise StreamError(f"a preference record has chosen/rejected, not {cols[other]!r}",
                              source=where, field=cols[other])
    prompt, messages = row.get(cols["prompt"]), row.get(cols["messages"])
    if prompt is not None and messages is not None:
        raise StreamError(f"give {cols['prompt']!r} or {cols['messages']!r}, not both",
                          source=where, field=cols["messages"])
    turns: tuple[tuple[str, str], ...] | None = None
    if messages is not None:
        try:
            turns = parse_turns(messages, cols["messages"], open_end=True)
        except ConversationError as exc:
            raise StreamError(exc.rule, source=where, field=exc.field) from None
        if turns[-1][0] != "user":
            raise StreamError("a preference record's messages end on a user turn (the answers "
                              "are chosen and rejected)", source=where,
                              field=f"{cols['messages']}[{len(turns) - 1}].role")
        prompt = turns[-1][1]
    else:
        if prompt is None:
            raise StreamError(f"a preference record needs a {cols['prompt']!r} or "
                              f"{cols['messages']!r}", source=where, field=cols["prompt"])
        if isinstance(prompt, bool) or not isinstance(prompt, (str, int, float)):
            raise StreamError(f"expected a string, got {type(prompt).__name__}", source=where,
                              field=cols["prompt"])
        prompt = str(prompt).strip()
        if not prompt:
            raise StreamError("empty prompt", source=where, field=cols["prompt"])
    task = row.get(cols["task"])
    if task is None or not str(task).strip():
        raise StreamError(f"field {cols['task']!r} missing", source=where, field=cols["task"])
    split = row.get(cols["split"])
    full = None if turns is None else turns + (("assistant", chosen),)
    return GenRecord(str(prompt), chosen, str(task).strip(),
                     None if split in (None, "") else str(split), messages=full,
                     rejected=rejected)


def rejected_turns(chosen_turns: tuple[tuple[str, str], ...], rejected: str
                   ) -> tuple[tuple[str, str], ...]:
    """The conversation with the rejected answer in place of the chosen one (the last turn)."""
    return chosen_turns[:-1] + (("assistant", rejected),)
