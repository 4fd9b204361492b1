"""A compressed variant: its artifacts, how it was made, and what it was made from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlsd.registry.formats import LIGHTGBM_ARTIFACT, ONNX_ARTIFACT, StoredFlavor
from mlsd.training.models import FloatArray, Scorer, onnx_scorer


@dataclass(frozen=True)
class Calibration:
    """The rows a static quantization read its ranges from: enough to say and to check it."""

    rows: int
    frauds: int
    sha256: str
    how: str

    def to_dict(self) -> dict[str, Any]:
        """As recorded in the lineage."""
        return {"rows": self.rows, "frauds": self.frauds, "sha256": self.sha256, "how": self.how}


def calibration_hash(values: NDArray[np.float32], labels: NDArray[np.int32]) -> str:
    """sha256 over the calibration matrix (float32, model order) and its labels."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int8).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Variant:
    """One candidate: a name, the method and parameters that made it, and its files.

    `parent` names the variant it was derived from inside this run (`source` for the
    registered model itself): int8 comes from the fp32 MLP, which is a student of the source.
    """

    name: str
    method: str
    params: dict[str, Any]
    flavor: StoredFlavor
    artifacts: dict[str, bytes]
    parent: str = "source"
    calibration: Calibration | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def onnx(self) -> bytes:
        """The serving graph."""
        return self.artifacts[ONNX_ARTIFACT]

    @property
    def lightgbm(self) -> bytes | None:
        """The LightGBM model text, for tree variants."""
        return self.artifacts.get(LIGHTGBM_ARTIFACT)

    def scorer(self) -> Scorer:
        """Scores as served: the ONNX graph in serving's session."""
        return onnx_scorer(self.onnx)

    def score(self, X: NDArray[np.float32]) -> FloatArray:
        """Fraud probability of each row of `X` (the ONNX graph, as served)."""
        return self.scorer()(X)
