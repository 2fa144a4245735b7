"""Built-in streams by name, ``load_stream`` (name or spec path) and ``list_streams``."""

from __future__ import annotations

import difflib
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from evocl.errors import StreamError
from evocl.streams.build import Record, SplitRule, build_stream
from evocl.streams.types import SPLITS, Stream

DEFAULT_MAX_TRAIN = 120
DEFAULT_MAX_EVAL = 40


@dataclass(frozen=True)
class Builtin:
    """A named stream: where its records come from and how they form tasks."""

    name: str
    description: str
    scenario: str
    records: Callable[[], list[Record]]
    tasks: tuple[Any, ...] | None
    task_names: tuple[str, ...] | None = None
    max_train: int = DEFAULT_MAX_TRAIN
    max_eval: int = DEFAULT_MAX_EVAL


def _synthetic_records() -> list[Record]:
    from evocl.streams.synthetic import synthetic_records

    return synthetic_records(40)


def _builtins() -> dict[str, Builtin]:
    from evocl.streams import corpora
    from evocl.streams.synthetic import SYNTHETIC_TASKS

    items = [
        Builtin("synthetic", "tiny in-code keyword stream (5 tasks x 2 classes) for fast tests",
                "class-incremental", _synthetic_records, SYNTHETIC_TASKS,
                max_train=24, max_eval=8),
        *corpora.BUILTINS,
    ]
    return {b.name: b for b in items}


@functools.cache
def builtins() -> dict[str, Builtin]:
    """The built-in streams by name (their data is read only when one is loaded)."""
    return _builtins()


def load_stream(name: str | os.PathLike[str], seed: int = 0, *,
                max_train_per_class: int | None = None,
                max_eval_per_class: int | None = None) -> Stream:
    """A built-in stream by name (``default``, ``bbc-5`` ...) or a YAML spec by path.

    ``seed`` decides the splits (same seed, same splits). ``max_train_per_class`` /
    ``max_eval_per_class`` override the per-class caps (train; val and test each).
    """
    text = os.fspath(name)
    looks_like_path = text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text
    if not looks_like_path and text in builtins():
        return _load_builtin(builtins()[text], int(seed), max_train_per_class, max_eval_per_class)
    if looks_like_path or Path(text).is_file():
        from evocl.streams.spec import load_spec_stream

        return load_spec_stream(Path(text), int(seed), max_train_per_class, max_eval_per_class)
    near = difflib.get_close_matches(text, list(builtins()), n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise StreamError(f"unknown stream {text!r}: not a built-in ({', '.join(builtins())}) nor a "
                      f"spec file{hint}", source="stream", field="name")


def _load_builtin(b: Builtin, seed: int, max_train: int | None, max_eval: int | None) -> Stream:
    rule = SplitRule(max_train=b.max_train if max_train is None else max_train,
                     max_val=b.max_eval if max_eval is None else max_eval,
                     max_test=b.max_eval if max_eval is None else max_eval)
    return build_stream(b.name, b.scenario, b.records(), seed=seed, tasks=b.tasks,
                        task_names=b.task_names, rule=rule, source=f"builtin:{b.name}",
                        description=b.description)


def list_streams(seed: int = 0) -> list[dict[str, Any]]:
    """name, description, scenario, tasks (class names per task), sizes (train/val/test).

    A built-in whose data package is missing is listed with ``error`` (the install hint) and
    empty tasks/sizes instead of raising.
    """
    out = []
    for b in builtins().values():
        entry: dict[str, Any] = {"name": b.name, "description": b.description,
                                 "scenario": b.scenario}
        try:
            s = load_stream(b.name, seed)
        except StreamError as exc:
            entry.update(tasks=[], sizes={k: 0 for k in SPLITS}, error=str(exc))
        else:
            entry.update(tasks=s.task_class_names(), sizes=s.sizes())
        out.append(entry)
    return out
