"""Small simulated datasets shared by the simulator tests (simulated once per session)."""

from __future__ import annotations

import pytest

from mlsd.data.config import SimulatorConfig
from mlsd.data.simulator import Dataset, simulate


@pytest.fixture(scope="session")
def small_config() -> SimulatorConfig:
    return SimulatorConfig.scaled(300, 600, n_days=40, seed=1)


@pytest.fixture(scope="session")
def small(small_config: SimulatorConfig) -> Dataset:
    return simulate(small_config)
