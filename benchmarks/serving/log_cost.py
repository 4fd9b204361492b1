"""What the prediction log adds to a scoring call, in process (no HTTP noise).

`log_cost`: two services on the same data folder, one with the Parquet prediction
log and one without, score the same transactions one at a time; blocks of calls
alternate between them so machine noise hits both alike. The log's cost is the
ratio of the p50 latencies (target: under 10 %).

`append_cost`: what one `append` of one scoring request's record costs the hot path,
with the journal (one `os.write` per call, so a `kill -9` loses nothing answered) and
without it; blocks alternate between two logs, both flushing in the background as a
server's does. Medians, in µs.

.venv/bin/python -m benchmarks.serving.log_cost   (append cost only, ~10 s)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
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
    from mlsd.inference.observers import ScoringRequest
    from mlsd.serving.app import build_service
    from mlsd.serving.service import ServeOptions
    from mlsd.settings import Settings

    settings = Settings(home=home)
    services = {
        name: build_service(
            settings,
            ServeOptions(
                models=("fraud@champion",),
                watch_aliases=False,
                batching=BatchConfig(1, -1.0),
                cache_predictions=False,  # every call must reach the model and the log
                log_predictions=name == "log",
            ),
        )
        for name in ("log", "no_log")
    }
    for service in services.values():
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


def append_cost(folder: Path, calls: int = 20_000, block: int = 500) -> dict[str, float]:
    """Median and p99 (µs) of `append([record])` with and without the journal."""
    from mlsd.predlog import ParquetPredictionLog, PredictionRecord

    names = tuple(f"feature_{i}" for i in range(15))  # one shared tuple, as the scorer's
    rng = np.random.default_rng(3)
    rows = rng.random((calls, len(names))).tolist()
    logs = {
        "journal": ParquetPredictionLog(folder / "journal", compact_every_s=None),
        "no_journal": ParquetPredictionLog(
            folder / "no_journal", compact_every_s=None, journal=False
        ),
    }
    timings: dict[str, list[float]] = {name: [] for name in logs}
    try:
        for start in range(0, calls, block):
            for name, plog in logs.items():
                for i in range(start, min(start + block, calls)):
                    now = datetime.now(UTC)
                    record = PredictionRecord(  # as the scorer builds it: positional
                        f"r{i}", now, "fraud", "3", rows[i], 0.1, "legit", 0.5, 1.2, False,
                        names, "score", "", i, 7, 9, now,
                    )  # fmt: skip
                    began = time.perf_counter()
                    plog.append([record])
                    timings[name].append(time.perf_counter() - began)
    finally:
        for plog in logs.values():
            plog.close()
    out: dict[str, float] = {}
    for name, t in timings.items():
        us = np.array(t) * 1e6
        out[f"{name}_p50_us"] = float(np.median(us))
        out[f"{name}_p99_us"] = float(np.percentile(us, 99))
    out["journal_added_p50_us"] = out["journal_p50_us"] - out["no_journal_p50_us"]
    out["calls"] = float(calls)
    return out


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="mlsd-append-") as tmp:
        calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
        for key, value in append_cost(Path(tmp), calls).items():
            print(f"{key:24s} {value:10.2f}")
