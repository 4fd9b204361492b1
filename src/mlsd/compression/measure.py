"""How each variant serves: accuracy on the test block, latency, throughput, size, memory, cost.

Every figure comes from the serving path's own runtimes (`mlsd.inference.runtimes`: ONNX
Runtime with one intra-op and one inter-op thread, LightGBM native on one thread):

- latency: one row per call, p50 and p99 over `calls` calls (after warm-up);
- throughput: rows/s on ready batches of 64, 256 and 1,024 rows (median of 3 timed loops);
- CPU cost: process CPU-seconds per row in the 1,024-row loops, priced at `usd_per_core_hour`
  (cost per million = CPU-s per row x 1e6 / 3600 x $/core-hour);
- size: the bytes of the artifact the runtime loads;
- resident memory: growth of this process's RSS per copy when `copies` runtimes are built
  and each scores one 1,024-row batch, divided by `copies` (one copy of a small model is
  below the page and allocator granularity; a first throwaway session loads the libraries
  before any is measured).
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlsd.compression.variant import Variant
from mlsd.inference.runtimes import LightGBMRuntime, OnnxRuntime, Runtime
from mlsd.training.metrics import evaluate

BATCHES = (64, 256, 1024)
USD_PER_CORE_HOUR = 0.05
"""The default price of one CPU core for an hour (about an on-demand cloud vCPU, 2026)."""


@dataclass(frozen=True)
class Budget:
    """How long to time: single-row calls, and seconds per batch size."""

    calls: int = 2000
    seconds: float = 0.6
    copies: int = 20
    min_calls: int = 2

    @classmethod
    def quick(cls) -> Budget:
        """Seconds for the whole table."""
        return cls(calls=60, seconds=0.015, copies=1, min_calls=1)


@dataclass(frozen=True)
class Measured:
    """One variant in one runtime."""

    variant: str
    method: str
    runtime: str
    family: str
    """`tree` (a LightGBM model) or `neural` (an ONNX-only MLP)."""
    auc_roc: float
    average_precision: float
    card_precision_at_100: float
    p50_us: float
    p99_us: float
    rows_per_s: dict[int, float]
    cpu_us_per_row: float
    size_bytes: int
    rss_mb: float
    usd_per_million: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data for results.json."""
        out = asdict(self)
        out["rows_per_s"] = {str(k): v for k, v in self.rows_per_s.items()}
        return out


def _rss_bytes() -> int:
    """This process's resident set size (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            import os

            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def runtimes_of(variant: Variant, width: int, copies: int = 1) -> list[tuple[Runtime, int, float]]:
    """(runtime, size on disk, RSS growth MB per copy) for ONNX Runtime and, for trees,
    LightGBM."""
    made: list[tuple[Runtime, int, float]] = []
    sources: list[tuple[type[OnnxRuntime] | type[LightGBMRuntime], bytes]] = [
        (OnnxRuntime, variant.onnx)
    ]
    if variant.lightgbm is not None:
        sources.append((LightGBMRuntime, variant.lightgbm))
    batch = np.zeros((1024, width), dtype=np.float32)
    for kind, data in sources:
        gc.collect()
        before = _rss_bytes()
        kept = [kind(data, width) for _ in range(copies)]
        for runtime in kept:
            runtime.predict(batch)
        grown = (_rss_bytes() - before) / 2**20 / copies
        made.append((kept[0], len(data), max(grown, 0.0)))
        del kept[1:]
    return made


def warm_libraries(variant: Variant, width: int) -> None:
    """Build and drop one runtime of each kind, so library loading is not billed to a model."""
    runtimes_of(variant, width)


def _latency(runtime: Runtime, row: NDArray[np.float32], calls: int) -> tuple[float, float]:
    for _ in range(20):
        runtime.predict(row)
    times = np.empty(calls)
    for i in range(calls):
        began = time.perf_counter()
        runtime.predict(row)
        times[i] = time.perf_counter() - began
    us = times * 1e6
    return float(np.percentile(us, 50)), float(np.percentile(us, 99))


def _throughput(
    runtime: Runtime, values: NDArray[np.float32], seconds: float, min_calls: int = 2
) -> tuple[float, float]:
    """(rows/s median of 3 loops, CPU-seconds per row over all loops)."""
    runtime.predict(values)
    rates, rows, cpu = [], 0, 0.0
    for _ in range(3):
        calls, began, cpu_began = 0, time.perf_counter(), time.process_time()
        while calls < min_calls or time.perf_counter() - began < seconds / 3:
            runtime.predict(values)
            calls += 1
        rates.append(calls * len(values) / (time.perf_counter() - began))
        cpu += time.process_time() - cpu_began
        rows += calls * len(values)
    return statistics.median(rates), cpu / rows


def measure(
    variant: Variant,
    X_test: NDArray[np.float32],
    test: Any,
    *,
    budget: Budget,
    usd_per_core_hour: float = USD_PER_CORE_HOUR,
    seed: int = 0,
) -> list[Measured]:
    """Accuracy on the test block (ONNX, as served) and timings in each runtime."""
    width = X_test.shape[1]
    made = runtimes_of(variant, width, budget.copies)
    # the ONNX runtime (first) scores as served: the same session `Variant.score` would build
    metrics = evaluate(test, made[0][0].predict(X_test))
    rng = np.random.default_rng(seed)
    rows = X_test[rng.integers(0, len(X_test), size=max(BATCHES))]
    out = []
    for runtime, size, rss in made:
        p50, p99 = _latency(runtime, rows[:1], budget.calls)
        rates: dict[int, float] = {}
        cpu_per_row = float("nan")
        for batch in BATCHES:
            rates[batch], cpu = _throughput(runtime, rows[:batch], budget.seconds, budget.min_calls)
            if batch == max(BATCHES):
                cpu_per_row = cpu
        out.append(
            Measured(
                variant=variant.name,
                method=variant.method,
                runtime=runtime.name,
                family="tree" if variant.lightgbm is not None else "neural",
                auc_roc=metrics["auc_roc"],
                average_precision=metrics["average_precision"],
                card_precision_at_100=metrics["card_precision_at_100"],
                p50_us=p50,
                p99_us=p99,
                rows_per_s=rates,
                cpu_us_per_row=cpu_per_row * 1e6,
                size_bytes=size,
                rss_mb=rss,
                usd_per_million=cpu_per_row * 1e6 / 3600.0 * usd_per_core_hour,
            )
        )
    return out
