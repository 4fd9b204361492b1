"""GC tuning for the serving process: the loaded heap frozen, young collections rarer."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from mlsd.serving import gctune


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_gc")
def test_tune_freezes_the_heap_and_raises_the_young_threshold() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    gctune.tune()
    assert gc.get_freeze_count() > 1000  # the interpreter, pytest and mlsd's modules at least
    assert gc.get_threshold()[0] == gctune.YOUNG_THRESHOLD
    garbage: list[object] = []
    garbage.append(garbage)  # a cycle made after the freeze is still collected
    del garbage
    assert gc.collect() >= 1
