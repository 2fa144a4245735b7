"""Generative streams (for causal language models): records -> tasks -> seeded splits.

A record is a prompt/response pair (the loss is on the response tokens), a conversation
(``messages``: the loss is on every assistant turn, see ``conversation.py``) or a plain text
(the loss is on every token: domain-adaptive pre-training); all kinds may share a stream.
Every record names its task. Rules, as for classification streams (``build.py``):

- exact duplicate rows (the same prompt and response, the same conversation, or the same
  text) are dropped, the first occurrence kept, so no row is shared between splits or tasks;
- tasks come in the order of ``tasks`` (names; tasks not listed are left out) or in order of
  first appearance;
- each task is split on its own: its rows are permuted by a seed derived from (seed, task),
  capped to ``max_per_task``, cut into test / val / train by the fractions, then capped per
  split; rows that carry a ``split`` keep it;
- a task holds supervised rows (pairs, conversations, texts) or preference rows, not both; a
  task of preference rows is scored by ``preference_accuracy`` (and trained by DPO) whatever
  metric the stream names for its other tasks, and a supervised task cannot be;
- a task scored by a generated answer (``metrics``: exact_match, rougeL) needs an answer to
  compare with in every held-out row: a text row there is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from evocl.errors import StreamError
from evocl.records import derive_seed
from evocl.streams.build import SplitRule, split_records
from evocl.streams.conversation import turns_key
from evocl.streams.types import (GENERATIVE, PREFERENCE_METRIC, SPLITS, GenerativeSplit, Stream,
                                 Task)


@dataclass(frozen=True)
class GenRecord:
    """One row of a generative stream: ``response`` is None for a plain text (in ``prompt``);
    ``messages`` the turns of a conversation (then ``prompt`` / ``response`` are its last user
    and assistant turns); ``rejected`` the dispreferred answer of a preference record
    (`evocl.streams.preference`)."""

    prompt: str
    response: str | None
    task: str
    split: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None
    #: a preference record's rejected answer (``response`` is the chosen one)
    rejected: str | None = None


def conversation_record(turns: tuple[tuple[str, str], ...], task: str,
                        split: str | None = None) -> GenRecord:
    """The GenRecord of a checked conversation (`conversation.parse_turns`)."""
    users = [c for r, c in turns if r == "user"]
    answers = [c for r, c in turns if r == "assistant"]
    return GenRecord(users[-1] if users else "", answers[-1] if answers else None, task, split,
                     messages=tuple(turns))


def build_generative_stream(
    name: str,
    records: Iterable[GenRecord],
    *,
    seed: int,
    tasks: Sequence[str] | None = None,
    rule: SplitRule = SplitRule(),
    source: str = "<stream>",
    description: str = "",
    metrics: Mapping[str, str] | None = None,
) -> Stream:
    """Group, split and check ``records``; raise StreamError (one line) on any broken rule.
    ``metrics`` maps task names to their metric (absent: token accuracy)."""
    rows = _dedup(records)
    if not rows:
        raise StreamError("empty stream: no records", source=source, field="source")
    present = list(dict.fromkeys(r.task for r in rows))
    if tasks is None:
        order = present
    else:
        if isinstance(tasks, str) or not isinstance(tasks, (list, tuple)) or not tasks:
            raise StreamError("expected a non-empty list of task names", source=source,
                              field="tasks")
        order = []
        for i, t in enumerate(tasks):
            if isinstance(t, (list, tuple, dict)) or t is None:
                raise StreamError(f"a generative stream's tasks are task names, got {t!r}",
                                  source=source, field=f"tasks[{i}]")
            if str(t) in order:
                raise StreamError(f"task {str(t)!r} is listed twice", source=source,
                                  field=f"tasks[{i}]")
            if str(t) not in present:
                raise StreamError(f"task {str(t)!r} has no records in the data", source=source,
                                  field=f"tasks[{i}]")
            order.append(str(t))
    by_task: dict[str, list[GenRecord]] = {t: [] for t in order}
    for r in rows:
        if r.task in by_task:
            by_task[r.task].append(r)
    built = []
    for index, (tname, recs) in enumerate(by_task.items()):
        field = f"tasks[{index}]"
        parts = split_records(recs, f"task {tname!r}", derive_seed(seed, "split", tname, ""),
                              rule, rule.max_per_task, source, field)
        for which in SPLITS:
            if not parts[which]:
                raise StreamError(f"task {tname!r} has no {which} rows", source=source,
                                  field=field)
        metric = _task_kind_metric(tname, recs, (metrics or {}).get(tname), source, field)
        if metric not in (None, "token_accuracy"):
            for which in ("val", "test"):
                if any(r.response is None for r in parts[which]):
                    raise StreamError(f"task {tname!r} is scored by {metric}, which needs an "
                                      f"answer in every held-out row; its {which} split has text "
                                      "rows (no response)", source=source, field=field)
        splits = {w: GenerativeSplit(tuple(r.prompt for r in parts[w]),
                                     tuple(r.response for r in parts[w]),
                                     tuple(r.messages for r in parts[w]),
                                     tuple(r.rejected for r in parts[w])) for w in SPLITS}
        built.append(Task(index=index, name=tname, classes=(), metric=metric, **splits))
    return Stream(name=name, scenario=GENERATIVE, class_names=(), tasks=tuple(built),
                  description=description)


def _task_kind_metric(tname: str, recs: Sequence[GenRecord], metric: str | None, source: str,
                      field: str) -> str | None:
    """The task's metric, checked against its kind (preference rows or supervised rows)."""
    pref = sum(r.rejected is not None for r in recs)
    if 0 < pref < len(recs):
        raise StreamError(f"task {tname!r} mixes {pref} preference records (chosen/rejected) "
                          f"with {len(recs) - pref} supervised ones; put them in separate tasks",
                          source=source, field=field)
    if pref:  # a stream-wide metric is for its supervised tasks
        return PREFERENCE_METRIC
    if metric == PREFERENCE_METRIC:
        raise StreamError(f"task {tname!r} has no preference records (chosen/rejected); "
                          f"{PREFERENCE_METRIC} needs them", source=source, field=field)
    return metric


def _dedup(records: Iterable[GenRecord]) -> list[GenRecord]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for r in records:
        key: tuple[Any, ...]
        key = ("\x00messages", turns_key(r.messages)) if r.messages else (r.prompt, r.response)
        if r.rejected is not None:
            key = (*key, "\x00rejected", r.rejected)
        if key in seen:
            continue
        seen.add(key)
        out.append(r)
    return out
