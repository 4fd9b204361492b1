"""The micro-batcher's throughput / latency curve over max_delay_ms and max_batch_size.

In process: `clients` concurrent coroutines each score one row at a time through
one `MicroBatcher` in front of the ONNX model, for a fixed time per setting.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import numpy as np
from benchmarks.serving.fixture import transaction_rows

#: (max_batch_size, max_delay_ms); delay -1 = batching off.
SETTINGS = (
    (1, -1.0),
    (16, 0.0),
    (64, 0.0),
    (16, 1.0),
    (64, 1.0),
    (64, 2.0),
    (256, 2.0),
    (256, 5.0),
)


@dataclass(frozen=True)
class BatchPoint:
    """One setting: rows/s, per-request p50/p99 (ms), mean rows per model call."""

    max_batch_size: int
    max_delay_ms: float
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    mean_batch: float


async def _point(
    predict: object, size: int, delay: float, clients: int, seconds: float
) -> BatchPoint:
    from mlsd.inference.batcher import BatchConfig, MicroBatcher

    fn = predict  # (n, k) -> scores

    def call(values: np.ndarray) -> tuple[np.ndarray, None]:
        return fn(values), None  # type: ignore[operator]

    batcher: MicroBatcher[None] = MicroBatcher(call, BatchConfig(size, delay))
    rows = transaction_rows(clients)
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def client(i: int) -> None:
        # closed loop: a request is issued when the previous one completes; its latency runs
        # from then, so the wait for the event loop (queueing) is counted, as in a server
        row = rows[i : i + 1]
        issued = time.perf_counter()
        while issued < stop:
            await asyncio.sleep(0)  # the request arrives through the event loop
            await batcher.submit(row)
            done = time.perf_counter()
            latencies.append(done - issued)
            issued = done

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return BatchPoint(
        size,
        delay,
        len(latencies) / elapsed,
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        batcher.rows / max(batcher.batches, 1),
    )


def batcher_curve(
    model_onnx: bytes, n_features: int, clients: int = 64, seconds: float = 0.5, repeats: int = 3
) -> list[BatchPoint]:
    """Every setting in SETTINGS, the median run (by rows/s) of `repeats`."""
    from mlsd.inference.runtimes import OnnxRuntime

    predict = OnnxRuntime(model_onnx, n_features).predict
    points: list[BatchPoint] = []
    for size, delay in SETTINGS:
        runs = [asyncio.run(_point(predict, size, delay, clients, seconds)) for _ in range(repeats)]
        median_rate = statistics.median(r.rows_per_s for r in runs)
        points.append(min(runs, key=lambda r: abs(r.rows_per_s - median_rate)))
    return points
