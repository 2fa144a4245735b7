"""The stream records: Stream (ordered tasks), Task (classes + three splits), Split (texts, labels).

Frozen and plain: the cl trainer reads them, nothing mutates them. Class ids are global
(``Stream.class_names[i]`` names id ``i``) in every classification scenario; task-incremental
evaluators mask logits to ``Task.classes``, domain-incremental streams reuse the same ids in
every task.

A ``generative`` stream (for causal language models) has no classes: ``class_names == ()``,
each ``Task.classes == ()``, and its splits are ``GenerativeSplit``s of prompt/response pairs,
conversations or plain texts. A generative task names its ``metric`` (None: token accuracy);
a generative stream may carry a ``retention`` set: held-out rows of no task, scored before
training and after every task (general ability).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np

Scenario = Literal["class-incremental", "task-incremental", "domain-incremental", "generative"]
#: The classification scenarios (labelled texts, an encoder backbone).
SCENARIOS: tuple[str, ...] = ("class-incremental", "task-incremental", "domain-incremental")
#: The scenario of prompt/response and text streams (a causal-LM backbone).
GENERATIVE = "generative"
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: The metric (and so the loss kind: DPO) of a task of preference records
#: (`evocl.streams.preference`).
PREFERENCE_METRIC = "preference_accuracy"


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
    is ``prompts[i]``) when ``responses[i]`` is None; a conversation when ``messages[i]`` is a
    tuple of turns ``(role, content)`` (`evocl.streams.conversation`; loss on every assistant
    turn, held-out scoring on the last one): then ``prompts[i]`` is its last user turn and
    ``responses[i]`` its last assistant turn (None when it ends on a user turn: a retention
    prompt without an answer). ``messages`` is empty when no row is a conversation.
    ``rejected[i]``: a preference row's dispreferred answer (``responses[i]`` is the chosen
    one; `evocl.streams.preference`); empty when no row is a preference row."""

    prompts: tuple[str, ...]
    responses: tuple[str | None, ...]
    messages: tuple[tuple[tuple[str, str], ...] | None, ...] = ()
    rejected: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))
        object.__setattr__(self, "responses", tuple(self.responses))
        msgs = tuple(self.messages)
        object.__setattr__(self, "messages", msgs if any(m is not None for m in msgs) else ())
        rej = tuple(self.rejected)
        object.__setattr__(self, "rejected", rej if any(r is not None for r in rej) else ())
        if self.rejected and len(self.rejected) != len(self.prompts):
            raise ValueError(f"GenerativeSplit: {len(self.prompts)} prompts but "
                             f"{len(self.rejected)} rejected answers")
        if len(self.prompts) != len(self.responses):
            raise ValueError(f"GenerativeSplit: {len(self.prompts)} prompts but "
                             f"{len(self.responses)} responses")
        if self.messages and len(self.messages) != len(self.prompts):
            raise ValueError(f"GenerativeSplit: {len(self.prompts)} prompts but "
                             f"{len(self.messages)} messages")

    def __len__(self) -> int:
        return len(self.prompts)

    def turns(self, i: int) -> tuple[tuple[str, str], ...] | None:
        """Row ``i`` as turns: its conversation, a pair as (user, assistant); None: a text."""
        if self.messages and self.messages[i] is not None:
            return self.messages[i]
        if self.responses[i] is None:
            return None
        return (("user", self.prompts[i]), ("assistant", str(self.responses[i])))

    def is_preference(self, i: int) -> bool:
        return bool(self.rejected) and self.rejected[i] is not None

    def rejected_turns(self, i: int) -> tuple[tuple[str, str], ...] | None:
        """A preference row's conversation with its rejected answer (None: not a pair)."""
        turns = self.turns(i)
        if not self.is_preference(i) or turns is None:
            return None
        return turns[:-1] + (("assistant", str(self.rejected[i])),)

    def record(self, i: int) -> dict[str, Any]:
        """Row ``i`` as the user wrote it: ``{"prompt", "response"}``, ``{"messages"}``,
        ``{"text"}`` or a preference record ``{"prompt" | "messages", "chosen", "rejected"}``."""
        if self.is_preference(i):
            turns = self.turns(i) or ()
            head: dict[str, Any] = ({"prompt": self.prompts[i]} if len(turns) == 2 and
                                    turns[0][0] == "user" and not (self.messages and
                                                                   self.messages[i])
                                    else {"messages": [{"role": r, "content": c}
                                                       for r, c in turns[:-1]]})
            return {**head, "chosen": self.responses[i], "rejected": self.rejected[i]}
        if self.messages and self.messages[i] is not None:
            return {"messages": [{"role": r, "content": c} for r, c in self.messages[i]]}
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
    metric: str | None = None  # a generative task's score (None: token_accuracy)

    def split(self, which: str) -> Split | GenerativeSplit:
        """The split named ``train``, ``val`` or ``test``."""
        if which not in SPLITS:
            raise ValueError(f"unknown split {which!r}; expected one of {SPLITS}")
        return getattr(self, which)


@dataclass(frozen=True, eq=False)
class RetentionSet:
    """Held-out rows that belong to no task (general ability), scored by ``metric`` on the
    untrained model and after every task; ``name`` says where they come from."""

    name: str
    split: GenerativeSplit
    metric: str

    def __len__(self) -> int:
        return len(self.split)


@dataclass(frozen=True, eq=False)
class Stream:
    """An ordered list of tasks under one scenario; ``fingerprint`` identifies the content."""

    name: str
    scenario: str
    class_names: tuple[str, ...]
    tasks: tuple[Task, ...]
    description: str = ""
    retention: RetentionSet | None = None
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
        if task.metric is not None:  # absent by default: older fingerprints stay valid
            put(f"metric {task.metric}")
        for which in SPLITS:
            split = task.split(which)
            put(f"{which} {len(split)}")
            if isinstance(split, GenerativeSplit):
                _put_generative(put, split)
                continue
            for text, label in zip(split.texts, split.labels.tolist()):
                put(f"{label}\t{text}")
    if stream.retention is not None:
        put(f"retention {stream.retention.name} {stream.retention.metric} "
            f"{len(stream.retention)}")
        _put_generative(put, stream.retention.split)
    return h.hexdigest()[:16]


def _put_generative(put: Any, split: GenerativeSplit) -> None:
    for i, (prompt, response) in enumerate(zip(split.prompts, split.responses)):
        if split.messages and split.messages[i] is not None:
            put("C\t" + "\x1e".join(f"{r}\x1f{c}" for r, c in split.messages[i]))
            if split.is_preference(i):
                put(f"X\t{split.rejected[i]}")
            continue
        put(f"T\t{prompt}" if response is None else f"P\t{prompt}")
        if response is not None:
            put(f"R\t{response}")
        if split.is_preference(i):  # absent in supervised rows: older fingerprints stay valid
            put(f"X\t{split.rejected[i]}")


DEFAULT_MAX_TRAIN = 120
DEFAULT_MAX_EVAL = 40


@dataclass(frozen=True)
class Builtin:
    """A named stream: where its records come from and how they form tasks (label lists; task
    names for domain-incremental and generative streams). Caps are per class (per task for a
    generative stream); the STREAMS registry (``evocl.registry``) names each Builtin."""

    name: str
    description: str
    scenario: str
    records: Callable[[], list[Any]]   # Records, or GenRecords for a generative stream
    tasks: tuple[Any, ...] | None
    task_names: tuple[str, ...] | None = None
    max_train: int | None = DEFAULT_MAX_TRAIN
    max_eval: int | None = DEFAULT_MAX_EVAL
    retention: Callable[[], Any] | None = None  # a generative stream's default retention set
