"""Task streams for continual learning: built-in streams, user specs, splits, tokenization.

    from evocl.streams import load_stream, list_streams, tokenize_stream
    stream = load_stream("default", seed=0)          # or a built-in name, or a spec.yaml path
    tok = tokenize_stream(stream, tokenizer, max_length=128)

Class ids are global (``stream.class_names`` names them) in every classification scenario;
see types.py. A ``generative`` stream (prompt/response pairs or texts, for causal LMs) has no
classes; its tokens carry a ``target_mask`` (lm_tokens.py). Conversations (messages / ShareGPT
records) are parsed and rendered by conversation.py; retention sets come from retention.py.
"""

from __future__ import annotations

from evocl.errors import StreamError
from evocl.streams.build import Record, SplitRule, build_stream
from evocl.streams.conversation import Encoded, encode_conversations, parse_turns
from evocl.streams.generative import GenRecord, build_generative_stream
from evocl.streams.lm_tokens import encode_prompt
from evocl.streams.registry import builtins, list_streams, load_stream
from evocl.streams.tokenize import (
    TokenizedGenerativeSplit,
    TokenizedSplit,
    TokenizedStream,
    TokenizedTask,
    TokenizerMismatchError,
    check_tokenizer,
    clear_memory_cache,
    tokenize_stream,
)
from evocl.streams.types import (
    GENERATIVE,
    SCENARIOS,
    SPLITS,
    GenerativeSplit,
    RetentionSet,
    Split,
    Stream,
    Task,
)

__all__ = [
    "Encoded", "GENERATIVE", "GenRecord", "GenerativeSplit", "Record", "RetentionSet",
    "SCENARIOS", "SPLITS", "Split",
    "SplitRule", "Stream", "StreamError", "Task", "TokenizedGenerativeSplit", "TokenizedSplit",
    "TokenizedStream", "TokenizedTask", "TokenizerMismatchError", "build_generative_stream",
    "build_stream", "builtins", "check_tokenizer", "clear_memory_cache",
    "encode_conversations", "encode_prompt", "parse_turns",
    "list_streams", "load_stream", "tokenize_stream",
]
