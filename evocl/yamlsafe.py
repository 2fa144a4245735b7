"""Reading YAML that may be hostile: every YAML evocl reads (search spaces, stream specs,
run.yaml, exported configurations) goes through here.

PyYAML's safe loaders build no objects, but they still follow aliases and recurse on nesting:
a few kilobytes of "billion laughs" (anchors referring to anchors) expand to gigabytes in any
code that walks the result, and a value nested a thousand levels deep ends in RecursionError.
So, before anything is constructed:

- the file must be a regular file (a FIFO or a device is refused, never waited on) of at
  most ``MAX_BYTES`` bytes of UTF-8 text;
- nesting may go at most ``MAX_DEPTH`` levels deep, counted on the parser's events (the
  parser is not recursive) and again through aliases on the composed node graph;
- the document, with every alias expanded, may weigh at most ``MAX_EXPANDED`` + twice its
  text (weight: one per node plus the length of each scalar), computed on the node graph
  with one visit per node, so the check itself is linear;
- an alias may not refer to a node that contains it.

A violation is one ``UserError`` line naming the file, the line and the limit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from evocl.errors import UserError
from evocl.safefile import read_bytes

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_EXPANDED = 1_000_000


class YamlLimitError(UserError):
    """A YAML document over one of the limits above (or not UTF-8, or malformed)."""


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """One line describing a YAML syntax error, with its line and column."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = f"{context}, {problem}" if context else str(problem)
    return f"{where}malformed YAML: {what}".replace("\n", " ")


def _check_events(text: str, loader_cls: type, source: str) -> None:
    """Nesting depth on the event stream (before the recursive composer sees it)."""
    loader = loader_cls(text)
    try:
        depth = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise YamlLimitError(
                        f"nested deeper than {MAX_DEPTH} levels at line "
                        f"{event.start_mark.line + 1}; refused", source=source)
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_graph(root: yaml.Node, text_length: int, source: str) -> None:
    """Expanded weight, depth through aliases, and recursion of a composed node graph."""
    limit = MAX_EXPANDED + 2 * text_length
    weight: dict[int, int] = {}
    depth: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        kids = _children(node)
        if done:
            visiting.discard(key)
            w = 1 + (len(str(node.value)) if isinstance(node, yaml.ScalarNode) else 0)
            w += sum(weight[id(k)] for k in kids)
            d = 1 + max((depth[id(k)] for k in kids), default=0)
            line = node.start_mark.line + 1
            if w > limit:
                raise YamlLimitError(f"aliases at line {line} expand to more than {limit:,} "
                                     "nodes and characters (a YAML alias bomb?); refused",
                                     source=source)
            if d > MAX_DEPTH + 1:
                raise YamlLimitError(f"aliases at line {line} nest deeper than {MAX_DEPTH} "
                                     "levels; refused", source=source)
            weight[key], depth[key] = w, d
            continue
        if key in weight:
            continue
        if key in visiting:
            raise YamlLimitError(f"recursive alias at line {node.start_mark.line + 1} (a node "
                                 "that contains itself); refused", source=source)
        visiting.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in weight)


def compose(text: str, loader_cls: type, source: str) -> tuple[Any, yaml.Node | None]:
    """(loader, node) of a single-document YAML text within the limits; the caller
    constructs with ``loader.construct_document(node)`` and then ``loader.dispose()``.
    Raises YamlLimitError, or yaml.YAMLError on malformed text."""
    _check_events(text, loader_cls, source)
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            check_graph(node, len(text), source)
    except BaseException:
        loader.dispose()
        raise
    return loader, node


def load_text(text: str, source: str = "<string>", loader_cls: type = yaml.SafeLoader) -> Any:
    """The data of a YAML text within the limits; YamlLimitError (one line) otherwise."""
    if len(text) > MAX_BYTES:
        raise YamlLimitError(f"{len(text):,} characters is over the {MAX_BYTES:,} limit of a "
                             "YAML file; refused", source=source)
    try:
        loader, node = compose(text, loader_cls, source)
    except yaml.YAMLError as exc:
        raise YamlLimitError(yaml_error_line(exc), source=source) from None
    try:
        return None if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise YamlLimitError(yaml_error_line(exc), source=source) from None
    finally:
        loader.dispose()


def read_text(path: str | os.PathLike[str], what: str = "YAML file") -> str:
    """A file's UTF-8 text, at most MAX_BYTES; YamlLimitError naming the file otherwise.

    Only a regular file is read (``evocl.safefile``): a FIFO or a device is refused at once
    instead of blocking."""
    p = Path(path)
    try:
        data = read_bytes(p, MAX_BYTES)
    except FileNotFoundError:
        raise YamlLimitError("file not found", source=str(p)) from None
    except UserError as exc:  # not a regular file
        raise YamlLimitError(f"{exc.rule}; expected a {what}", source=str(p)) from None
    except OSError as exc:
        raise YamlLimitError(f"cannot read ({exc.strerror or exc})", source=str(p)) from None
    return decode_text(data, str(p), what)


def decode_text(data: bytes, source: str, what: str = "YAML file") -> str:
    """``data`` (read with a limit of MAX_BYTES + 1) as UTF-8 text; YamlLimitError when it is
    over the limit or not UTF-8."""
    if len(data) > MAX_BYTES:
        raise YamlLimitError(f"larger than the {MAX_BYTES:,}-byte limit of a {what}; refused",
                             source=source)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlLimitError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                             f"{exc.start}); expected a {what}", source=source) from None


def read_yaml(path: str | os.PathLike[str], loader_cls: type = yaml.SafeLoader,
              what: str = "YAML file") -> Any:
    """The data of a YAML file within the limits; YamlLimitError (one line) otherwise."""
    return load_text(read_text(path, what), str(path), loader_cls)
