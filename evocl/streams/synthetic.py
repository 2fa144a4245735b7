"""A tiny in-code stream for fast tests: no data files, seconds to train on.

Each class has a few keywords; a text is a seeded mix of its class's keywords and shared
filler words, so a small model learns each task quickly and, trained class-incrementally on
disjoint pairs, forgets the earlier ones.
"""

from __future__ import annotations

import numpy as np

from evocl.records import derive_seed
from evocl.streams.build import Record
from evocl.streams.types import Builtin

FILLER = ("the", "a", "report", "about", "today", "new", "with", "and", "of", "in", "said",
          "people", "more", "than", "first", "year", "some", "many", "this", "that")
KEYWORDS: dict[str, tuple[str, ...]] = {
    "syn:animals": ("cat", "dog", "horse", "bird", "tiger", "fish"),
    "syn:food": ("bread", "apple", "cheese", "soup", "rice", "salad"),
    "syn:weather": ("rain", "snow", "storm", "wind", "cloud", "sunny"),
    "syn:sport": ("football", "tennis", "goal", "match", "team", "race"),
    "syn:music": ("guitar", "piano", "song", "drum", "concert", "violin"),
    "syn:travel": ("train", "airport", "hotel", "ticket", "beach", "map"),
    "syn:money": ("bank", "price", "market", "cash", "loan", "stock"),
    "syn:health": ("doctor", "fever", "clinic", "nurse", "vaccine", "pill"),
    "syn:science": ("atom", "galaxy", "physics", "cell", "laser", "theory"),
    "syn:school": ("teacher", "lesson", "exam", "pupil", "homework", "class"),
}
SYNTHETIC_TASKS: tuple[tuple[str, ...], ...] = tuple(
    tuple(list(KEYWORDS)[i:i + 2]) for i in range(0, len(KEYWORDS), 2))


def synthetic_records(per_class: int = 40, *, data_seed: int = 1234) -> list[Record]:
    """``per_class`` distinct texts per class (the data itself is fixed; splits use the seed)."""
    rng = np.random.default_rng(derive_seed(data_seed, "synthetic"))
    out: list[Record] = []
    for label, words in KEYWORDS.items():
        seen: set[str] = set()
        while len(seen) < per_class:
            n = int(rng.integers(6, 12))
            toks = [str(rng.choice(FILLER)) for _ in range(n)]
            for pos in rng.choice(n, size=2, replace=False):
                toks[int(pos)] = str(rng.choice(words))
            text = " ".join(toks)
            if text not in seen:
                seen.add(text)
                out.append(Record(text, label))
    return out


def _records() -> list[Record]:
    return synthetic_records(40)


SYNTHETIC = Builtin("synthetic", "tiny in-code keyword stream (5 tasks x 2 classes) for fast tests",
                    "class-incremental", _records, SYNTHETIC_TASKS, max_train=24, max_eval=8)
