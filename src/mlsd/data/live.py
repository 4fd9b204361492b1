"""Live mode: the simulated transactions as a time-ordered stream, paced by a speed-up factor.

`stream(source, speedup)` yields one dict per transaction (the `schema.TX_COLUMNS`, as
plain Python values) at `speedup` times real time: with `speedup=3600`, one simulated
hour passes in one wall-clock second. `speedup=math.inf` replays as fast as possible.
`astream` is the same as an async generator, for servers and the demo;
`stream_with_labels` interleaves each transaction's label when it becomes known.

The source is a `Dataset`, a `SimulatorConfig` (simulated first), or a dataset folder.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import pandas as pd

from mlsd.data import schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.simulator import Dataset, simulate
from mlsd.errors import ConfigError

Source = Dataset | SimulatorConfig | Path | str
Event = dict[str, Any]
T = TypeVar("T")
LABEL_COLUMNS: Final = (
    schema.TRANSACTION_ID,
    schema.CUSTOMER_ID,
    schema.TERMINAL_ID,
    schema.TX_DATETIME,
    schema.TX_FRAUD,
    schema.TX_FRAUD_SCENARIO,
    schema.LABEL_AVAILABLE_AT,
)
_CHUNK = 4096


def _transactions(source: Source, start: date | datetime | None) -> pd.DataFrame:
    if isinstance(source, Dataset):
        frame = source.transactions
    elif isinstance(source, SimulatorConfig):
        frame = simulate(source).transactions
    else:
        from mlsd.data.io import read_transactions

        frame = read_transactions(Path(source), start=start)
    if start is not None:
        when = (
            start if isinstance(start, datetime) else datetime(start.year, start.month, start.day)
        )
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        frame = frame[frame[schema.TX_DATETIME] >= pd.Timestamp(when)]
    return frame


def _events(frame: pd.DataFrame) -> Iterator[tuple[float, Event]]:
    """(simulated seconds since epoch, event) in time order, converted chunk by chunk."""
    columns = list(schema.TX_COLUMNS)
    for lo in range(0, len(frame), _CHUNK):
        chunk = frame.iloc[lo : lo + _CHUNK]
        stamps = chunk[schema.TX_DATETIME].map(pd.Timestamp.timestamp).tolist()
        for stamp, row in zip(stamps, chunk[columns].to_dict("records"), strict=True):
            for key in (schema.TX_DATETIME, schema.LABEL_AVAILABLE_AT):
                row[key] = row[key].to_pydatetime()
            yield stamp, {str(k): v for k, v in row.items()}


def _check(speedup: float) -> None:
    if not speedup > 0 or math.isnan(speedup):
        raise ConfigError(f"speedup must be > 0 (got {speedup})", field="speedup")


def _paced(
    items: Iterable[tuple[float, T]],
    speedup: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> Iterator[T]:
    """Yield each item when its simulated time (seconds) comes, `speedup` times faster."""
    origin: tuple[float, float] | None = None
    for stamp, item in items:
        if origin is None:
            origin = (stamp, clock())
        if math.isfinite(speedup):
            wait = origin[1] + (stamp - origin[0]) / speedup - clock()
            if wait > 0:
                sleep(wait)
        yield item


def stream(
    source: Source,
    speedup: float = 3600.0,
    start: date | datetime | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Event]:
    """Yield transactions in time order, each when its (sped-up) time comes."""
    _check(speedup)
    return _paced(_events(_transactions(source, start)), speedup, clock, sleep)


def _with_labels(frame: pd.DataFrame) -> Iterator[tuple[float, tuple[str, Event]]]:
    delay = 0.0
    if len(frame):
        first = frame.iloc[0]
        delay = (first[schema.LABEL_AVAILABLE_AT] - first[schema.TX_DATETIME]).total_seconds()
    transactions = ((stamp, 0, event) for stamp, event in _events(frame))
    labels = (
        (stamp + delay, 1, {key: event[key] for key in LABEL_COLUMNS})
        for stamp, event in _events(frame)
    )
    for stamp, kind, event in heapq.merge(transactions, labels, key=lambda t: (t[0], t[1])):
        yield stamp, ("transaction" if kind == 0 else "label", event)


def stream_with_labels(
    source: Source,
    speedup: float = 3600.0,
    start: date | datetime | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[str, Event]]:
    """Transactions and, `label_delay_days` later, their labels, as one paced stream of
    `("transaction", event)` and `("label", {LABEL_COLUMNS})` pairs (for feedback loops)."""
    _check(speedup)
    return _paced(_with_labels(_transactions(source, start)), speedup, clock, sleep)


async def astream(
    source: Source,
    speedup: float = 3600.0,
    start: date | datetime | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Event]:
    """`stream` as an async generator: waits with `asyncio.sleep`, never blocking the loop."""
    _check(speedup)
    origin: tuple[float, float] | None = None
    for stamp, event in _events(_transactions(source, start)):
        if origin is None:
            origin = (stamp, clock())
        wait = 0.0
        if math.isfinite(speedup):
            wait = origin[1] + (stamp - origin[0]) / speedup - clock()
        await asyncio.sleep(max(wait, 0.0))
        yield event
