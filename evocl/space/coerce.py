"""A value checked against a parameter: ``coerce_value`` (used by validation and by
`evocl.space.space`, kept apart from both so that neither imports the other)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from evocl.errors import SpaceError
from evocl.space.params import Param, same_choice


def _py(v: Any) -> Any:
    """numpy scalars -> Python builtins (np.float64 is a float, but np.int64/np.bool_ are not)."""
    return v.item() if isinstance(v, np.generic) else v


def coerce_value(param: Param, value: Any) -> Any:
    """``value`` checked against ``param`` and returned as a Python builtin of the right type,
    NOT rounded (floats keep every bit; canonical() rounds). Raises SpaceError (rule only)."""
    v = _py(value)
    t = param.type
    if t == "bool":
        if isinstance(v, bool):
            return v
        raise SpaceError(f"must be true or false, got {v!r}")
    if t == "categorical":
        for c in param.choices or ():
            if same_choice(c, v):
                return c
        raise SpaceError(f"must be one of {list(param.choices or ())}, got {v!r}")
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise SpaceError(f"must be a{'n int' if t == 'int' else ' number'}, got {type(v).__name__} {v!r}")
    try:
        x = float(v)
    except OverflowError:
        raise SpaceError(f"must be finite, got {v!r}") from None
    if not math.isfinite(x):
        raise SpaceError(f"must be finite, got {v!r}")
    low, high = float(param.low), float(param.high)
    tol = 1e-12 * (high - low)
    if x < low - tol or x > high + tol:
        raise SpaceError(f"must be in {param.describe_range()}, got {v!r}")
    if t == "int":
        if not x.is_integer():
            raise SpaceError(f"must be an int, got {v!r}")
        i = int(v)
        if (i - param.low) % (param.step or 1):
            raise SpaceError(f"must be on the grid {param.describe_range()}, got {v!r}")
        return i
    return min(max(x, low), high)
