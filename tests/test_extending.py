"""docs/extending.md: an engine and an executor, each one module plus a registry
line (``examples/``), pass the shipped contract suites; the suites fail a broken engine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from evocl.evolution.steady import RandomSearch
from evocl.records import Result
from evocl.registry import ENGINES, EXECUTORS
from evocl.testing.engines import EngineSuite
from evocl.testing.executors import ExecutorSuite

EXAMPLES = str(Path(__file__).resolve().parents[1] / "examples")


@pytest.fixture(scope="module")
def registered():
    sys.path.insert(0, EXAMPLES)
    ENGINES.register("local-search", "local_search:LocalSearch", "(mu + 1) local search")
    EXECUTORS.register("threads", "thread_executor:ThreadExecutor", "a pool of threads")
    yield
    ENGINES.unregister("local-search")
    EXECUTORS.unregister("threads")
    sys.path.remove(EXAMPLES)


class TestExampleEngine(EngineSuite):
    @pytest.fixture
    def algorithm(self, registered) -> str:
        return "local-search"


class TestExampleExecutor(ExecutorSuite):
    @pytest.fixture
    def make_executor(self, registered):
        from evocl.execution import create_executor

        return lambda target, target_kwargs, **settings: create_executor(
            "threads", target=target, target_kwargs=target_kwargs, workers=2, **settings)


class Forgetful(RandomSearch):
    """Broken on purpose: its state forgets what it was told."""

    algorithm = "forgetful"

    def state(self):
        s = super().state()
        s["told"] = []
        return s


class Flaky(RandomSearch):
    """Broken on purpose: a NaN result is taken as a parent."""

    algorithm = "flaky"

    def tell(self, candidate, result):
        if not result.ok or any(v != v for v in result.objectives.values()):
            result = Result(objectives={k: 0.0 for k, _ in self._signs})
        super().tell(candidate, result)


@pytest.mark.parametrize("name, cls, test", [
    ("forgetful", "Forgetful", "test_state_round_trip_continues_exactly"),
    ("flaky", "Flaky", "test_failures_never_parents_and_never_stall"),
])
def test_the_suite_fails_a_broken_engine(name, cls, test):
    from evocl.space import SearchSpace
    from evocl.testing.engines import MIXED

    ENGINES.register(name, f"{__name__}:{cls}")
    try:
        with pytest.raises(AssertionError):
            getattr(EngineSuite(), test)(name, SearchSpace.from_dict(MIXED))
    finally:
        ENGINES.unregister(name)
