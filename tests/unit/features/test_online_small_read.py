"""The SQLite online store's point-query path for a few lookups agrees with its batch path."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from mlsd.features.online import SMALL_READ, Lookup, Record, SqliteOnlineStore, WriteBatch


def _batch(view: str, version: str, keys: list[int], rng: np.random.Generator) -> WriteBatch:
    n = len(keys)
    return WriteBatch(
        view,
        version,
        np.array(keys, dtype=np.int64),
        rng.integers(0, 10**12, n).astype(np.int64),
        rng.integers(0, 10**12, n).astype(np.int64),
        rng.normal(size=(n, 3)),
    )


def _same(a: list[Record | None], b: list[Record | None]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if (x is None) != (y is None):
            return False
        if x is not None and y is not None:
            if (x.event_us, x.created_us) != (y.event_us, y.created_us):
                return False
            if x.values.tobytes() != y.values.tobytes():
                return False
    return True


def test_small_reads_match_the_batch_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    store = SqliteOnlineStore(tmp_path / "online.sqlite")
    try:
        store.write([_batch("a", "v1", list(range(0, 40, 2)), rng)])
        store.write([_batch("b", "v2", list(range(0, 30, 3)), rng)])
        pick = random.Random(5)
        for _ in range(200):
            n = pick.randint(1, SMALL_READ)
            lookups: list[Lookup] = [
                (pick.choice(["a", "b", "c"]), pick.choice(["v1", "v2"]), pick.randint(-2, 45))
                for _ in range(n)
            ]
            # the batch path: the same lookups padded past SMALL_READ, then cut back
            padded = lookups + [("a", "v1", 0)] * (SMALL_READ + 1 - n)
            small = store.read(lookups)
            assert _same(small, store.read(padded)[:n])
    finally:
        store.close()


def test_a_small_read_finds_each_stored_row(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    store = SqliteOnlineStore(tmp_path / "online.sqlite")
    try:
        batch = _batch("a", "v1", [7, 9], rng)
        store.write([batch])
        got = store.read([("a", "v1", 9), ("a", "v1", 8), ("a", "v1", 7), ("a", "v1", 9)])
        assert got[1] is None
        first, third, fourth = got[0], got[2], got[3]
        assert first is not None
        assert third is not None
        assert fourth is not None
        assert first.event_us == int(batch.event_us[1])
        assert third.values.tolist() == batch.values[0].tolist()
        assert fourth.values.tolist() == first.values.tolist()
    finally:
        store.close()
