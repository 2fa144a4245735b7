"""Every registered engine, baselines included, passes the shipped engine contract
(``evocl.testing.engines.EngineSuite``), as Optuna's samplers pass pytest_samplers.py."""

from __future__ import annotations

import pytest

from evocl.registry import ENGINES
from evocl.testing.engines import EngineSuite


class TestRegisteredEngines(EngineSuite):
    @pytest.fixture(params=ENGINES.names())
    def algorithm(self, request) -> str:
        return request.param
