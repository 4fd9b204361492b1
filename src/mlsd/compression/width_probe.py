"""When does int8 pay? The same MLP graph and quantizers at growing layer widths.

The fraud MLP is tiny (15 -> 32 -> 16 -> 1): int8 loses there. To show where it starts to
win, MLPs of the same shape with hidden width 32, 256 and 1,024 (random weights: only speed
is measured) go through the same graph builder, the same ONNX Runtime quantizers and the
same serving runtime, at batch 1 and 1,024.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mlsd.compression import quantize
from mlsd.compression.methods import quiet
from mlsd.compression.neural import Mlp, mlp_onnx
from mlsd.inference.runtimes import OnnxRuntime

WIDTHS = (32, 256, 1024)


@dataclass(frozen=True)
class WidthPoint:
    """rows/s of one precision at one width and batch size."""

    width: int
    precision: str
    batch: int
    rows_per_s: float


def _graph(width: int, inputs: int, rng: np.random.Generator) -> bytes:
    shapes = [(inputs, width), (width, width), (width, 1)]
    weights = [(rng.normal(size=s) / np.sqrt(s[0])).astype(np.float32) for s in shapes]
    biases = [np.zeros(s[1], dtype=np.float32) for s in shapes]
    ones = np.ones(inputs, dtype=np.float32)
    return mlp_onnx(Mlp(np.zeros(inputs, dtype=np.float32), ones, weights, biases))


def probe(seconds: float = 0.3, inputs: int = 15, seed: int = 0) -> list[WidthPoint]:
    """rows/s of fp32, int8 dynamic and int8 static at each width, batch 1 and 1,024."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(1024, inputs)).astype(np.float32)
    out = []
    for width in WIDTHS:
        fp32 = _graph(width, inputs, rng)
        with quiet():
            graphs = {
                "fp32": fp32,
                "int8 dynamic": quantize.int8_dynamic(fp32),
                "int8 static": quantize.int8_static(fp32, X),
            }
        for precision, graph in graphs.items():
            runtime = OnnxRuntime(graph, inputs)
            for batch in (1, 1024):
                rows = X[:batch]
                runtime.predict(rows)
                calls, began = 0, time.perf_counter()
                while calls < 2 or time.perf_counter() - began < seconds:
                    runtime.predict(rows)
                    calls += 1
                rate = calls * batch / (time.perf_counter() - began)
                out.append(WidthPoint(width, precision, batch, rate))
    return out


def summary(points: list[WidthPoint]) -> str:
    """`int8 dynamic / fp32 rows/s at batch 1,024: 0.7× at width 32, ...`."""
    rate = {(p.width, p.precision, p.batch): p.rows_per_s for p in points}
    parts = []
    for batch in (1, 1024):
        ratios = ", ".join(
            f"{rate[(w, 'int8 dynamic', batch)] / rate[(w, 'fp32', batch)]:.1f}× / "
            f"{rate[(w, 'int8 static', batch)] / rate[(w, 'fp32', batch)]:.1f}× at width {w}"
            for w in WIDTHS
        )
        parts.append(f"batch {batch:,}: {ratios}")
    return "int8 dynamic / static rows/s over fp32, " + "; ".join(parts)
