"""Tokenize a stream once: int arrays per task per split, cached in memory and on disk.

Key: (stream fingerprint, tokenizer identity, max_length). The memory cache is a small
module-level LRU dict, so every candidate a worker evaluates reuses the same object; the disk
cache (``$EVOCL_CACHE`` or ``~/.cache/evocl``, folder ``tokens/``) is a plain ``.npz`` read with
``allow_pickle=False`` and written atomically, so workers in other processes reuse it too.
Each entry carries the SHA-256 of its content and is checked against its source (the stream's
labels and row counts; shapes, masks, id range) on load: a damaged or mismatched entry is
rebuilt with one warning line naming it. ``fcntl`` locks one entry while it is read or built.

Padding: each split is padded to its own longest sequence (at most ``max_length``), with the
tokenizer's pad id and ``attention_mask`` 0. ``TokenizedSplit.batch(idx)`` trims a batch to
its own longest row, so the trainer gets dynamic per-batch padding for free.

A generative stream's splits are ``TokenizedGenerativeSplit``s: ``input_ids``,
``attention_mask`` and ``target_mask`` (which tokens are targets; see ``lm_tokens``), no
labels, and ``rows`` (each tokenized row's index in the stream's split, whose prompt and
response strings it came from). Their cache key adds the pair format and truncation rule
(``lm_tokens.format_rule``: the chat template's hash included).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evocl.errors import BackboneError, StreamError
from evocl.streams.types import GENERATIVE, SPLITS, Stream

MEMORY_CACHE_SIZE = 8
_MEMORY: "OrderedDict[tuple[Any, ...], TokenizedStream]" = OrderedDict()
FORMAT_VERSION = "evocl-tokens-v2"  # v2: a digest of the content in each entry
PREFERENCE_ARRAYS = ("rejected_ids", "rejected_mask", "rejected_target", "preference")
VOCAB_PAD_ALLOWANCE = 128


class TokenizerMismatchError(BackboneError, StreamError):
    """A tokenizer that does not fit the backbone (vocabulary, pad token, positions)."""


@dataclass(frozen=True, eq=False)
class TokenizedSplit:
    """``input_ids`` / ``attention_mask``: int64 [n, L]; ``labels``: int64 [n] global ids."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, idx: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows ``idx`` as (input_ids, attention_mask, labels), trimmed to the batch's longest."""
        idx, mask, width = _trimmed(idx, self.attention_mask)
        return self.input_ids[idx, :width], mask, self.labels[idx]


def _trimmed(idx: np.ndarray | list[int], attention_mask: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, int]:
    """(idx as int64, the rows' attention mask cut to their longest row, that width)."""
    idx = np.asarray(idx, dtype=np.int64)
    mask = attention_mask[idx]
    width = max(1, int(mask.sum(axis=1).max())) if len(idx) else 1
    return idx, mask[:, :width], width


@dataclass(frozen=True, eq=False)
class TokenizedGenerativeSplit:
    """A generative split: ``input_ids`` / ``attention_mask`` / ``target_mask`` int64 [n, L],
    right-padded; ``target_mask[i, p] == 1`` when token p of row i is a target predicted from
    tokens < p (never at p = 0 nor on padding). ``rows``: int64 [n], the index of each row in
    the stream's ``GenerativeSplit`` (its ``prompts[j]`` / ``responses[j]``)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    target_mask: np.ndarray
    rows: np.ndarray
    #: preference rows (`evocl.streams.preference`): the rejected conversation of each row
    #: (zeros for a supervised row) and ``preference[i] == 1`` for a pair; None without pairs
    rejected_ids: np.ndarray | None = None
    rejected_mask: np.ndarray | None = None
    rejected_target: np.ndarray | None = None
    preference: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def batch(self, idx: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows ``idx`` as (input_ids, attention_mask, target_mask), trimmed to the longest."""
        idx, mask, width = _trimmed(idx, self.attention_mask)
        return self.input_ids[idx, :width], mask, self.target_mask[idx, :width]


@dataclass(frozen=True, eq=False)
class TokenizedTask:
    index: int
    classes: tuple[int, ...]
    train: TokenizedSplit | TokenizedGenerativeSplit
    val: TokenizedSplit | TokenizedGenerativeSplit
    test: TokenizedSplit | TokenizedGenerativeSplit

    def split(self, which: str) -> TokenizedSplit | TokenizedGenerativeSplit:
        if which not in SPLITS:
            raise ValueError(f"unknown split {which!r}; expected one of {SPLITS}")
        return getattr(self, which)


@dataclass(frozen=True, eq=False)
class TokenizedStream:
    """The stream's tokens; ``stream`` is the source, ``key`` the cache key; ``rule`` the
    pair format and truncation rule of a generative stream ("" for classification)."""

    stream: Stream
    tokenizer_id: str
    max_length: int
    tasks: tuple[TokenizedTask, ...]
    rule: str = ""

    @property
    def key(self) -> tuple[Any, ...]:
        base = (self.stream.fingerprint, self.tokenizer_id, self.max_length)
        return (*base, self.rule) if self.rule else base


PROBE = "Hello, World! Naïve café: 42 tokens... CamelCase_snake-case"


def tokenizer_identity(tokenizer: Any) -> str:
    """Class, folder name, size and a hash of the vocabulary plus a probe sentence's ids.

    The hash tells apart tokenizers that share a folder name and size but split differently
    (another vocabulary, casing, normalization); it is stable across machines.
    """
    name = str(getattr(tokenizer, "name_or_path", "") or "")
    try:
        size = len(tokenizer)
    except TypeError:
        size = int(getattr(tokenizer, "vocab_size", 0) or 0)
    h = hashlib.sha256()
    try:
        vocab = tokenizer.get_vocab()
        for token, index in sorted(vocab.items(), key=lambda kv: kv[1]):
            h.update(f"{index}\t{token}\n".encode("utf-8", errors="surrogatepass"))
    except (AttributeError, NotImplementedError, TypeError):
        pass
    probe = tokenizer(PROBE, truncation=False, padding=False)["input_ids"]
    h.update(json.dumps([list(probe), getattr(tokenizer, "pad_token_id", None)]).encode())
    base = os.path.basename(name.rstrip("/\\")) or "unnamed"
    return f"{type(tokenizer).__name__}:{base}:{size}:{h.hexdigest()[:12]}"


def check_tokenizer(tokenizer: Any, model_config: Any, max_length: int | None = None) -> None:
    """Raise TokenizerMismatchError (a BackboneError and a StreamError) when ``tokenizer``
    cannot feed a model with ``model_config``: ids beyond the embedding, a vocabulary much
    smaller than the embedding (another model's tokenizer; up to ``VOCAB_PAD_ALLOWANCE`` extra
    rows are allowed for embeddings padded to a multiple of 64/128), no pad token, or
    ``max_length`` beyond the position embeddings."""
    vocab = getattr(model_config, "vocab_size", None)
    size = len(tokenizer)
    if vocab is not None and size > int(vocab):
        raise TokenizerMismatchError(
            f"tokenizer has {size} tokens but the backbone's vocab_size is {vocab}; use the "
            "backbone's own tokenizer", source="tokenizer", field="vocab_size")
    if vocab is not None and int(vocab) - size >= VOCAB_PAD_ALLOWANCE:
        raise TokenizerMismatchError(
            f"tokenizer has {size} tokens but the backbone's vocab_size is {vocab}; use the "
            "backbone's own tokenizer", source="tokenizer", field="vocab_size")
    if getattr(tokenizer, "pad_token_id", None) is None:
        raise TokenizerMismatchError("tokenizer has no pad token", source="tokenizer",
                                     field="pad_token")
    positions = getattr(model_config, "max_position_embeddings", None)
    if max_length is not None and positions is not None and max_length > int(positions):
        raise TokenizerMismatchError(
            f"max_length {max_length} exceeds the backbone's max_position_embeddings {positions}",
            source="tokenizer", field="max_length")


def cache_dir() -> Path:
    """``$EVOCL_CACHE`` or ``~/.cache/evocl``."""
    env = os.environ.get("EVOCL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "evocl"


def clear_memory_cache() -> None:
    _MEMORY.clear()


def tokenize_stream(stream: Stream, tokenizer: Any, max_length: int, *,
                    disk_cache: bool = True) -> TokenizedStream:
    """Tokens for every task and split of ``stream``, from the memory cache, the disk cache, or
    the tokenizer (then stored in both). The same arguments return the same object. A disk
    entry that fails its checks (`_read_npz`) is rebuilt with one warning line naming it; a
    file lock beside it makes two workers build one entry once, not at the same time."""
    if int(max_length) < 2:
        raise StreamError(f"max_length must be >= 2, got {max_length}", source="tokenize",
                          field="max_length")
    key: tuple[Any, ...] = (stream.fingerprint, tokenizer_identity(tokenizer), int(max_length))
    if stream.scenario == GENERATIVE:
        from evocl.streams.lm_tokens import format_rule

        key = (*key, format_rule(tokenizer))
    hit = _MEMORY.get(key)
    if hit is not None and hit.stream.fingerprint == stream.fingerprint:
        _MEMORY.move_to_end(key)
        return hit
    path = _disk_path(key) if disk_cache else None
    if path is None:
        tok = _tokenize(stream, tokenizer, key)
    else:
        from evocl.safefile import entry_lock

        with entry_lock(path.with_suffix(".lock")):
            tok, fault = _read_npz(path, stream, key, vocab=len(tokenizer))
            if tok is None:
                if fault:
                    warnings.warn(f"{path}: token cache entry {fault}; rebuilt", stacklevel=2)
                tok = _tokenize(stream, tokenizer, key)
                _write_npz(path, tok)
    _MEMORY[key] = tok
    while len(_MEMORY) > MEMORY_CACHE_SIZE:
        _MEMORY.popitem(last=False)
    return tok


def _tokenize(stream: Stream, tokenizer: Any, key: tuple[Any, ...]) -> TokenizedStream:
    if stream.scenario == GENERATIVE:
        from evocl.streams.lm_tokens import tokenize_generative

        parts = tokenize_generative(stream, tokenizer, key[2])
        tasks = [TokenizedTask(t.index, (), **{w: TokenizedGenerativeSplit(*p[w]) for w in SPLITS})
                 for t, p in zip(stream.tasks, parts)]
        return TokenizedStream(stream, key[1], key[2], tuple(tasks), rule=key[3])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tasks = []
    for task in stream.tasks:
        parts = {}
        for which in SPLITS:
            split = task.split(which)
            enc = tokenizer(list(split.texts), truncation=True, max_length=key[2], padding=False)
            rows = enc["input_ids"]
            width = max([len(r) for r in rows] + [1])
            ids = np.full((len(rows), width), pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, r in enumerate(rows):
                ids[i, : len(r)] = r
                mask[i, : len(r)] = 1
            parts[which] = TokenizedSplit(ids, mask, np.array(split.labels, dtype=np.int64))
        tasks.append(TokenizedTask(task.index, task.classes, **parts))
    return TokenizedStream(stream, key[1], key[2], tuple(tasks))


def _disk_path(key: tuple[Any, ...]) -> Path:
    digest = hashlib.sha256(json.dumps([FORMAT_VERSION, *key]).encode()).hexdigest()[:24]
    return cache_dir() / "tokens" / f"{key[0]}-{digest}.npz"


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of an entry's arrays (names, dtypes, shapes and bytes), ``key`` included."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name == "digest":
            continue
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _write_npz(path: Path, tok: TokenizedStream) -> None:
    """Atomic write (temp file in the same folder, fsync, replace), with the digest of its
    content; failures only cost speed."""
    arrays: dict[str, np.ndarray] = {
        "key": np.frombuffer(json.dumps([FORMAT_VERSION, *tok.key]).encode(), dtype=np.uint8)}
    for t in tok.tasks:
        for which in SPLITS:
            s = t.split(which)
            arrays[f"t{t.index}_{which}_ids"] = s.input_ids
            arrays[f"t{t.index}_{which}_mask"] = s.attention_mask
            if isinstance(s, TokenizedGenerativeSplit):
                arrays[f"t{t.index}_{which}_target"] = s.target_mask
                arrays[f"t{t.index}_{which}_rows"] = s.rows
                if s.preference is not None:
                    for name in PREFERENCE_ARRAYS:
                        arrays[f"t{t.index}_{which}_{name}"] = getattr(s, name)
            else:
                arrays[f"t{t.index}_{which}_labels"] = s.labels
    arrays["digest"] = np.frombuffer(_digest(arrays).encode(), dtype=np.uint8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass


def _read_npz(path: Path, stream: Stream, key: tuple[Any, ...], vocab: int
              ) -> tuple[TokenizedStream | None, str | None]:
    """(the cached tokens, None), or (None, what is wrong with the entry) -- (None, None) when
    there is none. An entry is used only when it is a regular file that reads without error
    (CRC included), its digest matches its content, its key is this one and every split
    passes `_split_fault` against the stream (its source): shapes, 0/1 right-padded masks,
    ids in [0, vocab), labels equal to the stream's, rows in range."""
    import zipfile
    import zlib

    if not path.exists() and not path.is_symlink():
        return None, None
    if path.is_symlink() or not path.is_file():
        _discard(path)
        return None, "is not a regular file"
    generative = stream.scenario == GENERATIVE
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.array(data[name]) for name in data.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        return None, f"cannot be read ({type(exc).__name__}: {str(exc)[:80]})"
    if "digest" not in arrays or "key" not in arrays:
        return None, "has no digest or key (an older format)"
    if bytes(arrays["digest"]).decode(errors="replace") != _digest(arrays):
        return None, "does not match its digest (changed or damaged)"
    try:
        stored = json.loads(bytes(arrays["key"]).decode())
    except ValueError:
        return None, "has an unreadable key"
    if stored != [FORMAT_VERSION, *key]:
        return None, "holds another key"
    tasks = []
    for task in stream.tasks:
        parts: dict[str, Any] = {}
        for which in SPLITS:
            p = f"t{task.index}_{which}"
            names = ("ids", "mask", "target", "rows") if generative else ("ids", "mask", "labels")
            if any(f"{p}_{n}" not in arrays for n in names):
                return None, f"lacks task {task.index}'s {which} split"
            got = [arrays[f"{p}_{n}"] for n in names]
            fault = _split_fault(got, task.split(which), generative, int(key[2]), vocab)
            if fault:
                return None, f"task {task.index} {which}: {fault}"
            got = [np.asarray(a, dtype=np.int64) for a in got]
            if generative:
                pref = [np.asarray(arrays[f"{p}_{n}"], dtype=np.int64)
                        for n in PREFERENCE_ARRAYS if f"{p}_{n}" in arrays]
                if pref and len(pref) != len(PREFERENCE_ARRAYS):
                    return None, f"task {task.index} {which}: preference arrays incomplete"
                if task.split(which).rejected and not pref:  # type: ignore[union-attr]
                    return None, f"task {task.index} {which}: lacks the rejected answers"
                if pref and (pref[0].shape[0] != got[0].shape[0]
                             or pref[1].shape != pref[0].shape or pref[2].shape != pref[0].shape):
                    return None, f"task {task.index} {which}: rejected arrays do not fit ids"
                parts[which] = TokenizedGenerativeSplit(*got, *pref)
            else:
                parts[which] = TokenizedSplit(*got)
        tasks.append(TokenizedTask(task.index, task.classes, **parts))
    rule = str(key[3]) if generative else ""
    return TokenizedStream(stream, key[1], key[2], tuple(tasks), rule=rule), None


def _split_fault(got: list[np.ndarray], split: Any, generative: bool, max_length: int,
                 vocab: int) -> str | None:
    """What is wrong with a cached split's arrays (ids, mask, then labels or target and
    rows) for the stream's ``split``, or None."""
    ids, mask = got[0], got[1]
    if any(a.dtype.kind not in "iu" for a in got):
        return "arrays are not integers"
    if ids.ndim != 2 or mask.shape != ids.shape or not 1 <= ids.shape[1] <= max_length:
        return f"ids {ids.shape} and mask {mask.shape} are not [rows, <= {max_length}] alike"
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        return f"ids outside [0, {vocab})"
    if mask.size and (not np.isin(mask, (0, 1)).all() or (np.diff(mask, axis=1) > 0).any()):
        return "the attention mask is not right-padded 0/1"
    n = ids.shape[0]
    if generative:
        target, rows = got[2], got[3]
        if target.shape != ids.shape or rows.shape != (n,):
            return f"target mask {target.shape} or rows {rows.shape} do not fit ids {ids.shape}"
        if target.size and (not np.isin(target, (0, 1)).all() or (target > mask).any()
                            or target[:, 0].any()):
            return "the target mask is not a 0/1 subset of the attention mask after token 0"
        if n and (int(rows.min()) < 0 or int(rows.max()) >= len(split)):
            return f"rows outside [0, {len(split)})"
        return None
    labels = got[2]
    if n != len(split) or not np.array_equal(labels, np.asarray(split.labels)):
        return "labels are not the stream's"
    return None


def _discard(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
