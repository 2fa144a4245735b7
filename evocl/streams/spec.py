"""User streams from a YAML spec; relative paths resolve against the spec's folder.

    name: my-stream                      # default: the file's stem
    scenario: class-incremental          # | task-incremental | domain-incremental
    description: ...                     # optional
    source: {format: jsonl, path: data.jsonl}
    tasks:                               # or omit it and give each record a task
      - [label_a, label_b]
      - [label_c, label_d]
    max_per_class: 300                   # optional cap per class before splitting (by seed)
    splits: {val: 0.15, test: 0.15}      # optional fractions per class
    seed: 0                              # optional offset added to the caller's seed

A generative stream (for a causal LM; see ``generative.py`` and ``lm_tokens.py``)::

    scenario: generative
    source: {format: jsonl, path: chat.jsonl}  # {"prompt", "response", "task"}, {"text", "task"},
                                         # {"messages": [{role, content}...], "task"} (TRL /
                                         # OpenAI) or {"conversations": [{from, value}...]}
                                         # or preference records {"prompt" | "messages",
                                         # "chosen", "rejected", "task"} (`preference.py`)
    metric: rougeL                       # optional: token_accuracy (default), exact_match, rougeL
    tasks: [{name: qa, metric: exact_match}, greetings]  # optional: task names in order (else
                                         # first appearance), each a name or {name, metric}
    max_per_task: 500                    # optional cap per task before splitting (by seed)
    splits: {val: 0.1, test: 0.1}        # optional fractions per task
    retention: {source: {format: jsonl, path: general.jsonl}, metric: rougeL}  # optional
                                         # (or a path): held-out general rows (`retention.py`)

``source``: ``format`` jsonl | csv | hf_disk | hf; ``path`` (files) or ``name`` (hf); the
column names ``text_column`` / ``label_column`` / ``task_column`` / ``split_column`` (defaults
text / label / task / split; task and split are optional in the data); ``config`` and
``split`` for hf. A string source is a path (format from its extension) or ``hf:NAME``.
A record with a ``split`` value (train / val / validation / test) keeps it.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import io
import json
import os
import socket
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from evocl.errors import StreamError, UserError
from evocl.safefile import refusal
from evocl.streams.build import Record, SplitRule, build_stream
from evocl.streams.generative import GenRecord
from evocl.streams.reading import MAX_RECORD_BYTES, jsonl_rows, open_data, unknown_keys
from evocl.streams.types import GENERATIVE, SCENARIOS, Stream
from evocl.yamlsafe import read_yaml

SPEC_KEYS = ("name", "scenario", "description", "source", "tasks", "max_per_class",
             "max_per_task", "splits", "seed", "metric", "retention")
SOURCE_KEYS = ("format", "path", "name", "config", "split", "text_column", "label_column",
               "task_column", "split_column", "prompt_column", "response_column",
               "messages_column")
COLUMNS = ("text", "label", "task", "split", "prompt", "response", "messages")
#: the ShareGPT column of conversations, read when the messages column is absent
SHAREGPT_COLUMN = "conversations"
GENERATIVE_ONLY = ("metric", "retention")
SPLITS_KEYS = ("val", "test")
FORMATS = ("jsonl", "csv", "hf_disk", "hf")
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def read_spec(path: Path) -> dict[str, Any]:
    """The parsed and key-checked spec mapping (no data read yet)."""
    src = str(path)
    if not path.exists():
        raise StreamError("spec file not found", source=src, field="path")
    try:
        spec = read_yaml(path, what="stream spec (YAML)")
    except UserError as exc:
        raise StreamError(exc.rule, source=src, field=exc.field) from None
    if not isinstance(spec, dict):
        raise StreamError("a stream spec must be a mapping", source=src, field="<root>")
    unknown_keys(spec, SPEC_KEYS, src, "")
    for key in ("source",):
        if key not in spec:
            raise StreamError("required key missing", source=src, field=key)
    return spec


def load_spec_stream(path: Path, seed: int, max_train: int | None = None,
                     max_eval: int | None = None) -> Stream:
    """Read the spec at ``path`` and its data into a Stream (StreamError on any problem)."""
    path = Path(path)
    spec = read_spec(path)
    src = str(path)
    scenario = spec.get("scenario", "class-incremental")
    known = (*SCENARIOS, GENERATIVE)
    if scenario not in known:
        near = difflib.get_close_matches(str(scenario), known, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise StreamError(f"unknown scenario {scenario!r}; expected one of {list(known)}{hint}",
                          source=src, field="scenario")
    generative = scenario == GENERATIVE
    for key in GENERATIVE_ONLY:
        if key in spec and not generative:
            raise StreamError(f"only a generative stream has a {key}", source=src, field=key)
    wrong_cap = "max_per_class" if generative else "max_per_task"
    if wrong_cap in spec:
        right = "max_per_task" if generative else "max_per_class"
        raise StreamError(f"not a setting of a {scenario} stream; use {right}", source=src,
                          field=wrong_cap)
    cap = _opt_int(spec.get("max_per_task" if generative else "max_per_class"), src,
                   "max_per_task" if generative else "max_per_class")
    splits = spec.get("splits") or {}
    if not isinstance(splits, dict):
        raise StreamError("expected a mapping {val: f, test: f}", source=src, field="splits")
    unknown_keys(splits, SPLITS_KEYS, src, "splits")
    fracs = {}
    for key in SPLITS_KEYS:
        value = splits.get(key, 0.15)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise StreamError(f"expected a fraction in (0, 1), got {value!r}", source=src,
                              field=f"splits.{key}")
        fracs[key] = float(value)
    if fracs["val"] + fracs["test"] >= 1:
        raise StreamError("val + test must be < 1", source=src, field="splits")
    offset = spec.get("seed", 0)
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise StreamError(f"expected an integer, got {offset!r}", source=src, field="seed")
    tasks = spec.get("tasks")
    if tasks is not None and not isinstance(tasks, list):
        raise StreamError("expected a list of tasks", source=src, field="tasks")
    if tasks is not None and scenario not in ("domain-incremental", GENERATIVE):
        tasks = [[str(x) for x in t] if isinstance(t, list) else t for t in tasks]
    metrics: dict[str, str] = {}
    if generative:
        tasks, metrics = _task_metrics(spec, tasks, src)
    records = list(_read_source(spec["source"], path.parent, src, generative))
    if generative:
        from evocl.streams.generative import build_generative_stream
        from evocl.streams.retention import spec_retention

        rule = SplitRule(val=fracs["val"], test=fracs["test"], max_per_task=cap,
                         max_train=max_train, max_val=max_eval, max_test=max_eval)
        if tasks is None and "metric" in spec:  # every task of the data takes the spec's metric
            metrics = {r.task: str(spec["metric"]) for r in records}  # type: ignore[union-attr]
        stream = build_generative_stream(str(spec.get("name") or path.stem), records,
                                         seed=int(seed) + offset, tasks=tasks, rule=rule,
                                         source=src, description=str(spec.get("description", "")),
                                         metrics=metrics)
        return dataclasses.replace(stream, retention=spec_retention(
            spec.get("retention", "default"), path.parent, src))
    rule = SplitRule(val=fracs["val"], test=fracs["test"], max_per_class=cap,
                     max_train=max_train, max_val=max_eval, max_test=max_eval)
    return build_stream(str(spec.get("name") or path.stem), scenario, records,
                        seed=int(seed) + offset, tasks=tasks, rule=rule, source=src,
                        description=str(spec.get("description", "")))


def _task_metrics(spec: dict[str, Any], tasks: list[Any] | None, src: str
                  ) -> tuple[list[Any] | None, dict[str, str]]:
    """(task names, metric of each named task) of a generative spec: ``metric`` at the top
    level applies to every task; a task ``{name, metric}`` overrides it."""
    from evocl.cl.names import TASK_METRICS, check_metric
    from evocl.streams.preference import PREFERENCE_METRIC

    default = spec.get("metric")
    if default is not None:
        check_metric(default, src, "metric")
    if tasks is None:
        return None, {}
    names, metrics = [], {}
    for i, t in enumerate(tasks):
        metric = default
        if isinstance(t, dict):
            unknown_keys(t, ("name", "metric"), src, f"tasks[{i}]")
            if "name" not in t:
                raise StreamError("required key missing", source=src, field=f"tasks[{i}].name")
            if "metric" in t:
                metric = check_metric(t["metric"], src, f"tasks[{i}].metric",
                                      TASK_METRICS + (PREFERENCE_METRIC,))
            t = t["name"]
            if not isinstance(t, (str, int)) or isinstance(t, bool):
                raise StreamError(f"a task name is a string, got {t!r:.40}", source=src,
                                  field=f"tasks[{i}].name")
        names.append(t)
        if metric is not None and not isinstance(t, (list, tuple, dict)) and t is not None:
            metrics[str(t)] = str(metric)
    return names, metrics


def _opt_int(value: Any, src: str, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 3:
        raise StreamError(f"expected an integer >= 3, got {value!r}", source=src, field=field)
    return value


def _read_source(source: Any, base: Path, src: str,
                 generative: bool = False) -> Iterator[Record | GenRecord]:
    if isinstance(source, str):
        if source.startswith("hf:"):
            source = {"format": "hf", "name": source[3:]}
        else:
            ext = source.lower().rsplit(".", 1)[-1]
            source = {"format": ext if ext in ("jsonl", "csv") else "hf_disk", "path": source}
    if not isinstance(source, dict):
        raise StreamError("expected a mapping {format, path} or a string", source=src,
                          field="source")
    unknown_keys(source, SOURCE_KEYS, src, "source")
    fmt = source.get("format")
    if fmt not in FORMATS:
        near = difflib.get_close_matches(str(fmt), FORMATS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise StreamError(f"unknown format {fmt!r}; expected one of {list(FORMATS)}{hint}",
                          source=src, field="source.format")
    cols = {k: str(source.get(f"{k}_column", k)) for k in COLUMNS}
    rows = _Rows(cols, generative)
    if fmt == "hf":
        if not source.get("name"):
            raise StreamError("required key missing", source=src, field="source.name")
        yield from _read_hf(source, rows, src)
        return
    if not source.get("path"):
        raise StreamError("required key missing", source=src, field="source.path")
    data = Path(os.path.expanduser(str(source["path"])))
    data = data if data.is_absolute() else base / data
    if not data.exists():
        raise StreamError("data file not found", source=src, field=f"source.path ({data})")
    if fmt in ("jsonl", "csv"):
        f = open_data(data, src)
        yield from (_read_jsonl if fmt == "jsonl" else _read_csv)(data, f, rows)
    else:
        if not data.is_dir():  # a dataset saved with save_to_disk is a folder
            raise StreamError(f"{refusal(data, data.stat().st_mode, want='a directory').rule} "
                              "(a dataset saved with save_to_disk)", source=src,
                              field=f"source.path ({data})")
        yield from _read_hf_disk(data, rows, source.get("split"))


class _Rows:
    """Turns a source's rows (dicts) into records: classification ``Record``s (text, label) or,
    for a generative stream, ``GenRecord``s (prompt + response, or text); names the columns a
    table must have; refuses one kind of record in the other kind of stream."""

    def __init__(self, cols: dict[str, str], generative: bool):
        self.cols = cols
        self.generative = generative

    def check_columns(self, header: list[str], where: str, what: str) -> None:
        c = self.cols
        if self.generative:
            if c["messages"] in header or SHAREGPT_COLUMN in header or "chosen" in header:
                return
            if c["prompt"] in header or c["text"] in header:
                if c["prompt"] in header and c["response"] not in header:
                    raise StreamError(f"{what} {c['response']!r} missing; header has {header}",
                                      source=where, field="response_column")
                if c["prompt"] not in header and c["label"] in header:
                    raise StreamError(CLASSIFICATION_IN_GENERATIVE, source=where,
                                      field=f"{c['label']}_column")
                return
            raise StreamError(f"{what}s {c['prompt']!r} and {c['response']!r}, {c['messages']!r} "
                              f"or {c['text']!r} missing; header has {header}", source=where,
                              field="prompt_column")
        for key in ("text", "label"):
            if c[key] not in header:
                if c["prompt"] in header and c["text"] not in header:
                    raise StreamError(GENERATIVE_IN_CLASSIFICATION, source=where,
                                      field=f"{key}_column")
                raise StreamError(f"{what} {c[key]!r} missing; header has {header}",
                                  source=where, field=f"{key}_column")

    def record(self, row: dict[str, Any], where: str, field_of: str) -> Record | GenRecord:
        return (self._generative if self.generative else self._labelled)(row, where, field_of)

    def _labelled(self, row: dict[str, Any], where: str, field_of: str) -> Record:
        cols = self.cols
        for key in ("text", "label"):
            value = row.get(cols[key])
            if value is None or (isinstance(value, str) and not value.strip() and key == "label"):
                if key == "text" and row.get(cols["prompt"]) is not None:
                    raise StreamError(GENERATIVE_IN_CLASSIFICATION, source=where, field="record")
                raise StreamError(f"{field_of} {cols[key]!r} missing", source=where,
                                  field=cols[key])
        task = row.get(cols["task"])
        split = row.get(cols["split"])
        return Record(str(row[cols["text"]]), str(row[cols["label"]]).strip(),
                      None if task in (None, "") else str(task),
                      None if split in (None, "") else str(split))

    def _generative(self, row: dict[str, Any], where: str, field_of: str) -> GenRecord:
        from evocl.streams.preference import is_preference, parse_preference

        cols = self.cols
        if is_preference(row):
            return parse_preference(row, cols, where)
        key = cols["messages"] if row.get(cols["messages"]) is not None else SHAREGPT_COLUMN
        if row.get(key) is not None:
            return self._conversation(row, key, where, field_of)

        def text_of(key: str) -> str | None:
            value = row.get(cols[key])
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise StreamError(f"{field_of} {cols[key]!r}: expected a string, got "
                                  f"{type(value).__name__}", source=where, field=cols[key])
            value = str(value).strip()
            if not value:
                raise StreamError(f"{field_of} {cols[key]!r} is empty", source=where,
                                  field=cols[key])
            return value

        prompt, text = text_of("prompt"), None
        if prompt is None:
            text = text_of("text")
            if text is None:
                raise StreamError(f"{field_of}s {cols['prompt']!r} and {cols['response']!r}, or "
                                  f"{cols['text']!r}, missing", source=where, field="record")
            if row.get(cols["label"]) not in (None, ""):
                raise StreamError(CLASSIFICATION_IN_GENERATIVE, source=where, field="record")
        elif row.get(cols["response"]) is None:
            raise StreamError(f"{field_of} {cols['response']!r} missing", source=where,
                              field=cols["response"])
        response = text_of("response") if prompt is not None else None
        task = row.get(cols["task"])
        if task is None or not str(task).strip():
            raise StreamError(f"{field_of} {cols['task']!r} missing", source=where,
                              field=cols["task"])
        split = row.get(cols["split"])
        return GenRecord(prompt if prompt is not None else str(text), response, str(task).strip(),
                         None if split in (None, "") else str(split))


    def _conversation(self, row: dict[str, Any], key: str, where: str, field_of: str
                      ) -> GenRecord:
        from evocl.streams.conversation import ConversationError, parse_turns
        from evocl.streams.generative import conversation_record

        cols = self.cols
        value = row[key]
        if isinstance(value, str):  # a CSV cell holds the list as JSON
            try:
                value = json.loads(value)
            except (json.JSONDecodeError, RecursionError):
                raise StreamError(f"{field_of} {key!r}: not a JSON list of messages",
                                  source=where, field=key) from None
        for other in ("prompt", "response", "text"):
            if row.get(cols[other]) not in (None, ""):
                raise StreamError(f"a conversation ({key!r}) and a {cols[other]!r} in one record; "
                                  "give one or the other", source=where, field=cols[other])
        sharegpt = key == SHAREGPT_COLUMN or (isinstance(value, list) and bool(value)
                                              and isinstance(value[0], dict)
                                              and "from" in value[0] and "role" not in value[0])
        try:
            turns = parse_turns(value, key, sharegpt=sharegpt)
        except ConversationError as exc:
            raise StreamError(exc.rule, source=where, field=exc.field) from None
        task = row.get(cols["task"])
        if task is None or not str(task).strip():
            raise StreamError(f"{field_of} {cols['task']!r} missing", source=where,
                              field=cols["task"])
        split = row.get(cols["split"])
        return conversation_record(turns, str(task).strip(),
                                   None if split in (None, "") else str(split))


CLASSIFICATION_IN_GENERATIVE = ("a classification record (text and label) in a generative "
                                "stream: expected prompt and response, or text without a label")
GENERATIVE_IN_CLASSIFICATION = ("a generative record (prompt and response) in a classification "
                                "stream: set `scenario: generative` for prompt/response data")


def _read_jsonl(path: Path, f: BinaryIO, rows: _Rows) -> Iterator[Record | GenRecord]:
    for row, where in jsonl_rows(path, f):
        yield rows.record(row, where, "field")


def _read_csv(path: Path, raw: BinaryIO, rows: _Rows) -> Iterator[Record | GenRecord]:
    csv.field_size_limit(MAX_RECORD_BYTES)
    with io.TextIOWrapper(raw, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        lineno = 1
        try:
            rows.check_columns(list(reader.fieldnames or []), str(path), "column")
            for lineno, row in enumerate(reader, 2):
                yield rows.record(row, f"{path}:{lineno}", "column")
        except UnicodeDecodeError as exc:
            raise StreamError(f"not UTF-8 (byte 0x{exc.object[exc.start]:02x} near record "
                              f"{lineno + 1}); save the file as UTF-8", source=str(path),
                              field="record") from None
        except csv.Error as exc:
            raise StreamError(f"malformed CSV ({exc}; a field may hold at most "
                              f"{MAX_RECORD_BYTES:,} bytes)", source=f"{path}:{lineno + 1}",
                              field="record") from None


def _import_datasets(src: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise StreamError("the `datasets` package is not installed; run `pip install datasets`",
                          source=src, field="source.format") from None
    return datasets


def _rows_of(ds: Any, rows: _Rows, where: str) -> Iterator[dict[str, Any]]:
    """Rows of a datasets.Dataset with ClassLabel ints mapped to their names."""
    features = getattr(ds, "features", {}) or {}
    rows.check_columns(list(features), where, "column")
    cols = rows.cols
    names = {c: getattr(features.get(c), "names", None) for c in (cols["label"], cols["task"])}
    for row in ds:
        for c, n in names.items():
            if n is not None and isinstance(row.get(c), int):
                row[c] = n[row[c]]
        yield row


def _dataset_records(obj: Any, rows: _Rows, where: str, split: Any
                     ) -> Iterator[Record | GenRecord]:
    if isinstance(obj, dict):  # a DatasetDict (a dict subclass) of named splits
        names = [split] if split else list(obj.keys())
        for n in names:
            if n not in obj:
                raise StreamError(f"split {n!r} missing; dataset has {list(obj.keys())}",
                                  source=where, field="source.split")
        explicit = len(names) > 1
        for n in names:
            for row in _rows_of(obj[n], rows, where):
                rec = rows.record(row, f"{where}[{n}]", "column")
                yield dataclasses.replace(rec, split=n if explicit else rec.split)
        return
    for row in _rows_of(obj, rows, where):
        yield rows.record(row, where, "column")


def _read_hf_disk(path: Path, rows: _Rows, split: Any) -> Iterator[Record | GenRecord]:
    datasets = _import_datasets(str(path))
    try:
        obj = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise StreamError(f"not a dataset saved with save_to_disk ({exc})".replace("\n", " "),
                          source=str(path), field="source.path") from None
    yield from _dataset_records(obj, rows, str(path), split)


def offline_reason(probe: bool = True) -> str | None:
    """Why the Hub cannot be reached (an offline variable, or no route), else None.

    The variables are checked first, so with HF_HUB_OFFLINE=1 no connection is attempted.
    """
    for var in OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var} is set"
    if probe:
        try:
            socket.create_connection(("huggingface.co", 443), timeout=3).close()
        except OSError:
            return "huggingface.co cannot be reached"
    return None


def _offline_error(name: str, reason: str, src: str) -> StreamError:
    return StreamError(f"hf:{name} needs the Hugging Face Hub but the machine is offline "
                       f"({reason}); save the dataset with save_to_disk and use format: hf_disk",
                       source=src, field="source.name")


def _read_hf(source: dict[str, Any], rows: _Rows, src: str) -> Iterator[Record | GenRecord]:
    name = str(source["name"])
    reason = offline_reason(probe=False)
    if reason is not None:
        raise _offline_error(name, reason, src)
    datasets = _import_datasets(src)
    reason = offline_reason(probe=True)
    if reason is not None:
        raise _offline_error(name, reason, src)
    try:
        obj = datasets.load_dataset(name, source.get("config"))
    except Exception as exc:  # the Hub raises many types; one line for the user
        raise StreamError(f"cannot load hf:{name} ({type(exc).__name__}: {exc})".replace("\n", " "),
                          source=src, field="source.name") from None
    yield from _dataset_records(obj, rows, f"hf:{name}", source.get("split"))
