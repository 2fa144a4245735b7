"""Shared helpers of the execution / storage / runner tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

SPACE_YAML = """\
name: toy
parameters:
  x1: {type: float, low: 0.0, high: 1.0}
  x2: {type: float, low: 0.0, high: 1.0}
  mode: {type: categorical, choices: [a, b]}
  x3: {type: float, low: 0.0, high: 1.0, when: {mode: b}}
objectives:
  f1: minimize
  f2: minimize
"""


def write_space(tmp: Path) -> Path:
    path = tmp / "toy.yaml"
    path.write_text(SPACE_YAML)
    return path
