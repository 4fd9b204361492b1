"""Benchmark online feature reads: p50 / p99 for 1 and 100 entities, SQLite and Redis.

    .venv/bin/python -m benchmarks.features.online_read [--rounds 3] [--redis URL]

A 30-day dataset with the handbook's 5,000 customers and 10,000 terminals is built and
materialized into each backend. Timed: `FeatureStore.online_vectors` for the 15 handbook
features (what serving calls per request: 2 views, TTL, statuses, float32 matrix), next
to the raw backend read of the same rows in the same run (SQLite SELECT by primary key /
Redis MGET): the ratio is the feature store's own overhead. Percentiles per round, then
the median over rounds.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from benchmarks.features.common import handbook_dataset, median
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

CALLS = {1: 2000, 100: 300}


def percentiles(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    """(p50, p99) in milliseconds over `calls` calls, after a warm-up."""
    for _ in range(min(50, calls)):
        fn()
    samples = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        fn()
        samples[i] = (time.perf_counter() - start) * 1e3
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 99))


def raw_reader(store: Any, lookups: list[tuple[str, str, int]]) -> Callable[[], Any]:
    """The backend's own read of the same rows, without the feature store around it."""
    online = store.online
    if hasattr(online, "_client"):
        client = online._client
        keys = [online._key(v, ver, k) for v, ver, k in lookups]
        return lambda: client.mget(keys)
    conn: sqlite3.Connection = online._conn
    view_keys: dict[tuple[str, str], list[int]] = {}
    for v, ver, k in lookups:
        view_keys.setdefault((v, ver), []).append(k)
    sql = " UNION ALL ".join(
        f"SELECT vals FROM online_features WHERE view = ? AND version = ? "
        f"AND entity IN ({','.join('?' * len(keys))})"
        for keys in view_keys.values()
    )
    params = [p for (v, ver), keys in view_keys.items() for p in (v, ver, *keys)]
    return lambda: conn.execute(sql, params).fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="'' to skip")
    parser.add_argument("--dataset", type=Path, default=None)
    args = parser.parse_args()
    from mlsd.features import HANDBOOK_FEATURES
    from mlsd.features.store import FeatureStore
    from mlsd.settings import Settings

    console = Console(width=120)
    rows: list[tuple[str, int, float, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp_name, Progress(console=console) as bar:
        tmp = Path(tmp_name)
        task = bar.add_task("simulating 30 days", total=None)
        dataset = args.dataset or handbook_dataset(tmp / "ds", days=30)
        import pandas as pd

        tx = pd.read_parquet(dataset / "transactions").sample(1000, random_state=0)
        reqs = tx[["CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_DATETIME"]].to_dict("records")
        backends = [("sqlite", Settings(home=tmp / "home"))]
        if args.redis:
            backends.append(("redis", Settings(home=tmp / "home", online_store=args.redis)))
        for name, settings in backends:
            prefix = f"mlsdbench:{uuid.uuid4().hex[:8]}:"
            store = FeatureStore.open(settings.model_copy(update={"redis_prefix": prefix}))
            try:
                store.apply()
                bar.update(task, description=f"{name}: build + materialize")
                if name == "sqlite":
                    store.build(dataset)
                store.materialize()
                for n in (1, 100):
                    bar.update(task, description=f"{name}: reads of {n}")
                    feats = list(HANDBOOK_FEATURES)
                    fs50, fs99, raw50, raw99 = [], [], [], []
                    for r in range(args.rounds):
                        batch = reqs[r * n % 900 : r * n % 900 + n]
                        call = partial(store.online_vectors, batch, feats)
                        p50, p99 = percentiles(call, CALLS[n])
                        fs50.append(p50)
                        fs99.append(p99)
                        plan = store.resolve(feats)
                        lookups = [
                            (p.view.name, p.version, int(q[p.view.entity.join_key]))
                            for q in batch
                            for p in plan
                            if p.view.entity
                        ]
                        p50, p99 = percentiles(raw_reader(store, lookups), CALLS[n])
                        raw50.append(p50)
                        raw99.append(p99)
                    rows.append((name, n, median(fs50), median(fs99), median(raw50), median(raw99)))
            finally:
                if name == "redis":
                    store.online.clear()
                store.close()
    table = Table(title=f"online reads, ms, median of {args.rounds} rounds")
    for col in ("backend", "entities", "p50", "p99", "raw p50", "raw p99", "p50 ratio"):
        table.add_column(col)
    for name, n, a, b, c, d in rows:
        table.add_row(name, str(n), f"{a:.3f}", f"{b:.3f}", f"{c:.3f}", f"{d:.3f}", f"{a / c:.1f}x")
    console.print(table)


if __name__ == "__main__":
    main()
