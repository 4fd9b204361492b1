from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsd.errors import ValidationError
from mlsd.registry import Signature

SIG = Signature(feature_names=["a", "b", "c"], dtypes=["float32", "float64", "int64"])


def test_frame_columns_are_reordered_to_the_signature() -> None:
    frame = pd.DataFrame({"c": [3], "a": [1.0], "b": [2.0]})
    assert SIG.validate(frame).tolist() == [[1.0, 2.0, 3.0]]
    assert SIG.validate(frame).dtype == np.float32


def test_arrays_need_one_column_per_feature() -> None:
    assert SIG.validate(np.ones(3)).shape == (1, 3)
    with pytest.raises(ValidationError) as info:
        SIG.validate(np.ones((2, 4)))
    assert info.value.field == "features"


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (pd.DataFrame({"a": [1.0], "b": [2.0]}), "c"),
        (pd.DataFrame({"a": [1.0], "b": [2.0], "c": [1], "d": [0]}), "d"),
        (pd.DataFrame({"a": ["x"], "b": [2.0], "c": [1]}), "a"),
        (pd.DataFrame({"a": [1.0], "b": [np.nan], "c": [1]}), "b"),
        (pd.DataFrame({"a": [1.0], "b": [2.0], "c": [np.inf]}), "c"),
    ],
)
def test_bad_frames_name_the_feature_at_fault(frame: pd.DataFrame, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        SIG.validate(frame)
    assert info.value.field == field


def test_non_numeric_arrays_are_refused() -> None:
    with pytest.raises(ValidationError):
        SIG.validate(np.array([["a", "b", "c"]]))


@pytest.mark.parametrize(
    ("names", "dtypes"),
    [(["a", "b"], ["float32"]), (["a", "a"], ["float32"] * 2), (["a"], ["string"]), ([], [])],
)
def test_inconsistent_signatures_are_refused(names: list[str], dtypes: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        Signature(feature_names=names, dtypes=dtypes)
    assert info.value.field == "signature"


def test_from_frame_reads_names_and_dtypes() -> None:
    frame = pd.DataFrame({"x": np.zeros(2, np.float32), "y": np.zeros(2, np.int64)})
    assert Signature.from_frame(frame) == Signature(
        feature_names=["x", "y"], dtypes=["float32", "int64"]
    )


def test_pandas_nullable_columns_work_and_missing_values_name_the_feature() -> None:
    frame = pd.DataFrame(
        {"a": pd.array([1.0], dtype="Float64"), "b": [2.0], "c": pd.array([3], dtype="Int64")}
    )
    assert SIG.validate(frame).tolist() == [[1.0, 2.0, 3.0]]
    frame["c"] = pd.array([None], dtype="Int64")
    with pytest.raises(ValidationError) as info:
        SIG.validate(frame)
    assert info.value.field == "c"
