"""The stock Triton HTTP client, unchanged, against a real server: health, metadata, inference
(JSON and its default binary tensor data), and errors whose message it shows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from mlsd.serving.app import create_app
from mlsd.serving.server import BackgroundServer
from mlsd.serving.service import Service
from mlsd.serving.testing import FEATURES
from mlsd.settings import Settings

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture
def triton(settings: Settings, service: Service) -> Iterator[Any]:
    """A tritonclient on a real uvicorn server on a free port."""
    with BackgroundServer(create_app(settings, service=service)) as server:
        client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
        yield client
        client.close()


def _rows(n: int) -> np.ndarray:
    return np.random.default_rng(n).normal(size=(n, len(FEATURES))).astype(np.float32)


def _input(values: np.ndarray, *, binary: bool, name: str = "input") -> Any:
    tensor = httpclient.InferInput(name, list(values.shape), "FP32")
    tensor.set_data_from_numpy(values, binary_data=binary)
    return tensor


def test_health_and_metadata(triton: Any) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("fraud")
    assert triton.is_model_ready("fraud", "1")
    assert not triton.is_model_ready("nope")
    server = triton.get_server_metadata()
    assert server["name"] == "mlsd"
    assert "binary_tensor_data" in server["extensions"]
    meta = triton.get_model_metadata("fraud")
    (tensor,) = meta["inputs"]
    assert (tensor["name"], tensor["datatype"], tensor["shape"]) == ("input", "FP32", [-1, 15])
    assert tensor["parameters"]["feature_names"].split(",") == FEATURES
    assert meta["outputs"][0]["name"] == "probabilities"
    assert triton.get_model_metadata("fraud", "1")["versions"] == ["1"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary-default", "json"])
def test_infer_as_the_client_sends_it(triton: Any, service: Service, binary: bool) -> None:
    rows = _rows(3)
    expected = service.host.get("fraud", version=1).predict(rows)
    result = triton.infer("fraud", [_input(rows, binary=binary)], request_id="t1")
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (3, 2)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities[:, 1], expected, rtol=1e-5)
    assert result.get_response()["model_version"] == "1"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_with_requested_outputs_and_a_version(triton: Any, binary: bool) -> None:
    rows = _rows(2)
    outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary)]
    result = triton.infer("fraud", [_input(rows, binary=True)], model_version="1", outputs=outputs)
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_infer_one_tensor_per_feature(triton: Any) -> None:
    rows = _rows(2)
    inputs = [
        _input(np.ascontiguousarray(rows[:, j]), binary=j % 2 == 0, name=f)
        for j, f in enumerate(FEATURES)
    ]
    by_column = triton.infer("fraud", inputs).as_numpy("probabilities")
    whole = triton.infer("fraud", [_input(rows, binary=True)]).as_numpy("probabilities")
    np.testing.assert_array_equal(by_column, whole)


def test_errors_show_the_servers_message(triton: Any) -> None:
    with pytest.raises(InferenceServerException) as unknown:
        triton.infer("nope", [_input(_rows(1), binary=True)])
    assert unknown.value.status() == "404"
    assert "nope" in unknown.value.message()
    with pytest.raises(InferenceServerException) as shape:
        triton.infer("fraud", [_input(np.zeros((1, 14), np.float32), binary=True)])
    assert shape.value.status() == "422"
    assert "must have shape [n, 15]" in shape.value.message()
    with pytest.raises(InferenceServerException) as metadata:
        triton.get_model_metadata("nope")
    assert "nope" in metadata.value.message()


def test_out_of_range_values_are_refused_naming_the_input(triton: Any) -> None:
    huge = np.zeros((1, 15), np.float64)
    huge[0, 3] = 1e39  # a finite FP64, infinite as the model's float32
    tensor = httpclient.InferInput("input", [1, 15], "FP64")
    tensor.set_data_from_numpy(huge, binary_data=True)
    with pytest.raises(InferenceServerException) as refused:
        triton.infer("fraud", [tensor])
    assert "'input'" in refused.value.message()
    assert "float32" in refused.value.message()
    nan = np.zeros((1, 15), np.float32)
    nan[0, 0] = np.nan
    with pytest.raises(InferenceServerException, match="NaN"):
        triton.infer("fraud", [_input(nan, binary=True)])


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests(triton: Any, algorithm: str) -> None:
    rows = _rows(4)
    plain = triton.infer("fraud", [_input(rows, binary=True)]).as_numpy("probabilities")
    packed = triton.infer(
        "fraud", [_input(rows, binary=True)], request_compression_algorithm=algorithm
    ).as_numpy("probabilities")
    np.testing.assert_array_equal(packed, plain)
