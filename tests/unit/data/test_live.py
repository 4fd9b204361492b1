"""Live mode: time order, pacing by the speed-up factor, sync and async."""

from __future__ import annotations

import asyncio
import math
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from mlsd.data import io, schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.live import LABEL_COLUMNS, astream, stream, stream_with_labels
from mlsd.data.simulator import Dataset
from mlsd.errors import ConfigError


class FakeClock:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_events_are_the_rows_in_time_order(small: Dataset) -> None:
    events = list(stream(small, speedup=math.inf))
    assert len(events) == len(small.transactions)
    first = events[0]
    assert set(first) == set(schema.TX_COLUMNS)
    assert isinstance(first[schema.TX_DATETIME], datetime)
    assert first[schema.TX_DATETIME].tzinfo is not None
    assert isinstance(first[schema.TX_AMOUNT], float)
    stamps = [e[schema.TX_DATETIME] for e in events]
    assert stamps == sorted(stamps)
    assert [e[schema.TRANSACTION_ID] for e in events[:5]] == [0, 1, 2, 3, 4]


def test_pacing_follows_the_speedup(small: Dataset) -> None:
    clock = FakeClock()
    events = []
    for event in stream(small, speedup=3600.0, clock=clock, sleep=clock.sleep):
        events.append(event)
        if len(events) == 200:
            break
    simulated = (events[-1][schema.TX_DATETIME] - events[0][schema.TX_DATETIME]).total_seconds()
    assert clock.now - 100.0 == pytest.approx(simulated / 3600.0)
    assert all(s > 0 for s in clock.slept)


def test_start_skips_earlier_days(small: Dataset, tmp_path: Path) -> None:
    first = next(stream(small, speedup=math.inf, start=date(2018, 4, 10)))
    assert first[schema.TX_TIME_DAYS] == 9
    folder = io.write_dataset(small, tmp_path / "ds")
    from_disk = next(stream(folder, speedup=math.inf, start=date(2018, 4, 10)))
    assert from_disk == first


def test_a_config_is_simulated_first() -> None:
    config = SimulatorConfig(n_customers=20, n_terminals=50, n_days=2, radius=30)
    assert len(list(stream(config, speedup=math.inf))) > 0


@pytest.mark.parametrize("speedup", [0.0, -1.0, math.nan])
def test_bad_speedup(small: Dataset, speedup: float) -> None:
    with pytest.raises(ConfigError) as info:
        next(stream(small, speedup=speedup))
    assert info.value.field == "speedup"


def test_async_stream(small: Dataset) -> None:
    async def take(n: int) -> list[dict[str, object]]:
        out = []
        async for event in astream(small, speedup=math.inf):
            out.append(event)
            if len(out) == n:
                break
        return out

    events = asyncio.run(take(50))
    assert [e[schema.TRANSACTION_ID] for e in events] == list(range(50))


def test_labels_arrive_after_their_delay(small: Dataset) -> None:
    clock = FakeClock()
    seen: dict[int, datetime] = {}
    labels = 0
    for kind, event in stream_with_labels(small, speedup=86400.0, clock=clock, sleep=clock.sleep):
        tx_id = event[schema.TRANSACTION_ID]
        if kind == "transaction":
            seen[tx_id] = event[schema.TX_DATETIME]
            continue
        assert kind == "label"
        assert set(event) == set(LABEL_COLUMNS)
        assert tx_id in seen  # a label never comes before its transaction
        assert event[schema.LABEL_AVAILABLE_AT] - seen[tx_id] == timedelta(days=7)
        # the stream's clock has reached the label time (1 simulated day = 1 s)
        labels += 1
        if labels == 100:
            break
    assert labels == 100
    first = min(seen.values())
    assert clock.now - 100.0 >= 7.0  # at least 7 simulated days passed before 100 labels
    assert max(seen.values()) - first >= timedelta(days=7)
