"""Configurations: activity of conditional parameters, validation, canonical form and hash,
sampling, genome encode/decode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evocl.errors import SpaceError
from evocl.space import INACTIVE_GENE, load, loads

ROOT = Path(__file__).resolve().parents[1]

NESTED = """
parameters:
  lr:     {type: float, low: 1.0e-5, high: 1.0e-2, log: true}
  steps:  {type: int, low: 10, high: 200, step: 10}
  rank:   {type: categorical, choices: [2, 4, 8, 16]}
  ewc:    {type: bool}
  ewc_lambda: {type: float, low: 0.01, high: 10000, log: true, when: {ewc: true}}
  mode:   {type: categorical, choices: [online, offline], when: {ewc: true}}
  gamma:  {type: float, low: 0.5, high: 1.0, when: {mode: online}}
  size:   {type: int, low: 4, high: 64, log: true, when: {rank: [8, 16]}}
objectives: {acc: maximize}
"""


@pytest.fixture(scope="module")
def space():
    return loads(NESTED)


def test_is_active_nested(space) -> None:
    off = {"ewc": False, "mode": "online"}
    assert not space.is_active("ewc_lambda", off)
    assert not space.is_active("mode", off)
    assert not space.is_active("gamma", off)  # parent 'mode' is inactive, whatever its value
    on = {"ewc": True, "mode": "online"}
    assert space.is_active("gamma", on)
    assert not space.is_active("gamma", {"ewc": True, "mode": "offline"})
    assert space.is_active("size", {"rank": 8}) and space.is_active("size", {"rank": np.int64(16)})
    assert not space.is_active("size", {"rank": 4})
    assert space.is_active("lr", {})
    with pytest.raises(SpaceError, match="unknown parameter"):
        space.is_active("nope", {})


BASE = {"lr": 1e-3, "steps": 50, "rank": 4, "ewc": True, "ewc_lambda": 10.0,
        "mode": "offline"}


def test_validate_config_accepts_and_returns_canonical(space) -> None:
    assert space.validate_config(BASE) == BASE
    assert list(space.validate_config(dict(reversed(list(BASE.items()))))) == list(BASE)


@pytest.mark.parametrize("change,field,rule", [
    ({"nope": 1}, "nope", "unknown parameter"),
    ({"lr": 1.0}, "lr", "must be in [1e-05, 0.01] log"),
    ({"lr": "0.001"}, "lr", "must be a number"),
    ({"lr": float("nan")}, "lr", "finite"),
    ({"steps": 55}, "steps", "grid"),
    ({"steps": 50.5}, "steps", "must be an int"),
    ({"steps": True}, "steps", "must be an int"),
    ({"rank": 3}, "rank", "must be one of [2, 4, 8, 16]"),
    ({"rank": True}, "rank", "must be one of"),
    ({"ewc": 1}, "ewc", "true or false"),
    ({"gamma": 0.7}, "gamma", "given but inactive (active only when mode = online)"),
    ({"size": 8}, "size", "given but inactive"),
])
def test_validate_config_rejects(space, change, field, rule) -> None:
    with pytest.raises(SpaceError) as info:
        space.validate_config({**BASE, **change})
    msg = str(info.value)
    assert msg.startswith(f"config: {field}: ") and rule in msg, msg


def test_validate_config_missing_active(space) -> None:
    cfg = dict(BASE)
    del cfg["ewc_lambda"]
    with pytest.raises(SpaceError, match="config: ewc_lambda: missing"):
        space.validate_config(cfg)


def test_canonical_drops_inactive_rounds_and_orders(space) -> None:
    messy = {"mode": "offline", "gamma": 0.9, "size": 16, "ewc_lambda": 10.000000000001,
             "ewc": np.bool_(True), "rank": np.int64(4), "steps": np.float64(50.0),
             "lr": np.float32(1e-3).item() * 0 + 0.0001 + 0.0009}
    c = space.canonical(messy)
    assert c == BASE
    assert list(c) == list(BASE)
    assert [type(v) for v in c.values()] == [float, int, int, bool, float, str]
    assert space.config_hash(messy) == space.config_hash(BASE)


def test_canonical_float_noise_and_types() -> None:
    s = loads("parameters: {x: {type: float, low: 0, high: 1}, "
              "c: {type: categorical, choices: [0.5, 1, 2]}}\nobjectives: {f: minimize}\n")
    assert s.canonical({"x": 0.1 + 0.2, "c": 1.0}) == {"x": 0.3, "c": 1}
    assert s.config_hash({"x": 0.1 + 0.2, "c": 1}) == s.config_hash({"x": 0.3, "c": np.int32(1)})
    assert s.config_hash({"x": np.float32(0.5), "c": np.float64(0.5)}) == \
        s.config_hash({"x": 0.5, "c": 0.5})
    assert type(s.canonical({"x": 1, "c": 2})["x"]) is float
    assert s.config_hash({"x": 0.3, "c": 1}) != s.config_hash({"x": 0.3000001, "c": 1})
    # values a hair outside a bound (arithmetic noise) are accepted and clamped
    assert s.canonical({"x": 1.0 + 1e-15, "c": 2})["x"] == 1.0
    with pytest.raises(SpaceError):
        s.canonical({"x": 1.0001, "c": 2})


def test_canonical_is_idempotent(space) -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        c = space.sample(rng)
        assert space.canonical(c) == c
        assert space.canonical(space.canonical(c)) == space.canonical(c)


def test_golden_hash_pinned() -> None:
    """Catches drift of the canonical form or hash across machines and versions."""
    space = load(ROOT / "search_spaces" / "cl_lora.yaml")
    config = {"lora_rank": 8, "lora_alpha_ratio": 2, "lora_dropout": 0.05,
              "lora_targets": "attention", "lora_layers": "all", "lora_rank_schedule": "uniform",
              "ewc": True, "ewc_lambda": 100.0, "ewc_gamma": 0.9, "replay": False,
              "distill": False, "adversarial": False, "lr": 0.0003, "steps_per_task": 30,
              "batch_size": 16, "weight_decay": 0.01, "warmup_ratio": 0.1}
    text = json.dumps(space.canonical(config), separators=(",", ":"))
    assert text == ('{"lora_rank":8,"lora_alpha_ratio":2,"lora_dropout":0.05,'
                    '"lora_targets":"attention","lora_layers":"all","lora_rank_schedule":"uniform",'
                    '"ewc":true,"ewc_lambda":100.0,"ewc_gamma":0.9,"replay":false,"distill":false,'
                    '"adversarial":false,"agem":false,"lr":0.0003,"steps_per_task":30,"batch_size":16,'
                    '"weight_decay":0.01,"warmup_ratio":0.1}')
    assert space.config_hash(config) == GOLDEN


# sha256 of the JSON text above, first 16 hex digits (changed when cl_lora.yaml gained agem and
# mer: an always-active parameter with a default is part of every canonical configuration)
GOLDEN = "dcec9d4e9f353a2b"


def test_defaults_fill_missing_active() -> None:
    space = load(ROOT / "search_spaces" / "cl_lora.yaml")
    assert space.canonical({}) == space.default_config()
    assert space.config_hash({"ewc": False}) == space.config_hash({})


def test_sample_is_seeded_valid_and_canonical(space) -> None:
    a = [space.sample(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    seen_inactive = seen_active = False
    for _ in range(300):
        c = space.sample(rng)
        assert space.validate_config(c) == c
        assert c["steps"] % 10 == 0
        seen_active |= "gamma" in c
        seen_inactive |= "ewc_lambda" not in c
    assert seen_active and seen_inactive


def test_sample_log_uniform() -> None:
    s = loads("parameters: {lr: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}, "
              "n: {type: int, low: 1, high: 1000, log: true}}\nobjectives: {f: minimize}\n")
    rng = np.random.default_rng(0)
    xs = np.array([[c["lr"], c["n"]] for c in (s.sample(rng) for _ in range(4000))])
    # log-uniform: a quarter of the samples in each decade of lr
    frac = np.mean(xs[:, 0] < 1e-4)
    assert 0.2 < frac < 0.3
    assert np.mean(xs[:, 1] < 32) == pytest.approx(0.5, abs=0.05)
    assert xs[:, 1].min() >= 1 and xs[:, 1].max() <= 1000


def test_encode_decode(space) -> None:
    cfg = dict(BASE)
    g = space.encode(cfg)
    assert len(g) == len(space) and all(0.0 <= x <= 1.0 for x in g)
    assert space.decode(g) == space.canonical(cfg)
    names = space.names
    assert g[names.index("gamma")] == INACTIVE_GENE and g[names.index("size")] == INACTIVE_GENE
    assert g[names.index("ewc")] == 0.75
    assert g[names.index("rank")] == pytest.approx(1.5 / 4)
    assert g[names.index("lr")] == pytest.approx(2 / 3)
    with pytest.raises(SpaceError, match="genome has 3 genes"):
        space.decode([0.5, 0.5, 0.5])
    # out-of-range genes are clipped
    assert space.decode([2.0] * len(space))["lr"] == 1e-2


def test_cl_lora_sample_speed() -> None:
    space = load(ROOT / "search_spaces" / "cl_lora.yaml")
    rng = np.random.default_rng(0)
    for _ in range(200):
        c = space.sample(rng)
        assert space.decode(space.encode(c)) == c


def test_encode_inactive_genes_from_rng(space) -> None:
    g = space.encode(BASE, rng=np.random.default_rng(0))
    names = space.names
    assert g[names.index("gamma")] != INACTIVE_GENE
    assert space.decode(g) == space.canonical(BASE)
    assert g == space.encode(BASE, rng=np.random.default_rng(0))


def test_activity_uses_defaults_like_canonical() -> None:
    s = loads("parameters:\n  ewc: {type: bool, default: true}\n"
              "  lam: {type: float, low: 1, high: 2, default: 1.5, when: {ewc: true}}\n"
              "objectives: {acc: maximize}\n")
    assert s.is_active("lam", {})
    assert s.canonical({}) == {"ewc": True, "lam": 1.5}
    assert not s.is_active("lam", {"ewc": False})
