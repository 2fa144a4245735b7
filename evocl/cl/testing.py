"""A tiny, strongly separable keyword stream for fast tests of the cl package (no files).

Each class owns a few distinctive words; a text is several of its class's words shuffled with
filler words. The tiny random backbone learns each task within a few dozen steps, so
forgetting, replay and EWC effects show in seconds.
"""

from __future__ import annotations

import numpy as np

from evocl.streams import Split, Stream, Task

_WORDS = ("apple river mountain guitar window rocket garden silver thunder castle pepper "
          "violin desert island lantern marble ocean pencil rabbit saddle tiger velvet wagon "
          "yellow zebra anchor bridge candle dragon engine falcon glacier hammer jungle kettle "
          "ladder magnet needle orchid parrot quartz ribbon spider tunnel umbrella vessel whistle").split()
_FILLER = "the a of and with about some many this that".split()


def keyword_stream(n_tasks: int = 3, classes_per_task: int = 2, n_train: int = 32,
                   n_eval: int = 16, scenario: str = "class-incremental", seed: int = 0,
                   words_per_class: int = 3) -> Stream:
    """``n_train`` / ``n_eval`` are per class. Domain-incremental reuses the same class ids in
    every task (with task-specific keywords, so tasks differ)."""
    rng = np.random.default_rng(seed)
    n_ids = classes_per_task if scenario == "domain-incremental" else n_tasks * classes_per_task
    tasks = []
    for t in range(n_tasks):
        ids = list(range(classes_per_task)) if scenario == "domain-incremental" else \
            list(range(t * classes_per_task, (t + 1) * classes_per_task))
        splits = {}
        for which, n in (("train", n_train), ("val", n_eval), ("test", n_eval)):
            texts, labels = [], []
            for k, c in enumerate(ids):
                slot = (t * classes_per_task + k) * words_per_class
                keys = _WORDS[slot % len(_WORDS): slot % len(_WORDS) + words_per_class]
                for _ in range(n):
                    words = list(rng.choice(keys, 4)) + list(rng.choice(_FILLER, 2))
                    texts.append(" ".join(rng.permutation(words)))
                    labels.append(c)
            splits[which] = Split(tuple(texts), np.array(labels, dtype=np.int64))
        tasks.append(Task(t, f"task{t}", tuple(ids), **splits))
    names = tuple(f"class{c}" for c in range(n_ids))
    return Stream(f"keywords-{scenario}", scenario, names, tuple(tasks))
