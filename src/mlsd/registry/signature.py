"""A model's signature: the feature names, their types and order, and the output.

Serving validates every input against it, so a model never silently scores a
frame with a missing, extra, reordered or mistyped column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlsd.errors import ValidationError

NUMERIC_DTYPES = frozenset(
    {"float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"}
)


@dataclass(frozen=True)
class Signature:
    """Feature names, dtypes (one per feature, same order) and the output name."""

    feature_names: list[str] = field(default_factory=list)
    dtypes: list[str] = field(default_factory=list)
    output: str = "fraud_probability"

    def __post_init__(self) -> None:
        if not self.feature_names:
            raise ValidationError("a signature needs at least one feature", field="signature")
        if len(self.feature_names) != len(self.dtypes):
            raise ValidationError(
                "feature_names and dtypes must have the same length", field="signature"
            )
        if len(set(self.feature_names)) != len(self.feature_names):
            raise ValidationError("feature_names must be unique", field="signature")
        unknown = sorted(set(self.dtypes) - NUMERIC_DTYPES)
        if unknown:
            raise ValidationError(
                f"unsupported dtypes {unknown}; use one of {sorted(NUMERIC_DTYPES)}",
                field="signature",
            )

    @classmethod
    def from_frame(cls, frame: Any, output: str = "fraud_probability") -> Signature:
        """The signature of a pandas DataFrame's columns, in order."""
        return cls(
            feature_names=[str(c) for c in frame.columns],
            dtypes=[str(t) for t in frame.dtypes],
            output=output,
        )

    def validate(self, data: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Check a DataFrame or 2-D array against the signature; return float32 rows.

        A DataFrame must hold exactly the signature's columns (any order; they are
        reordered); an array must have one column per feature, in order. Raises
        `ValidationError(field=feature)` for missing, extra, non-numeric or
        non-finite values.
        """
        if hasattr(data, "columns"):
            return self._validate_frame(data)
        array = np.asarray(data)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2 or array.shape[1] != len(self.feature_names):
            raise ValidationError(
                f"expected rows of {len(self.feature_names)} features, got shape {array.shape}",
                field="features",
            )
        if array.dtype.kind not in "fiub":
            raise ValidationError(f"expected numbers, got dtype {array.dtype}", field="features")
        values = array.astype(np.float32, copy=False)
        finite = np.isfinite(values)
        if not finite.all():
            column = int(np.argwhere(~finite)[0][1])
            raise ValidationError(
                "non-finite value (NaN or infinity)", field=self.feature_names[column]
            )
        return values

    def _validate_frame(self, frame: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
        columns = [str(c) for c in frame.columns]
        missing = [f for f in self.feature_names if f not in columns]
        if missing:
            raise ValidationError(f"missing feature {missing[0]!r}", field=missing[0])
        extra = [c for c in columns if c not in self.feature_names]
        if extra:
            raise ValidationError(f"unexpected feature {extra[0]!r}", field=extra[0])
        for name in self.feature_names:
            dtype = frame[name].dtype
            if getattr(dtype, "kind", "O") not in "fiub":  # numpy and pandas nullable dtypes
                raise ValidationError(f"feature {name!r} must be numeric, got {dtype}", field=name)
        values = frame[self.feature_names].to_numpy(dtype=np.float64, na_value=np.nan)
        return self.validate(values)
