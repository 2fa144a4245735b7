"""Reading search-space YAML safely: no object construction, duplicate keys reported, line numbers.

PyYAML's ``SafeLoader`` silently keeps the last of two equal mapping keys, so a parameter
written twice would quietly lose its first definition; ours records every duplicate as a
problem instead. It also follows YAML 1.2 for scalars: ``1e-5`` (no dot) is a float (YAML
1.1 reads the string "1e-5"), and only true/false are booleans (not yes/no/on/off).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from evocl.yamlsafe import MAX_BYTES, YamlLimitError, compose, yaml_error_line  # noqa: F401

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
    """SafeLoader with YAML 1.2 floats and booleans; duplicate keys are reported by parse_yaml."""


# Replace the float and bool resolvers on our subclass only (SafeLoader itself is untouched):
# YAML 1.2 floats (1e-5) and YAML 1.2 booleans (true/false only: `choices: [no, yes]` stays
# two strings, `when: {ewc: yes}` is reported instead of silently meaning true).
_REPLACED = ("tag:yaml.org,2002:float", "tag:yaml.org,2002:bool")
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in _REPLACED]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                              re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    n_explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)  # merged pairs (`<<: *base`) come first, then explicit ones
    n_merged = len(node.value) - n_explicit
    mapping: dict[Any, Any] = {}
    merged: set[Any] = set()
    for i, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            key = str(key)  # an unhashable key (a list): keep it readable, validation rejects it
        if key in mapping and key not in merged:
            continue  # written twice: keep the first (validated too), reported by _duplicates()
        merged.discard(key)  # an explicit key overrides a merged one
        if i < n_merged:
            merged.add(key)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _duplicates(root: yaml.Node, out: list[tuple[str, str]]) -> None:
    """Record (field path, rule) for every repeated mapping key; each node is visited once
    (a node reached again through an alias was checked already)."""
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        children: list[tuple[yaml.Node, str]] = []
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.tag)
                sub = f"{path}.{key}" if path else str(key)
                if key in seen:
                    out.append((sub, f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                                     "(each key may appear once in a mapping)"))
                seen.add(key)
                children.append((value_node, sub))
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        stack.extend(reversed(children))


def parse_yaml(text: str, source: str = "<string>") -> tuple[Any, list[tuple[str, str]]]:
    """Parse YAML text within evocl's limits (see evocl.yamlsafe); return (data, problems).

    Raises yaml.YAMLError on malformed input, YamlLimitError over a limit. ``problems`` lists
    (field path, rule) for every mapping key written twice.
    """
    if len(text) > MAX_BYTES:
        raise YamlLimitError(f"{len(text):,} characters is over the {MAX_BYTES:,} limit of a "
                             "YAML file; refused", source=source)
    loader, node = compose(text, _Loader, source)
    try:
        problems: list[tuple[str, str]] = []
        if node is None:
            return None, problems
        _duplicates(node, problems)
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    return data, problems
