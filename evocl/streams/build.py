"""Labelled records -> Stream: task grouping, global class ids, stratified seeded splits, checks.

Every source (built-in corpora, JSONL/CSV/HF specs, the synthetic stream) yields ``Record``s
and goes through ``build_stream``, so all streams obey the same rules:

- exact duplicate texts are dropped (first occurrence kept), so no text is shared between the
  train, val and test splits of a task (or between tasks);
- each class is split on its own (stratified): its examples are permuted by a seed derived
  from (seed, task name, class name), capped to ``max_per_class``, then cut into
  test / val / train by the fractions; per-split caps (``max_train`` ...) apply after;
- records that carry an explicit ``split`` (train / val / test) keep it instead;
- a split's examples are interleaved in a seeded order (classes mixed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from evocl.errors import StreamError
from evocl.records import derive_seed
from evocl.streams.types import SCENARIOS, SPLITS, Split, Stream, Task

SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test"}


@dataclass(frozen=True)
class Record:
    """One labelled text; ``task`` names its task when the source groups by record."""

    text: str
    label: str
    task: str | None = None
    split: str | None = None


@dataclass(frozen=True)
class SplitRule:
    """How each class (each task of a generative stream) is cut: fractions, a cap before
    cutting, caps per split after."""

    val: float = 0.15
    test: float = 0.15
    max_per_class: int | None = None
    max_per_task: int | None = None
    max_train: int | None = None
    max_val: int | None = None
    max_test: int | None = None


def build_stream(
    name: str,
    scenario: str,
    records: Iterable[Record],
    *,
    seed: int,
    tasks: Sequence[Sequence[str]] | Sequence[str] | None = None,
    task_names: Sequence[str] | None = None,
    rule: SplitRule = SplitRule(),
    source: str = "<stream>",
    description: str = "",
) -> Stream:
    """Group, split and check ``records``; raise StreamError (one line) on any broken rule.

    ``tasks``: for class-/task-incremental, a list of label lists (labels not listed are
    ignored); for domain-incremental, a list of domain (task) names giving their order.
    Without ``tasks`` every record must carry ``task``; tasks keep their first-seen order.
    """
    if scenario not in SCENARIOS:
        raise StreamError(f"unknown scenario {scenario!r}; expected one of {list(SCENARIOS)}",
                          source=source, field="scenario")
    records = _dedup(records)
    if not records:
        raise StreamError("empty stream: no records", source=source, field="source")
    groups = _group(scenario, records, tasks, source)  # task name -> class name -> records
    if task_names is not None:
        groups = {task_names[i]: g for i, g in enumerate(groups.values())}
    class_names: list[str] = []
    for classes in groups.values():
        for label in classes:
            if label not in class_names:
                class_names.append(label)
    ids = {c: i for i, c in enumerate(class_names)}
    built = []
    for index, (tname, classes) in enumerate(groups.items()):
        built.append(_make_task(index, tname, classes, ids, scenario, seed, rule, source))
    return Stream(name=name, scenario=scenario, class_names=tuple(class_names),
                  tasks=tuple(built), description=description)


def _dedup(records: Iterable[Record]) -> list[Record]:
    seen: set[str] = set()
    out = []
    for r in records:
        text = r.text.strip()
        if not text or text in seen:
            continue
        seen.add(text)
        out.append(r if text == r.text else Record(text, r.label, r.task, r.split))
    return out


def _group(scenario: str, records: list[Record], tasks, source: str) -> dict[str, dict[str, list[Record]]]:
    groups: dict[str, dict[str, list[Record]]] = {}
    if scenario == "domain-incremental":
        if any(r.task is None for r in records):
            raise StreamError("domain-incremental streams need a task (domain) on every record",
                              source=source, field="task")
        order = list(dict.fromkeys(r.task for r in records))
        if tasks is not None:
            wanted = [str(t) for t in tasks]
            if not wanted:
                raise StreamError("empty stream: no tasks", source=source, field="tasks")
            for i, t in enumerate(wanted):
                if isinstance(tasks[i], (list, tuple)):
                    raise StreamError("domain-incremental tasks are domain names, not label lists",
                                      source=source, field=f"tasks[{i}]")
                if t not in order:
                    raise StreamError(f"task {t!r} has no records in the data", source=source,
                                      field=f"tasks[{i}]")
            order = wanted
        for t in order:
            groups[t] = {}
        for r in records:
            if r.task in groups:
                groups[r.task].setdefault(r.label, []).append(r)
        for t in groups:
            groups[t] = dict(sorted(groups[t].items()))
        return groups
    if tasks is not None:
        if len(tasks) == 0:
            raise StreamError("empty stream: no tasks", source=source, field="tasks")
        present = {r.label for r in records}
        owner: dict[str, int] = {}
        for i, labels in enumerate(tasks):
            if isinstance(labels, str) or not isinstance(labels, (list, tuple)):
                raise StreamError(f"expected a list of labels, got {labels!r}", source=source,
                                  field=f"tasks[{i}]")
            if len(labels) == 0:
                raise StreamError("empty task: no labels", source=source, field=f"tasks[{i}]")
            for label in labels:
                label = str(label)
                if label in owner:
                    raise StreamError(f"label {label!r} is already in tasks[{owner[label]}]; "
                                      f"{scenario} tasks need disjoint classes", source=source,
                                      field=f"tasks[{i}]")
                if label not in present:
                    raise StreamError(f"label {label!r} is absent from the data", source=source,
                                      field=f"tasks[{i}]")
                owner[label] = i
        for i, labels in enumerate(tasks):
            groups[f"task{i}"] = {str(lab): [] for lab in labels}
        names = list(groups)
        for r in records:
            if r.label in owner:
                groups[names[owner[r.label]]][r.label].append(r)
        return groups
    if any(r.task is None for r in records):
        raise StreamError("no `tasks` list and some records have no task; give one or the other",
                          source=source, field="tasks")
    owner_task: dict[str, str] = {}
    for r in records:
        task = str(r.task)
        prev = owner_task.setdefault(r.label, task)
        if prev != task:
            raise StreamError(f"label {r.label!r} appears in tasks {prev!r} and {task!r}; "
                              f"{scenario} tasks need disjoint classes", source=source,
                              field="task")
        groups.setdefault(task, {}).setdefault(r.label, []).append(r)
    return {t: dict(sorted(c.items())) for t, c in groups.items()}


def _make_task(index: int, tname: str, classes: dict[str, list[Record]], ids: dict[str, int],
               scenario: str, seed: int, rule: SplitRule, source: str) -> Task:
    field = f"tasks[{index}]"
    classes = {c: rs for c, rs in classes.items() if rs}
    if not classes:
        raise StreamError("empty task: no records", source=source, field=field)
    if scenario != "domain-incremental" and len(classes) < 2:
        raise StreamError(f"task has one class ({next(iter(classes))!r}); {scenario} tasks "
                          "need >= 2 classes", source=source, field=field)
    parts: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    for cname, recs in classes.items():
        cid = ids[cname]
        for which, texts in _split_class(recs, cname, tname, seed, rule, source, field).items():
            parts[which].extend((t, cid) for t in texts)
    if not parts["train"]:
        raise StreamError("empty task: no training examples", source=source, field=field)
    train_labels = {lab for _, lab in parts["train"]}
    names = {v: k for k, v in ids.items()}
    for which in ("val", "test"):
        unseen = sorted({lab for _, lab in parts[which]} - train_labels)
        if unseen:
            raise StreamError(f"label {names[unseen[0]]!r} of the {which} split is never seen in "
                              "training", source=source, field=field)
        if not parts[which]:
            raise StreamError(f"empty task: no {which} examples", source=source, field=field)
    splits = {}
    for which, items in parts.items():
        order = np.random.default_rng(derive_seed(seed, "order", tname, which)).permutation(len(items))
        items = [items[i] for i in order]
        splits[which] = Split(tuple(t for t, _ in items), np.array([c for _, c in items], np.int64))
    return Task(index=index, name=tname, classes=tuple(sorted(ids[c] for c in classes)),
                train=splits["train"], val=splits["val"], test=splits["test"])


def _split_class(recs: list[Record], cname: str, tname: str, seed: int, rule: SplitRule,
                 source: str, field: str) -> dict[str, list[str]]:
    parts = split_records(recs, f"class {cname!r}", derive_seed(seed, "split", tname, cname),
                          rule, rule.max_per_class, source, field)
    return {which: [r.text for r in rs] for which, rs in parts.items()}


def split_records(recs: Sequence[Any], what: str, rng_seed: int, rule: SplitRule,
                  cap: int | None, source: str, field: str) -> dict[str, list[Any]]:
    """Cut ``recs`` (each with a ``split`` attribute, None or a split name) into train / val /
    test: permuted by ``rng_seed``, capped to ``cap``, then test / val / train by the rule's
    fractions, then the per-split caps. Records that carry a split keep it (all or none).
    ``what`` names the group in errors ("class 'a'", "task 'b'")."""
    explicit = [r.split is not None for r in recs]
    if any(explicit):
        if not all(explicit):
            raise StreamError(f"{what}: some records have a split and some do not",
                              source=source, field="split")
        out: dict[str, list[Any]] = {s: [] for s in SPLITS}
        for r in recs:
            which = SPLIT_ALIASES.get(str(r.split).lower())
            if which is None:
                raise StreamError(f"unknown split {r.split!r}; expected train, val or test",
                                  source=source, field="split")
            out[which].append(r)
        caps = {"train": rule.max_train, "val": rule.max_val, "test": rule.max_test}
        rng = np.random.default_rng(rng_seed)
        for which, items in out.items():
            limit = caps[which] if caps[which] is not None else cap
            if limit is not None and len(items) > limit:
                keep = np.sort(rng.permutation(len(items))[:limit])
                out[which] = [items[i] for i in keep]
        return out
    rng = np.random.default_rng(rng_seed)
    items = [recs[i] for i in rng.permutation(len(recs))]
    if cap is not None:
        items = items[:cap]
    n = len(items)
    if n < 3:
        raise StreamError(f"{what} has {n} example(s); needs >= 3 for train/val/test",
                          source=source, field=field)
    n_test = max(1, int(round(n * rule.test)))
    n_val = max(1, int(round(n * rule.val)))
    if n - n_test - n_val < 1:
        raise StreamError(f"{what}: splits val={rule.val} test={rule.test} leave no "
                          f"training example of {n}", source=source, field="splits")
    test, val, train = items[:n_test], items[n_test:n_test + n_val], items[n_test + n_val:]
    return {"train": train[: rule.max_train] if rule.max_train is not None else train,
            "val": val[: rule.max_val] if rule.max_val is not None else val,
            "test": test[: rule.max_test] if rule.max_test is not None else test}
