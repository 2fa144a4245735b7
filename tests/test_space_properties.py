"""Property tests on random search spaces (with nested conditions): every sampled, mutated
and crossed-over configuration is valid and in bounds; genomes round-trip; hashes are
stable under equivalent rewritings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evocl.space import SearchSpace
from evocl.space.operators import crossover, mutate

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def param_specs(draw: Any, name: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["float", "float_log", "int", "int_log", "categorical", "bool"]))
    if kind == "float":
        low = draw(st.floats(-1e3, 1e3, allow_nan=False))
        width = draw(st.floats(1e-3, 1e3))
        return {"type": "float", "low": low, "high": low + width}
    if kind == "float_log":
        low = draw(st.floats(1e-6, 1e2))
        return {"type": "float", "low": low, "high": low * draw(st.floats(1.01, 1e6)), "log": True}
    if kind == "int":
        low = draw(st.integers(-50, 50))
        step = draw(st.integers(1, 5))
        return {"type": "int", "low": low, "high": low + step * draw(st.integers(1, 20)),
                "step": step}
    if kind == "int_log":
        low = draw(st.integers(1, 20))
        return {"type": "int", "low": low, "high": low + draw(st.integers(1, 500)), "log": True}
    if kind == "categorical":
        pool = st.one_of(st.integers(-5, 5), st.sampled_from(["a", "b", "c", "xyz"]),
                         st.sampled_from([0.5, 1.5, 2.25]), st.booleans())
        choices = draw(st.lists(pool, min_size=1, max_size=5))
        uniq: list[Any] = []
        for c in choices:  # the space rejects duplicates (1 == 1.0; True only equals True)
            if not any((type(c) is bool) == (type(u) is bool) and c == u for u in uniq):
                uniq.append(c)
        return {"type": "categorical", "choices": uniq}
    return {"type": "bool"}


def _condition_values(spec: dict[str, Any], draw: Any) -> Any:
    if spec["type"] == "bool":
        return draw(st.booleans())
    if spec["type"] == "categorical":
        vals = draw(st.lists(st.sampled_from(spec["choices"]), min_size=1, max_size=2))
        return vals if len(vals) > 1 else vals[0]
    return None  # no conditions on numeric parents in these random spaces


@st.composite
def spaces(draw: Any) -> SearchSpace:
    n = draw(st.integers(1, 8))
    params: dict[str, dict[str, Any]] = {}
    for i in range(n):
        spec = draw(param_specs(f"p{i}"))
        parents = [k for k, v in params.items() if v["type"] in ("bool", "categorical")]
        if parents and draw(st.booleans()):
            when = {}
            for parent in draw(st.lists(st.sampled_from(parents), min_size=1, max_size=2,
                                        unique=True)):
                when[parent] = _condition_values(params[parent], draw)
            spec["when"] = when
        params[f"p{i}"] = spec
    # shuffle file order: the space must sort parents first
    order = draw(st.permutations(list(params)))
    return SearchSpace.from_dict({"parameters": {k: params[k] for k in order},
                                  "objectives": {"f": "minimize"}})


def _in_bounds(space: SearchSpace, cfg: dict[str, Any]) -> None:
    assert space.validate_config(cfg) == space.canonical(cfg)
    assert list(cfg) == space.active_names(cfg)
    for name, v in cfg.items():
        p = space.param(name)
        if p.type == "float":
            assert type(v) is float and p.low <= v <= p.high
        elif p.type == "int":
            assert type(v) is int and p.low <= v <= p.high and (v - p.low) % p.step == 0
        elif p.type == "bool":
            assert type(v) is bool
        else:
            assert any(type(c) is type(v) and c == v for c in p.choices)


def _close(space: SearchSpace, a: dict[str, Any], b: dict[str, Any]) -> bool:
    if list(a) != list(b):
        return False
    for k in a:
        p = space.param(k)
        if p.type == "float":
            tol = 1e-9 * max(abs(a[k]), abs(b[k])) + 1e-12 * (p.high - p.low)
            if not math.isclose(a[k], b[k], rel_tol=0, abs_tol=tol):
                return False
        elif a[k] != b[k] or type(a[k]) is not type(b[k]):
            return False
    return True


@SETTINGS
@given(space=spaces(), seed=st.integers(0, 2**32 - 1))
def test_samples_and_children_are_valid(space: SearchSpace, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pop = [space.sample(rng) for _ in range(6)]
    for c in pop:
        _in_bounds(space, c)
    for _ in range(8):
        i, j = rng.integers(len(pop), size=2)
        c1, c2 = crossover(space, pop[i], pop[j], rng)
        _in_bounds(space, c1)
        _in_bounds(space, c2)
        m = mutate(space, c1, rng, indpb=float(rng.random()))
        _in_bounds(space, m)
        pop += [c2, m]


@SETTINGS
@given(space=spaces(), seed=st.integers(0, 2**32 - 1))
def test_encode_decode_roundtrip(space: SearchSpace, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(5):
        c = space.sample(rng)
        g = space.encode(c)
        assert len(g) == len(space) and all(0.0 <= x <= 1.0 for x in g)
        assert _close(space, space.decode(g), space.canonical(c))
        # any genome decodes to a valid configuration
        d = space.decode(list(rng.random(len(space))))
        _in_bounds(space, d)
        assert _close(space, space.decode(space.encode(d)), d)


@SETTINGS
@given(space=spaces(), seed=st.integers(0, 2**32 - 1))
def test_hash_invariant_to_rewriting(space: SearchSpace, seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = space.sample(rng)
    h = space.config_hash(c)
    assert h == space.config_hash(dict(reversed(list(c.items()))))
    noisy = {}
    for k, v in c.items():
        p = space.param(k)
        if p.type == "float":
            noisy[k] = np.float64(v * (1 + 1e-14))
            noisy[k] = float(min(max(noisy[k], p.low), p.high))
        elif p.type == "int":
            noisy[k] = np.int64(v)
        elif p.type == "bool":
            noisy[k] = np.bool_(v)
        else:
            noisy[k] = v
    assert space.config_hash(noisy) == h
    # inactive extra parameters are dropped from the identity
    extra = dict(c)
    for p in space.parameters:
        if p.name not in c:
            extra[p.name] = space.sample_value(p.name, rng)
    assert space.config_hash(extra) == h
    assert space.canonical(extra) == space.canonical(c)


@SETTINGS
@given(space=spaces())
def test_to_dict_roundtrip(space: SearchSpace) -> None:
    again = SearchSpace.from_dict(space.to_dict())
    assert again == space and again.fingerprint == space.fingerprint
    assert again.names == space.names
