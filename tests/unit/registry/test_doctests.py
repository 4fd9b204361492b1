"""The examples in the registry's docstrings run."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from mlsd.registry import aliases, names


@pytest.mark.parametrize("module", [names, aliases])
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
