"""Local executor specifics (the shared contract is tests/test_execution_contract.py): kinds,
bad targets, the guard around a call."""

from __future__ import annotations

import pytest

from evocl.errors import UserError
from evocl.execution import create_executor, resolve_kind
from evocl.execution.base import evaluate_guarded
from evocl.records import Candidate


def _c(i, **cfg):
    return Candidate(id=i, config=cfg, config_hash=str(i), seed=i)


def test_auto_kind():
    assert resolve_kind("auto", 1, None) == "local"
    assert resolve_kind("auto", 2, None) == "ray"
    assert resolve_kind("auto", 1, "auto") == "ray"
    with pytest.raises(UserError):
        resolve_kind("dask", 1, None)


class Slow:
    def __init__(self):
        pass


def test_bad_target_is_a_user_error():
    with pytest.raises(UserError, match="cannot import"):
        create_executor("local", target="no_such_module_xyz:Thing")
    with pytest.raises(UserError, match="must be 'module:attr'"):
        create_executor("local", target="nocolon")
    with pytest.raises(UserError, match="building"):
        create_executor("local", target=f"{__name__}:Slow", target_kwargs={"unexpected": 1})


def test_guard_accepts_dict_results_and_rejects_other_types():
    assert evaluate_guarded(lambda c: {"objectives": {"f1": 1}}, _c(0).to_dict())["result"][
        "status"] == "ok"
    out = evaluate_guarded(lambda c: 3, _c(0).to_dict())
    assert out["result"]["error"] == "TypeError: target returned int, expected Result"
