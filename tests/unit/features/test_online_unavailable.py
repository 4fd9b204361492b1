"""A backend that does not answer raises UnavailableError, within the read timeout."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from mlsd.errors import ConfigError, UnavailableError
from mlsd.features.online import SqliteOnlineStore, WriteBatch
from mlsd.features.online_redis import RedisOnlineStore
from mlsd.features.store import open_online
from mlsd.settings import Settings


def test_redis_down_is_unavailable() -> None:
    store = RedisOnlineStore("redis://127.0.0.1:1/0", timeout=0.2)
    started = time.perf_counter()
    with pytest.raises(UnavailableError, match="Redis"):
        store.read([("v", "x", 1)])
    assert time.perf_counter() - started < 2.0
    with pytest.raises(UnavailableError):
        store.watermark("v", "x")
    store.close()


def test_sqlite_locked_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "online.sqlite"
    store = SqliteOnlineStore(path, timeout=0.1)
    blocker = sqlite3.connect(str(path), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    batch = WriteBatch("v", "x", np.array([1]), np.array([1]), np.array([1]), np.ones((1, 1)))
    with pytest.raises(UnavailableError, match="busy"):
        store.write([batch], watermarks={"v:x": 1})
    blocker.execute("ROLLBACK")
    blocker.close()
    store.write([batch], watermarks={"v:x": 1})  # nothing half-written before, all now
    assert store.watermark("v", "x") == 1
    store.close()


def test_unknown_backend_url_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        open_online(Settings(home=tmp_path, online_store="mongodb://x"))
    assert info.value.field == "online_store"
