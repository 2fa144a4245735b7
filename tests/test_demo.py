"""The demo's comparison of the evolved front with sequential fine-tuning (pure logic)."""

from evocl.demo import better_than_baseline
from evocl.records import Candidate, Result


def ev(i, acc, forg):
    return (Candidate(id=i, config={}, config_hash=str(i), seed=i),
            Result(objectives={"acc": acc, "forgetting": forg}))


def test_picks_the_most_accurate_configuration_that_forgets_less():
    base = ev(0, 0.30, 0.60)
    front = [ev(3, 0.31, 0.01), ev(4, 0.55, 0.30), ev(5, 0.70, 0.65), base]
    b, best = better_than_baseline([base, *front[:3]], front)
    assert b[0].id == 0 and best[0].id == 4


def test_no_win_and_missing_baseline():
    base = ev(0, 0.5, 0.1)
    assert better_than_baseline([base], [base, ev(1, 0.4, 0.0)])[1] is None
    assert better_than_baseline([ev(1, 0.4, 0.0)], [ev(1, 0.4, 0.0)]) == (None, None)
