"""A fresh embedded registry (SQLite + local folder) in a temporary data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlsd.registry import Registry
from mlsd.settings import Settings


@pytest.fixture
def registry(home: Path) -> Iterator[Registry]:
    reg = Registry.open(Settings(home=home))
    yield reg
    reg.close()
