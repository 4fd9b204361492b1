"""One model-format module: flavors, artifact names, the ONNX contract and session."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import mlsd
from mlsd.errors import IntegrityError, ValidationError
from mlsd.inference import runtimes
from mlsd.registry import Registry, formats
from mlsd.registry.formats import (
    FLAVORS,
    NATIVE_ARTIFACT,
    ONNX_ARTIFACT,
    STORED_FLAVORS,
    check_flavor,
    check_onnx_contract,
    check_stored_flavor,
    onnx_session,
)
from mlsd.registry.loaders import load_onnx
from mlsd.registry.testing import sample_lineage, sample_rows, sample_signature
from mlsd.training.models import make_model

SRC = Path(mlsd.__file__).parent


def onnx_bytes(input_name: str = "input", n_features: int = 4) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    x = sample_rows(200)[:, :n_features]
    model = LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))
    return to_onnx(
        model,
        initial_types=[(input_name, FloatTensorType([None, n_features]))],
        options={"zipmap": False},
    ).SerializeToString()


def test_every_flavor_is_known_and_an_unknown_one_names_the_field() -> None:
    assert [check_flavor(f) for f in FLAVORS] == list(FLAVORS)
    assert set(NATIVE_ARTIFACT) == set(STORED_FLAVORS)
    assert check_stored_flavor("onnx") == "onnx"  # compressed neural variants: ONNX only
    with pytest.raises(ValidationError) as info:
        check_flavor("xgboost", field="model")
    assert info.value.field == "model"
    assert "xgboost" in info.value.message


@pytest.mark.parametrize("flavor", FLAVORS)
def test_each_flavor_writes_onnx_and_its_native_artifact(flavor: str) -> None:
    x = sample_rows(300)
    model = make_model(flavor, {"n_estimators": 5} if flavor == "lightgbm" else {})
    model.fit(x, (x[:, 0] > 0.5).astype(np.int32))
    names = [f"f{i}" for i in range(x.shape[1])]
    artifacts = model.artifacts(names)
    assert set(artifacts) == {ONNX_ARTIFACT, NATIVE_ARTIFACT[flavor]}  # type: ignore[index]
    check_onnx_contract(onnx_session(artifacts[ONNX_ARTIFACT]), n_features=len(names))


def test_garbage_onnx_is_an_integrity_error_naming_the_version(registry: Registry) -> None:
    mv = registry.register(
        "broken",
        {ONNX_ARTIFACT: b"not a model"},
        flavor="logistic",
        signature=sample_signature(),
        lineage=sample_lineage(),
        params={},
        metrics={},
    )
    with pytest.raises(IntegrityError) as info:  # was onnxruntime's InvalidProtobuf, uncaught
        load_onnx(registry, mv)
    assert mv.uri in info.value.message
    assert info.value.field == "artifacts"


def test_the_contract_names_the_missing_tensor_and_a_wrong_width() -> None:
    with pytest.raises(IntegrityError, match="must have input 'input'"):
        runtimes.OnnxRuntime(onnx_bytes(input_name="X"), 4)
    with pytest.raises(IntegrityError, match="takes 4 input columns but the signature names 5"):
        runtimes.OnnxRuntime(onnx_bytes(), 5)
    scores = runtimes.OnnxRuntime(onnx_bytes(), 4).predict(sample_rows(3)[:, :4])
    assert scores.shape == (3,)


def test_the_runtime_names_are_the_format_module_s() -> None:
    for name in ("ONNX_ARTIFACT", "LIGHTGBM_ARTIFACT", "ONNX_INPUT", "ONNX_OUTPUT"):
        assert getattr(runtimes, name) is getattr(formats, name)


LITERALS = re.compile(
    r"InferenceSession\(|[\"']model\.onnx[\"']|[\"']model\.lgb\.txt[\"']|[\"']coefficients\.json[\"']"
    r"|[\"']probabilities[\"']\]|Literal\[[\"']lightgbm[\"']"
)


def test_no_module_but_formats_spells_a_format_name() -> None:
    """Source and benchmarks name them through `mlsd.registry.formats` (tests may spell them)."""
    roots = [SRC, SRC.parent.parent / "benchmarks"]
    spelled = [
        f"{path}:{n}"
        for root in roots
        for path in sorted(root.rglob("*.py"))
        if path != SRC / "registry" / "formats.py"
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if LITERALS.search(line)
    ]
    assert spelled == []
