"""Every registered executor passes the shipped executor contract
(``evocl.testing.executors.ExecutorSuite``): local and Ray, the same tests."""

from __future__ import annotations

import pytest

from evocl.execution import create_executor
from evocl.registry import EXECUTORS
from evocl.testing.executors import ExecutorSuite

_SLOW = {"ray"}   # starts worker processes


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module: each executor then only starts its actors."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 object_store_memory=100 * 1024 * 1024)
    yield
    if started:
        ray.shutdown()


class TestRegisteredExecutors(ExecutorSuite):
    @pytest.fixture(params=[pytest.param(k, marks=pytest.mark.slow) if k in _SLOW else k
                            for k in EXECUTORS.names()])
    def kind(self, request) -> str:
        if request.param == "ray":
            request.getfixturevalue("ray_session")
        return request.param

    @pytest.fixture
    def make_executor(self, kind):
        def make(target, target_kwargs, **settings):
            return create_executor(kind, target=target, target_kwargs=target_kwargs, workers=2,
                                   **settings)
        return make
