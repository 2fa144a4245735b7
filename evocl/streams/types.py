"""The stream records: Stream (ordered tasks), Task (classes + three splits), Split (texts, labels).

Frozen and plain: the cl trainer reads them, nothing mutates them. Class ids are global
(``Stream.class_names[i]`` names id ``i``) in every classification scenario; task-incremental
evaluators mask logits to ``Task.classes``, domain-incremental streams reuse the same ids in
every task.

A ``generative`` stream (for causal language models) has no classes: ``class_names == ()``,
each ``Task.classes == ()``, and its splits are ``GenerativeSplit``s of prompt/response pairs
or plain texts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Scenario = Literal["class-incremental", "task-incremental", "domain-incremental", "generative"]
#: The classification scenarios (labelled texts, an encoder backbone).
SCENARIOS: tuple[str, ...] = ("class-incremental", "task-incremental", "domain-incremental")
#: The scenario of prompt/response and text streams (a causal-LM backbone).
GENERATIVE = "generative"
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class Split:
    """Labelled texts of one split of one task; ``labels`` are global class ids (int64)."""

    texts: tuple[str, ...]
    labels: np.ndarray

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        labels.setflags(write=False)
        object.__setattr__(self, "texts", tuple(self.texts))
        object.__setattr__(self, "labels", labels)
        if len(self.texts) != len(labels):
            raise ValueError(f"Split: {len(self.texts)} texts but {len(labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    def class_counts(self) -> dict[int, int]:
        """Examples per global class id (sorted by id)."""
        ids, counts = np.unique(self.labels, return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts)}


@dataclass(frozen=True, eq=False)
class GenerativeSplit:
    """Rows of one split of a generative task. Row ``i`` is a prompt/response pair (loss on the
    response) when ``responses[i]`` is a string, or a plain text (loss on every token; the text
    is ``prompts[i]``) when ``responses[i]`` is None."""

    prompts: tuple[str, ...]
    responses: tuple[str | None, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))
        object.__setattr__(self, "responses", tuple(self.responses))
        if len(self.prompts) != len(self.responses):
            raise ValueError(f"GenerativeSplit: {len(self.prompts)} prompts but "
                             f"{len(self.responses)} responses")

    def __len__(self) -> int:
        return len(self.prompts)

    def record(self, i: int) -> dict[str, str]:
        """Row ``i`` as the user wrote it: ``{"prompt", "response"}`` or ``{"text"}``."""
        if self.responses[i] is None:
            return {"text": self.prompts[i]}
        return {"prompt": self.prompts[i], "response": self.responses[i]}


@dataclass(frozen=True, eq=False)
class Task:
    """One step of the stream: its global class ids and its train / val / test splits
    (``Split``s; ``GenerativeSplit``s and no classes in a generative stream)."""

    index: int
    name: str
    classes: tuple[int, ...]
    train: Split | GenerativeSplit
    val: Split | GenerativeSplit
    test: Split | GenerativeSplit

    def split(self, which: str) -> Split | GenerativeSplit:
        """The split named ``train``, ``val`` or ``test``."""
        if which not in SPLITS:
            raise ValueError(f"unknown split {which!r}; expected one of {SPLITS}")
        return getattr(self, which)


@dataclass(frozen=True, eq=False)
class Stream:
    """An ordered list of tasks under one scenario; ``fingerprint`` identifies the content."""

    name: str
    scenario: str
    class_names: tuple[str, ...]
    tasks: tuple[Task, ...]
    description: str = ""
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "fingerprint", stream_fingerprint(self))

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def generative(self) -> bool:
        return self.scenario == GENERATIVE

    def task_class_names(self) -> list[list[str]]:
        """Class names per task, in task order."""
        return [[self.class_names[c] for c in t.classes] for t in self.tasks]

    def sizes(self) -> dict[str, int]:
        """Total examples per split over all tasks."""
        return {s: sum(len(t.split(s)) for t in self.tasks) for s in SPLITS}


def stream_fingerprint(stream: Stream) -> str:
    """sha256 over name, scenario, class names, task class lists and every split's texts+labels
    (a generative split's prompts and responses).

    Length-prefixed fields, so the hash is unambiguous and stable across runs and machines.
    """
    h = hashlib.sha256()

    def put(value: str) -> None:
        data = value.encode("utf-8")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)

    put("evocl-stream-v1")
    put(stream.name)
    put(stream.scenario)
    put("\x1f".join(stream.class_names))
    for task in stream.tasks:
        put(f"task {task.index} {task.name} " + ",".join(str(c) for c in task.classes))
        for which in SPLITS:
            split = task.split(which)
            put(f"{which} {len(split)}")
            if isinstance(split, GenerativeSplit):
                for prompt, response in zip(split.prompts, split.responses):
                    put(f"T\t{prompt}" if response is None else f"P\t{prompt}")
                    if response is not None:
                        put(f"R\t{response}")
                continue
            for text, label in zip(split.texts, split.labels.tolist()):
                put(f"{label}\t{text}")
    return h.hexdigest()[:16]
