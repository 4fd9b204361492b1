"""One small world for the compression tests: a LightGBM champion with a real lineage."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsd.compression.world import build_world
from mlsd.settings import Settings


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """300 customers, 45 days: fraud@champion (fraud/1), its dataset and feature store."""
    home: Path = tmp_path_factory.mktemp("compression-world")
    return build_world(home, customers=300, days=45, seed=7)
