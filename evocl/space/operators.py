"""Variation operators on configurations: bounded SBX crossover and polynomial mutation.

Pure functions: they take the space, the parent configuration(s) and a seeded numpy
Generator, and return new dicts (parents untouched). Float and int parameters vary in their
internal numeric space ``z`` (the value itself, or its log for log scales), bounded by
[low, high]; ints are then rounded onto their grid; categorical values are swapped or
resampled, bools swapped or flipped. Children are valid configurations (validate_config
passes): active parameters only, in parameter order, Python builtin types. Floats are NOT
rounded here (optimisation keeps every bit); call ``space.canonical`` for identity.

References: K. Deb, R. B. Agrawal (1995), "Simulated binary crossover for continuous search
space"; K. Deb, M. Goyal (1996) polynomial mutation; bounded forms as in DEAP's
``cxSimulatedBinaryBounded`` / ``mutPolynomialBounded`` and pymoo's ``SBX`` / ``PM``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from evocl.space.params import same_choice
from evocl.space.space import SearchSpace, _Spec, check_rng

_EPS = 1.0e-14  # parents closer than this are not crossed (as in DEAP and pymoo)


def _z(s: _Spec, v: Any) -> float:
    return math.log(v) if s.param.log else float(v)


def _sbx_pair(z1: float, z2: float, lo: float, hi: float, u: float, eta: float) -> tuple[float, float]:
    """Bounded SBX of two values (z1 < z2) with one uniform draw ``u``; returns children
    (near z1, near z2), clipped to [lo, hi]."""
    d = z2 - z1
    inv = 1.0 / (eta + 1.0)

    def beta_q(beta: float) -> float:
        alpha = 2.0 - beta ** -(eta + 1.0)
        if u <= 1.0 / alpha:
            return (u * alpha) ** inv
        return (1.0 / (2.0 - u * alpha)) ** inv

    c1 = 0.5 * (z1 + z2 - beta_q(1.0 + 2.0 * (z1 - lo) / d) * d)
    c2 = 0.5 * (z1 + z2 + beta_q(1.0 + 2.0 * (hi - z2) / d) * d)
    return min(max(c1, lo), hi), min(max(c2, lo), hi)


def _pm(z: float, lo: float, hi: float, u: float, eta: float) -> float:
    """Bounded polynomial mutation of one value with one uniform draw ``u``."""
    span = hi - lo
    d1, d2 = (z - lo) / span, (hi - z) / span
    p = eta + 1.0
    if u <= 0.5:
        val = 2.0 * u + (1.0 - 2.0 * u) * (1.0 - d1) ** p
        dq = val ** (1.0 / p) - 1.0
    else:
        val = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * (1.0 - d2) ** p
        dq = 1.0 - val ** (1.0 / p)
    return min(max(z + dq * span, lo), hi)


def _finish(space: SearchSpace, values: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Keep the active parameters in order; an active one with no value gets a fresh sample."""
    out: dict[str, Any] = {}
    active: set[str] = set()
    for s in space._specs:
        p = s.param
        if p.when and not space._matches(out, active, p):
            continue
        active.add(p.name)
        v = values.get(p.name)
        out[p.name] = space.sample_value(p.name, rng) if v is None else v
    return out


def crossover(space: SearchSpace, a: Mapping[str, Any], b: Mapping[str, Any],
              rng: np.random.Generator, *, eta: float = 15.0,
              prob_var: float = 0.5) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two children of ``a`` and ``b``.

    Each float/int parameter active in both parents is crossed by bounded SBX with
    probability ``prob_var`` (distribution index ``eta``) and the two children's values are
    exchanged with probability 0.5; categorical and bool values are exchanged with
    probability 0.5. A parameter present in one parent only is inherited by both children;
    one active in a child but in neither parent is sampled afresh.
    """
    check_rng(rng)
    pa = space._resolve(a, strict=False, rounded=False)
    pb = space._resolve(b, strict=False, rounded=False)
    n = len(space._specs)
    r = rng.random((3, n))
    c1: dict[str, Any] = {}
    c2: dict[str, Any] = {}
    for s in space._specs:
        name = s.param.name
        va, vb = pa.get(name), pb.get(name)
        if va is None or vb is None:
            c1[name] = c2[name] = vb if va is None else va
            continue
        i = s.index
        if s.kind in ("float", "int"):
            za, zb = _z(s, va), _z(s, vb)
            if r[0, i] < prob_var and abs(za - zb) > _EPS:
                lo, hi = (za, zb) if za < zb else (zb, za)
                y1, y2 = _sbx_pair(lo, hi, s.zlow, s.zhigh, float(r[1, i]), eta)
                if za > zb:  # child 1 starts near parent a
                    y1, y2 = y2, y1
                va, vb = space._from_z(s, y1), space._from_z(s, y2)
        if r[2, i] < 0.5:
            va, vb = vb, va
        c1[name], c2[name] = va, vb
    return _finish(space, c1, rng), _finish(space, c2, rng)


def mutate(space: SearchSpace, config: Mapping[str, Any], rng: np.random.Generator, *,
           eta: float = 20.0, indpb: float | None = None) -> dict[str, Any]:
    """A mutated copy of ``config``.

    Each active parameter mutates with probability ``indpb`` (default 1 / number of active
    parameters): float/int by bounded polynomial mutation (distribution index ``eta``, ints
    rounded onto their grid), categorical to a different choice, bool flipped. Parameters
    that become active are sampled afresh.
    """
    check_rng(rng)
    cfg = space._resolve(config, strict=False, rounded=False)
    if indpb is None:
        indpb = 1.0 / max(len(cfg), 1)
    n = len(space._specs)
    r = rng.random((2, n))
    out: dict[str, Any] = {}
    for s in space._specs:
        name = s.param.name
        if name not in cfg:
            continue
        v = cfg[name]
        i = s.index
        if r[0, i] < indpb:
            if s.kind in ("float", "int"):
                v = space._from_z(s, _pm(_z(s, v), s.zlow, s.zhigh, float(r[1, i]), eta))
            elif s.kind == "categorical":
                if s.n > 1:
                    cur = next(k for k, c in enumerate(s.param.choices) if same_choice(c, v))
                    j = int(r[1, i] * (s.n - 1))  # uniform over the other choices
                    v = s.param.choices[j + 1 if j >= cur else j]
            else:
                v = not v
        out[name] = v
    return _finish(space, out, rng)
