"""Golden snapshots of every engine (pymoo's habit): a fixed seed and a fixed sequence of asks
and tells must give these exact candidates. Pinned before the engines were split into parts
(selection, survival, variation); a refactor that changes one candidate fails here.

To re-pin after an intended change of behaviour, print ``_digest(...)`` for each case and
say in the commit why the engines' results changed.

Any CPU: the digest is taken over the candidates with every float rounded to 12 significant
digits, so that NumPy's SIMD kernels (AVX-512, AVX2, baseline x86-64: their exp/log differ in
the last bits) cannot move it; a change of behaviour moves candidates by far more. Checked here
with ``NPY_DISABLE_CPU_FEATURES="AVX512_SPR AVX512_ICL X86_V4 X86_V3"``.
"""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from evocl.evolution import create
from evocl.evolution.problems import evaluate, problem_dict
from evocl.records import Candidate, Result
from evocl.space import SearchSpace
from evocl.testing.engines import MIXED

MIXED_CONSTRAINED = {**MIXED, "constraints": {"cost": {"max": 14.0}}}


def _mixed(c: Candidate) -> Result:
    if c.id % 7 == 3:
        return Result.failed("injected")
    cfg = c.config
    acc = -abs(math.log10(cfg["lr"]) + 3.5) + 0.1 * (cfg["targets"] == "all")
    acc += 0.2 * cfg.get("ratio", 0.0) if cfg["replay"] else 0.0
    return Result(objectives={"acc": acc, "cost": cfg["rank"] + cfg.get("buffer", 0) / 10.0})


def _zdt(c: Candidate) -> Result:
    return Result(objectives=evaluate("zdt1", c.config))


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _digest(algorithm: str, space: SearchSpace, objective, budget: int, **opts) -> str:
    engine = create(algorithm, space, population_size=6, seed=13, **opts)
    asked = []
    while engine.n_told < budget:
        cands = engine.ask(4)
        asked += cands
        for c in reversed(cands):             # arrival order differs from ask order
            engine.tell(c, objective(c))
    text = json.dumps([_rounded(c.to_dict()) for c in asked], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


ZDT = SearchSpace.from_dict(problem_dict("zdt1", 5))
MIX = SearchSpace.from_dict(MIXED_CONSTRAINED)

GOLDEN = {
    ("nsga2", "zdt1"): "11abfc8109cbca8b",
    ("nsga2", "mixed"): "a8a2df98bec05a4e",
    ("ga", "zdt1"): "a2663064ddc8043b",
    ("ga", "mixed"): "486bfaa11e366d64",
    ("async-nsga2", "zdt1"): "efe52e1f327dd7ca",
    ("async-nsga2", "mixed"): "6c08a41005d4fcf9",
    ("random", "mixed"): "8ffa9fcd1a4c7c10",
    ("optuna-tpe", "mixed"): "1c48900715b3e81b",
    ("optuna-nsga2", "zdt1"): "4588d4354488fa33",
}
OPTIONS = {"nsga2": {"eta_c": 5.0, "indpb": 0.3}, "async-nsga2": {"crossover_prob": 0.7}}


@pytest.mark.parametrize("algorithm,problem", sorted(GOLDEN))
def test_same_candidates_as_pinned(algorithm, problem):
    space, objective = (ZDT, _zdt) if problem == "zdt1" else (MIX, _mixed)
    got = _digest(algorithm, space, objective, 36, **OPTIONS.get(algorithm, {}))
    assert got == GOLDEN[(algorithm, problem)]
