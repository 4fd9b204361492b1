"""What the prediction log adds to a scoring call, in process (no HTTP noise).

Two services on the same data folder, one with the Parquet prediction log and
one without, score the same transactions one at a time; blocks of calls
alternate between them so machine noise hits both alike. The log's cost is the
ratio of the p50 latencies (target: under 10 %).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchmarks.serving.fixture import N_CUSTOMERS, N_TERMINALS


def _transactions(n: int) -> list[Any]:
    from mlsd.data.transaction import Transaction
    from mlsd.serving.testing import NOW

    rng = np.random.default_rng(5)
    return [
        Transaction(
            transaction_id=i,
            customer_id=int(rng.integers(N_CUSTOMERS)),
            terminal_id=int(rng.integers(N_TERMINALS)),
            amount=float(round(rng.random() * 300, 2)),
            timestamp=NOW,
        )
        for i in range(n)
    ]


def log_cost(home: Path, calls: int = 4000, block: int = 200) -> dict[str, float]:
    """p50/p99 (µs) of one-transaction scoring calls with and without the log."""
    from mlsd.inference.batcher import BatchConfig
    from mlsd.inference.log_observer import PredictionLogObserver
    from mlsd.inference.observers import ScoringRequest
    from mlsd.serving.app import build_service
    from mlsd.serving.service import ServeOptions
    from mlsd.settings import Settings

    settings = Settings(home=home)
    options = ServeOptions(
        models=("fraud@champion",), watch_aliases=False, batching=BatchConfig(1, -1.0)
    )
    services = {"log": build_service(settings, options), "no_log": build_service(settings, options)}
    for name, service in services.items():
        if service.cache is not None:  # every call must reach the model and the log
            service.cache.close()
            service.cache = service.pipeline.cache = None
        if name == "no_log" and service.prediction_log is not None:
            for observer in service.pipeline.observers:
                if isinstance(observer, PredictionLogObserver):
                    service.pipeline.remove_observer(observer)
            service.prediction_log.close()
            service.prediction_log = None
        service.load_all()
    txs = _transactions(calls)
    timings: dict[str, list[float]] = {name: [] for name in services}

    async def run() -> None:
        for service in services.values():  # warm up
            for tx in txs[:50]:
                await service.score(ScoringRequest("warm", "score", [tx]))
        for start in range(0, calls, block):
            for name, service in services.items():
                for tx in txs[start : start + block]:
                    began = time.perf_counter()
                    await service.score(ScoringRequest(f"r{tx.transaction_id}", "score", [tx]))
                    timings[name].append(time.perf_counter() - began)

    try:
        asyncio.run(run())
    finally:
        for service in services.values():
            service.close()
    us = {name: np.array(t) * 1e6 for name, t in timings.items()}
    out = {
        f"{name}_{q}_us": float(np.percentile(v, p))
        for name, v in us.items()
        for q, p in (("p50", 50), ("p99", 99))
    }
    out["overhead_p50"] = out["log_p50_us"] / out["no_log_p50_us"] - 1.0
    out["calls"] = float(calls)
    return out
