"""Reading search-space YAML safely: no object construction, duplicate keys reported, line numbers.

PyYAML's ``SafeLoader`` silently keeps the last of two equal mapping keys, so a parameter
written twice would quietly lose its first definition; ours records every duplicate as a
problem instead. It also resolves ``1e-5`` (no dot) as a float, as YAML 1.2 does, where
PyYAML's YAML 1.1 rules would read the string "1e-5" and confuse users.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

# YAML 1.2 style floats: 1e-5, -2E+3, .5, 1.5e3 (YAML 1.1 needs a dot and a signed exponent).
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats; a duplicate key keeps its first value (and is reported)."""


# Replace the float resolver on our subclass only (copy the table so SafeLoader is untouched).
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in mapping:
                continue  # reported by _duplicates()
        except TypeError:
            key = str(key)  # an unhashable key (a list): keep it readable, validation rejects it
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _duplicates(node: yaml.Node, path: str, out: list[tuple[str, str]]) -> None:
    """Walk the composed node tree; record (field path, rule) for every repeated mapping key."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.tag)
            sub = f"{path}.{key}" if path else str(key)
            if key in seen:
                out.append((sub, f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                                 "(each key may appear once in a mapping)"))
            seen.add(key)
            _duplicates(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicates(item, f"{path}[{i}]", out)


def parse_yaml(text: str) -> tuple[Any, list[tuple[str, str]]]:
    """Parse YAML text; return (data, problems). Raises yaml.YAMLError on malformed input.

    ``problems`` lists (field path, rule) for every duplicate mapping key; the first
    occurrence's value is the one kept in ``data``.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        problems: list[tuple[str, str]] = []
        if node is None:
            return None, problems
        _duplicates(node, "", problems)
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    return data, problems


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """One line describing a YAML syntax error, with its line and column."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = f"{context}, {problem}" if context else str(problem)
    return f"{where}malformed YAML: {what}"
