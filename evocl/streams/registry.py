"""Built-in streams by name, ``load_stream`` (name or spec path) and ``list_streams``."""

from __future__ import annotations

import difflib
import functools
import os
from pathlib import Path
from typing import Any

from evocl.errors import StreamError
from evocl.streams.build import SplitRule, build_stream
from evocl.streams.types import GENERATIVE, SPLITS, Stream
from evocl.streams.types import DEFAULT_MAX_EVAL, DEFAULT_MAX_TRAIN, Builtin  # noqa: F401  (re-exported)

@functools.cache
def builtins() -> dict[str, Builtin]:
    """The built-in streams by name, from the STREAMS registry (``evocl.registry``); their data
    is read only when one is loaded."""
    from evocl.registry import STREAMS

    return {name: STREAMS.load(name) for name in STREAMS}


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
    if b.scenario == GENERATIVE:
        import dataclasses

        from evocl.streams.generative import build_generative_stream

        stream = build_generative_stream(b.name, b.records(), seed=seed, tasks=b.tasks,
                                         rule=rule, source=f"builtin:{b.name}",
                                         description=b.description)
        if b.retention is not None:
            stream = dataclasses.replace(stream, retention=b.retention())
        return stream
    return build_stream(b.name, b.scenario, b.records(), seed=seed, tasks=b.tasks,
                        task_names=b.task_names, rule=rule, source=f"builtin:{b.name}",
                        description=b.description)


def list_streams(seed: int = 0) -> list[dict[str, Any]]:
    """name, description, scenario, tasks (class names per task; for a generative stream,
    task names), sizes (train/val/test), task_sizes (train/val/test of each task).

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
            entry.update(tasks=[], sizes={k: 0 for k in SPLITS}, task_sizes=[], error=str(exc))
        else:
            tasks = [t.name for t in s.tasks] if s.generative else s.task_class_names()
            from evocl.streams.retention import describe

            entry.update(tasks=tasks, sizes=s.sizes(), retention=describe(s),
                         task_sizes=[{w: len(t.split(w)) for w in SPLITS} for t in s.tasks])
        out.append(entry)
    return out
