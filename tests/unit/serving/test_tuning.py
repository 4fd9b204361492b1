"""Process tuning for the serving process: heap frozen, young collections rarer, GIL handed
over sooner; only when asked for."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from mlsd.serving import tuning
from mlsd.serving.app import create_app
from mlsd.settings import Settings


@pytest.fixture
def restore_process() -> Iterator[None]:
    threshold = gc.get_threshold()
    interval = sys.getswitchinterval()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("restore_process")
def test_tune_freezes_the_heap_and_sets_thresholds() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    tuning.tune()
    assert gc.get_freeze_count() > 1000  # the interpreter, pytest and mlsd's modules at least
    assert gc.get_threshold()[0] == tuning.YOUNG_THRESHOLD
    assert sys.getswitchinterval() == pytest.approx(tuning.SWITCH_INTERVAL_S)
    garbage: list[object] = []
    garbage.append(garbage)  # a cycle made after the freeze is still collected
    del garbage
    assert gc.collect() >= 1


@pytest.mark.usefixtures("restore_process")
@pytest.mark.parametrize("tune", [False, True])
def test_the_app_tunes_the_process_only_when_asked(
    settings: Settings, store: Any, build_service: Any, make_client: Any, tune: bool
) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)  # CPython's defaults, whatever ran before
    before = gc.get_threshold()[0]
    client = make_client(create_app(settings, service=build_service(store, tune_process=tune)))
    assert client.get("/v2/health/ready").status_code == 200
    assert (gc.get_threshold()[0] == tuning.YOUNG_THRESHOLD) is tune
    assert (gc.get_freeze_count() > 0) is tune
    if not tune:
        assert gc.get_threshold()[0] == before
