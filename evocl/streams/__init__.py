"""Task streams for continual learning: built-in streams, user specs, splits, tokenization.

    from evocl.streams import load_stream, list_streams, tokenize_stream
    stream = load_stream("default", seed=0)          # or a built-in name, or a spec.yaml path
    tok = tokenize_stream(stream, tokenizer, max_length=128)

Class ids are global (``stream.class_names`` names them) in every scenario; see types.py.
"""

from __future__ import annotations

from evocl.errors import StreamError
from evocl.streams.build import Record, SplitRule, build_stream
from evocl.streams.registry import builtins, list_streams, load_stream
from evocl.streams.tokenize import (
    TokenizedSplit,
    TokenizedStream,
    TokenizedTask,
    TokenizerMismatchError,
    check_tokenizer,
    clear_memory_cache,
    tokenize_stream,
)
from evocl.streams.types import SCENARIOS, SPLITS, Split, Stream, Task

__all__ = [
    "Record", "SCENARIOS", "SPLITS", "Split", "SplitRule", "Stream", "StreamError",
    "Task", "TokenizedSplit", "TokenizedStream", "TokenizedTask", "TokenizerMismatchError",
    "build_stream", "builtins", "check_tokenizer", "clear_memory_cache", "list_streams", "load_stream",
    "tokenize_stream",
]
