"""Search spaces: YAML loading and validation, sampling, canonical form and hash, genomes.

    from evocl.space import load, loads, SearchSpace, check_file
    space = load("search_spaces/cl_lora.yaml")

Variation operators (crossover, mutate) live in ``evocl.space.operators``.

Conventions other modules rely on:

- A configuration is a dict of the ACTIVE parameters. ``canonical`` (the identity) drops
  inactive ones, fills missing active ones with their ``default`` (error if none), orders
  keys as ``space.names``, converts numpy scalars to builtins, rounds floats to 10
  significant digits; ``config_hash`` is sha256 of its compact JSON, first 16 hex digits.
- ``sample`` and ``decode`` return canonical configurations; the operators return valid but
  unrounded ones (canonicalise before hashing or storing).
- Genome: one gene in [0, 1] per parameter in ``space.names`` order, inactive ones
  included (``INACTIVE_GENE`` = 0.5, or uniform from an rng passed to ``encode``).
- ``Param.when`` maps parent name -> tuple of allowed values (always a tuple).
- YAML is read with YAML 1.2 scalars: ``1e-5`` is a float; only true/false are booleans.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from evocl.errors import SpaceError, UserError
from evocl.space.params import Constraint, Objective, Param
from evocl.space.space import INACTIVE_GENE, SearchSpace
from evocl.space.validate import build
from evocl.space.yaml_io import parse_yaml, yaml_error_line
from evocl.yamlsafe import read_text

__all__ = ["load", "loads", "check_file", "check_text", "resolve_space", "SearchSpace", "Param",
           "Objective", "Constraint", "SpaceError", "INACTIVE_GENE"]


def resolve_space(name_or_path: str | os.PathLike) -> Path:
    """A space file by path, or by the name of a shipped space (``cl_lora``, ``tiny``): looked
    up in ./search_spaces, then in the search_spaces folder beside the evocl package."""
    p = Path(name_or_path)
    if p.exists() or p.suffix in (".yaml", ".yml", ".json"):
        return p
    for root in (Path.cwd() / "search_spaces", Path(__file__).resolve().parents[2] / "search_spaces"):
        cand = root / f"{name_or_path}.yaml"
        if cand.exists():
            return cand
    return p


def _problems(text: str, source: str) -> tuple[dict | None, list[SpaceError]]:
    try:
        data, dups = parse_yaml(text, source)
    except yaml.YAMLError as e:
        return None, [SpaceError(yaml_error_line(e), source=source)]
    except UserError as e:  # over a limit of evocl.yamlsafe
        return None, [SpaceError(e.rule, source=source, field=e.field)]
    problems = [SpaceError(rule, source=source, field=path) for path, rule in dups]
    parts, more = build(data, source)
    return (parts if not problems and not more else None), problems + more


def _raise(problems: list[SpaceError]) -> None:
    err = problems[0]
    err.problems = [str(p) for p in problems]  # type: ignore[attr-defined]
    raise err


def loads(text: str, source: str = "<string>") -> SearchSpace:
    """Parse and validate a search space from YAML text.

    Raises SpaceError carrying the first problem; ``.problems`` lists all (one line each).
    """
    parts, problems = _problems(text, source)
    if problems or parts is None:
        _raise(problems)
    return SearchSpace(source=source, **parts)


def _read(path: str | os.PathLike[str]) -> str:
    try:
        return read_text(path, "YAML search space")
    except UserError as e:
        raise SpaceError(e.rule, source=str(path)) from None


def load(path: str | os.PathLike[str]) -> SearchSpace:
    """Load and validate a search space from a YAML file (see ``loads``)."""
    try:
        text = _read(path)
    except SpaceError as e:
        _raise([e])
    return loads(text, source=str(path))


def check_text(text: str, source: str = "<string>") -> list[str]:
    """Every problem of a YAML search space, one line each; [] means it loads."""
    return [str(p) for p in _problems(text, source)[1]]


def check_file(path: str | os.PathLike[str]) -> list[str]:
    """Every problem of a search-space file, one line each ("file: field: rule"); [] means OK."""
    try:
        text = _read(path)
    except SpaceError as e:
        return [str(e)]
    return check_text(text, source=str(path))
