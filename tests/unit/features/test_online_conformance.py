"""One suite for every online store backend: the write rule, batched reads, watermarks."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.features.online import (
    EXPIRED,
    FUTURE,
    MISSING,
    PRESENT,
    OnlineStore,
    WriteBatch,
    status_of,
)


def _batch(keys: list[int], events: list[int], created: list[int], vals: list[float]) -> WriteBatch:
    values = np.array([[v, v * 2] for v in vals], dtype=np.float64).reshape(len(vals), 2)
    return WriteBatch(
        "v", "ver1", np.array(keys, np.int64), np.array(events, np.int64),
        np.array(created, np.int64), values,
    )  # fmt: skip


def _value(store: OnlineStore, key: int) -> float | None:
    rec = store.read([("v", "ver1", key)])[0]
    return None if rec is None else float(rec.values[0])


def test_write_then_batched_read_in_order(online: OnlineStore) -> None:
    online.write([_batch([1, 2, 3], [10, 20, 30], [1, 1, 1], [1.0, 2.0, 3.0])])
    other = WriteBatch("w", "x", np.array([1]), np.array([5]), np.array([1]), np.array([[9.0]]))
    online.write([other])
    recs = online.read([("v", "ver1", 3), ("w", "x", 1), ("v", "ver1", 99), ("v", "ver1", 1)])
    assert recs[2] is None
    assert [r.event_us for r in recs if r] == [30, 5, 10]
    assert recs[0] is not None
    assert list(recs[0].values) == [3.0, 6.0]
    assert recs[1] is not None
    assert list(recs[1].values) == [9.0]
    assert online.read([("v", "ver2", 1)]) == [None]  # versions are separate
    assert online.read([]) == []


def test_older_event_never_overwrites_newer(online: OnlineStore) -> None:
    online.write([_batch([1], [100], [5], [1.0])])
    online.write([_batch([1], [99], [50], [2.0])])  # late, replayed or older: ignored
    assert _value(online, 1) == 1.0
    online.write([_batch([1], [101], [1], [3.0])])  # newer event wins even if created earlier
    assert _value(online, 1) == 3.0


def test_equal_event_keeps_later_created(online: OnlineStore) -> None:
    online.write([_batch([1], [100], [5], [1.0])])
    online.write([_batch([1], [100], [4], [2.0])])
    assert _value(online, 1) == 1.0
    online.write([_batch([1], [100], [6], [3.0])])
    assert _value(online, 1) == 3.0
    online.write([_batch([1], [100], [6], [4.0])])  # full tie: the stored row stays
    assert _value(online, 1) == 3.0


def test_within_one_batch_the_rule_holds_too(online: OnlineStore) -> None:
    online.write([_batch([7, 7, 7, 7], [50, 60, 40, 60], [1, 1, 9, 2], [1.0, 2.0, 3.0, 4.0])])
    assert _value(online, 7) == 4.0


def test_watermarks_and_clear(online: OnlineStore) -> None:
    assert online.watermark("v", "ver1") is None
    online.write([_batch([1], [1], [1], [1.0])], watermarks={"v:ver1": 1234})
    assert online.watermark("v", "ver1") == 1234
    online.write([], watermarks={"v:ver1": 2000})
    assert online.watermark("v", "ver1") == 2000
    online.clear()
    assert online.watermark("v", "ver1") is None
    assert _value(online, 1) is None


def test_sources_are_written_with_watermarks_and_cleared(online: OnlineStore) -> None:
    assert online.source("v", "ver1") is None
    online.write([_batch([1], [1], [1], [1.0])], {"v:ver1": 5}, sources={"v:ver1": "/a#sha256:1"})
    assert online.source("v", "ver1") == "/a#sha256:1"
    assert online.source("v", "ver2") is None
    online.write([], sources={"v:ver1": "/b#sha256:2"})
    assert online.source("v", "ver1") == "/b#sha256:2"
    online.clear()
    assert online.source("v", "ver1") is None


def test_large_batch_roundtrip(online: OnlineStore) -> None:
    n = 2500  # more than one Lua call on Redis
    keys = list(range(n))
    online.write([_batch(keys, keys, [1] * n, [float(k) for k in keys])])
    recs = online.read([("v", "ver1", k) for k in keys])
    assert [float(r.values[0]) for r in recs if r] == [float(k) for k in keys]


@pytest.mark.parametrize(
    ("event", "now", "expected"),
    [
        (100, 110, PRESENT),
        (100, 100, PRESENT),
        (100, 111, EXPIRED),
        (100, 99, FUTURE),
        (100, 0, FUTURE),
    ],
)
def test_status_of_applies_ttl_inclusively_and_never_serves_a_later_row(
    event: int, now: int, expected: str
) -> None:
    rec = _batch([1], [event], [1], [1.0])
    from mlsd.features.online import Record

    record = Record(int(rec.event_us[0]), 1, rec.values[0])
    assert status_of(record, now, ttl_us=10) == expected
    assert status_of(None, now, ttl_us=10) == MISSING
