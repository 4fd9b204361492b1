"""Model-only throughput: rows/s of ONNX Runtime and LightGBM native for batch sizes 1..1024."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from benchmarks.serving.fixture import transaction_rows

BATCH_SIZES = (1, 4, 16, 64, 256, 1024)


@dataclass(frozen=True)
class ModelPoint:
    """Median rows/s and per-call latency of one runtime at one batch size."""

    runtime: str
    batch_size: int
    rows_per_s: float
    call_us: float


def _rate(predict: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, seconds: float) -> float:
    predict(rows)  # warm
    calls = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        predict(rows)
        calls += 1
    return len(rows) * calls / elapsed


def model_only(
    files: dict[str, bytes], n_features: int, repeats: int = 3, seconds: float = 0.25
) -> list[ModelPoint]:
    """Each runtime at each batch size, median of `repeats` timed loops."""
    from mlsd.inference.runtimes import LightGBMRuntime, OnnxRuntime
    from mlsd.registry.formats import LIGHTGBM_ARTIFACT, ONNX_ARTIFACT

    runtimes = {
        "onnxruntime": OnnxRuntime(files[ONNX_ARTIFACT], n_features).predict,
        "lightgbm": LightGBMRuntime(files[LIGHTGBM_ARTIFACT], n_features).predict,
    }
    points: list[ModelPoint] = []
    for size in BATCH_SIZES:
        rows = transaction_rows(size)
        for name, predict in runtimes.items():
            rate = statistics.median(_rate(predict, rows, seconds) for _ in range(repeats))
            points.append(ModelPoint(name, size, rate, size / rate * 1e6))
    return points
