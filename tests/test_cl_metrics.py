"""CL metrics against hand-computed values on a fixed accuracy matrix."""

import pytest

from evocl.cl import metrics

# R[i][j]: accuracy on task j after training task i; R[0][1] = 0.85 > R[1][1] pins that
# forgetting only looks at evaluations after the task was learned (l >= j).
R = [[0.90, 0.85, 0.20],
     [0.60, 0.80, 0.30],
     [0.50, 0.70, 0.95]]
B = [0.50, 0.20, 0.25]


def test_hand_computed_values() -> None:
    s = metrics.summarize(R, B)
    assert s["acc"] == pytest.approx((0.50 + 0.70 + 0.95) / 3)
    assert s["bwt"] == pytest.approx(((0.50 - 0.90) + (0.70 - 0.80)) / 2)          # -0.25
    assert s["fwt"] == pytest.approx(((0.85 - 0.20) + (0.30 - 0.25)) / 2)          # 0.35
    assert s["forgetting"] == pytest.approx(((0.90 - 0.50) + (0.80 - 0.70)) / 2)   # 0.25
    assert s["plasticity"] == pytest.approx((0.90 + 0.80 + 0.95) / 3)


def test_forgetting_uses_best_earlier_evaluation() -> None:
    r = [[0.9, 0.0, 0.0], [0.95, 0.8, 0.0], [0.5, 0.6, 0.7]]
    assert metrics.forgetting(r) == pytest.approx(((0.95 - 0.5) + (0.8 - 0.6)) / 2)


def test_single_task_has_no_transfer_or_forgetting() -> None:
    s = metrics.summarize([[0.7]], [0.5])
    assert s == {"acc": 0.7, "bwt": 0.0, "fwt": 0.0, "forgetting": 0.0, "plasticity": 0.7}


def test_no_forgetting_when_nothing_changes() -> None:
    r = [[0.8, 0.1], [0.8, 0.9]]
    assert metrics.forgetting(r) == 0.0
    assert metrics.backward_transfer(r) == 0.0
