"""Compression: smaller, faster variants of a registered fraud model, measured and registered.

Tree variants of a LightGBM source (fewer trees, smaller trees, a pruned ensemble),
distilled students of any source (a small GBM and an MLP fitted to the teacher's scores on
the training days and the unlabelled delay days), and the MLP's ONNX graph in fp32, fp16,
dynamic int8 and calibrated static int8 (per-tensor, per-channel, mixed precision).
`compress` measures every variant on the source's own handbook test block (AUC, AP,
CP@100), times it in the serving runtimes, and registers it with its lineage (parent
version, method, parameters, calibration set hash); `report` writes the table and the
Pareto plot.
"""

from mlsd.compression.blocks import Blocks, load_blocks
from mlsd.compression.variant import Variant

__all__ = ["Blocks", "Variant", "load_blocks"]
