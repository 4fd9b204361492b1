"""Per-operation cost of the serving components on each backend that answers here.

- cache: one `get_many` + `put_many` of 1 and 64 rows, in process and on Redis;
- prediction log: records/s through `append` + `flush`, Parquet and PostgreSQL;
- breaker: the cost of `call` around a no-op.
"""

from __future__ import annotations

import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

REDIS_URL = "redis://127.0.0.1:6379/15"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "", parsed.port or 0), 1.0):
            return True
    except OSError:
        return False


def _median_us(fn: Callable[[], object], n: int, repeats: int = 3) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(runs)


def cache_costs(n: int = 2000) -> list[dict[str, Any]]:
    """µs per lookup + store, by backend and rows per request."""
    from mlsd.inference.cache import MemoryCache, PredictionCache

    backends: dict[str, Callable[[], PredictionCache]] = {
        "memory": lambda: MemoryCache(100_000, 300)
    }
    prefix = f"mlsdbench:{uuid.uuid4().hex[:8]}:"
    if _answers(REDIS_URL):
        from mlsd.inference.cache.redis import RedisCache

        # a generous timeout: measure Redis, not the 50 ms serving timeout on a busy machine
        backends["redis"] = lambda: RedisCache(REDIS_URL, 300, prefix=prefix, socket_timeout_s=1.0)
    out = []
    for name, make in backends.items():
        cache = make()
        try:
            for rows in (1, 64):
                us = _cache_request_us(cache, rows, n)
                errors = cache.stats().errors
                out.append({"backend": name, "rows": rows, "us_per_request": us, "errors": errors})
            cache.clear_model("bench")
        finally:
            cache.close()
    return out


def _cache_request_us(cache: Any, rows: int, n: int) -> float:
    """µs for one request's lookup + store of `rows` fresh rows (all misses, as in scoring)."""
    from mlsd.inference.cache import hash_rows

    values = np.random.default_rng(rows).random((rows * n, 15))
    hashes = hash_rows(values)
    scores = values[:, 0].tolist()
    position = 0

    def step() -> None:
        nonlocal position
        part = slice(position, position + rows)
        cache.get_many("bench/1", hashes[part])
        cache.put_many("bench/1", hashes[part], scores[part])
        position = (position + rows) % len(hashes)

    return _median_us(step, n // 4)


def log_throughput(n: int = 20_000) -> list[dict[str, Any]]:
    """Records/s through append + flush (one flush per 5 000), by backend."""
    from mlsd.predlog import BufferedLog, ParquetPredictionLog, PredictionRecord

    names = [f"F{i}" for i in range(15)]
    now = datetime.now(UTC)
    records = [
        PredictionRecord(f"r{i}", now, "fraud", "1", [float(i % 97)] * 15, 0.1, "legit", 0.5, 1.0,
                         feature_names=names)
        for i in range(n)
    ]  # fmt: skip
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        backends: dict[str, Callable[[], BufferedLog]] = {
            "parquet": lambda: ParquetPredictionLog(Path(tmp), flush_seconds=60, flush_records=n)
        }
        schema = f"mlsdbench_{uuid.uuid4().hex[:8]}"
        if _answers(POSTGRES_URL):
            import psycopg

            from mlsd.predlog.postgres import PostgresPredictionLog

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            backends["postgres"] = lambda: PostgresPredictionLog(
                POSTGRES_URL, schema, flush_seconds=60, flush_records=n
            )
        try:
            for name, make in backends.items():
                plog = make()
                started = time.perf_counter()
                for start in range(0, n, 5000):
                    plog.append(records[start : start + 5000])
                    plog.flush()
                elapsed = time.perf_counter() - started
                plog.close()
                out.append({"backend": name, "records_per_s": n / elapsed})
        finally:
            if "postgres" in backends:
                with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return out


def breaker_cost(n: int = 100_000) -> dict[str, float]:
    """µs added by `CircuitBreaker.call` around a no-op."""
    from mlsd.inference.breaker import CircuitBreaker

    breaker = CircuitBreaker()

    def noop() -> int:
        return 1

    direct = _median_us(noop, n)
    through = _median_us(lambda: breaker.call(noop), n)
    return {"direct_us": direct, "through_breaker_us": through, "added_us": through - direct}


def components() -> dict[str, Any]:
    """Every component figure."""
    return {"cache": cache_costs(), "log": log_throughput(), "breaker": breaker_cost()}
