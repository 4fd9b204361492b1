"""Precision variants of a neural ONNX graph: fp16, dynamic int8, static int8 (QDQ).

ONNX Runtime's own tools do the work (`onnxruntime.quantization`, `onnxconverter_common`):
- fp16: weights and activations in float16, inputs and outputs kept float32 (the contract);
- int8 dynamic: int8 weights, activation ranges measured on every call;
- int8 static QDQ: int8 weights and activations, activation ranges fixed from a calibration
  set (QuantizeLinear/DequantizeLinear pairs around each quantized op), per tensor or per
  output channel of each weight;
- mixed precision: static int8 except the layers that lose most when quantized, kept fp32
  (`sensitivity` measures each layer quantized alone).

Only graphs with MatMul layers are quantized; a tree ensemble (TreeEnsembleClassifier) has
no int8 kernel in ONNX Runtime, so it is refused.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlsd.errors import ValidationError
from mlsd.registry.formats import ONNX_INPUT


def matmul_layers(model_bytes: bytes) -> list[str]:
    """Names of the graph's MatMul/Gemm nodes; ValidationError when it has none."""
    import onnx

    graph = onnx.load_from_string(model_bytes).graph
    ops = [node.op_type for node in graph.node]
    names = [node.name for node in graph.node if node.op_type in ("MatMul", "Gemm")]
    if not names:
        kinds = sorted(set(ops))
        raise ValidationError(
            f"this ONNX graph has no MatMul/Gemm layer to quantize (its ops: {kinds[:6]}); "
            "int8 and fp16 variants are made from a neural model: distil one first "
            "(method distilled_mlp)",
            field="method",
        )
    return names


def fp16(model_bytes: bytes) -> bytes:
    """The graph in float16, float32 input and output kept."""
    import onnx
    from onnxconverter_common import float16

    matmul_layers(model_bytes)
    model = float16.convert_float_to_float16(onnx.load_from_string(model_bytes), keep_io_types=True)
    return bytes(model.SerializeToString())


def int8_dynamic(model_bytes: bytes, *, per_channel: bool = False) -> bytes:
    """int8 weights, activations quantized on the fly from each call's own range."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    matmul_layers(model_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        src.write_bytes(model_bytes)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=per_channel)
        return dst.read_bytes()


class _Rows:
    """ONNX Runtime's CalibrationDataReader over a matrix, in batches of 64 rows."""

    def __init__(self, values: NDArray[np.float32]) -> None:
        self._batches = iter([values[i : i + 64] for i in range(0, len(values), 64)])

    def get_next(self) -> dict[str, NDArray[np.float32]] | None:
        batch = next(self._batches, None)
        return None if batch is None else {ONNX_INPUT: np.ascontiguousarray(batch)}


def int8_static(
    model_bytes: bytes,
    calibration: NDArray[np.float32],
    *,
    per_channel: bool = False,
    keep_fp32: Sequence[str] = (),
    only: Sequence[str] | None = None,
) -> bytes:
    """QDQ int8 with activation ranges from `calibration` (MinMax), except `keep_fp32` nodes.

    `only` quantizes just those nodes (what `sensitivity` uses).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    layers = matmul_layers(model_bytes)
    if len(calibration) == 0:
        raise ValidationError("the calibration set is empty", field="calibration")
    unknown = sorted(set(keep_fp32) - set(layers))
    if unknown:
        raise ValidationError(f"no layer {unknown} in the graph (has {layers})", field="keep_fp32")
    extra: dict[str, Any] = {}
    if only is not None:
        extra["nodes_to_quantize"] = list(only)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        src.write_bytes(model_bytes)
        quantize_static(
            src,
            dst,
            _Rows(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=list(keep_fp32),
            op_types_to_quantize=["MatMul", "Gemm"],
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            **extra,
        )
        return dst.read_bytes()


def sensitivity(
    model_bytes: bytes,
    calibration: NDArray[np.float32],
    metric: Any,
    *,
    per_channel: bool = False,
) -> dict[str, float]:
    """Each MatMul layer quantized alone: `metric(graph bytes)` of the result, by layer."""
    return {
        layer: float(
            metric(int8_static(model_bytes, calibration, per_channel=per_channel, only=[layer]))
        )
        for layer in matmul_layers(model_bytes)
    }
