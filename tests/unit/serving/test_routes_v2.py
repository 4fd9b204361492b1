"""Open Inference Protocol V2: health, metadata, readiness and tensor inference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlsd.serving.testing import FEATURES


def _rows(n: int) -> list[list[float]]:
    rng = np.random.default_rng(n)
    return rng.normal(size=(n, len(FEATURES))).round(3).tolist()


def test_health_and_server_metadata(client: Any) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "mlsd"


def test_model_metadata_describes_the_tensors(client: Any) -> None:
    meta = client.get("/v2/models/fraud").json()
    assert meta["name"] == "fraud"
    assert meta["versions"] == ["1"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [
        {
            "name": "input",
            "datatype": "FP32",
            "shape": [-1, 15],
            "parameters": {"feature_names": ",".join(FEATURES)},  # the columns, in order
        }
    ]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]
    assert client.get("/v2/models/fraud/versions/1").json()["name"] == "fraud"
    assert client.get("/v2/models/fraud/ready").status_code == 200
    assert client.get("/v2/models/fraud/versions/1/ready").status_code == 200
    assert client.get("/v2/models/fraud/versions/2/ready").status_code == 404
    assert client.get("/v2/models/other").status_code == 404


def test_infer_flat_and_nested_data_agree_with_the_model(client: Any, service: Any) -> None:
    rows = _rows(3)
    flat = [v for row in rows for v in row]
    body = {"id": "r1", "inputs": [{"name": "input", "shape": [3, 15], "datatype": "FP32"}]}
    a = client.post("/v2/models/fraud/infer", json={**body, "inputs": [
        {**body["inputs"][0], "data": flat}]})  # fmt: skip
    b = client.post("/v2/models/fraud/versions/1/infer", json={**body, "inputs": [
        {**body["inputs"][0], "data": rows}]})  # fmt: skip
    assert a.status_code == b.status_code == 200, a.text
    out = a.json()
    assert (out["model_name"], out["model_version"], out["id"]) == ("fraud", "1", "r1")
    (tensor,) = out["outputs"]
    assert (tensor["name"], tensor["shape"], tensor["datatype"]) == (
        "probabilities",
        [3, 2],
        "FP32",
    )
    probs = np.array(tensor["data"]).reshape(3, 2)
    expected = service.host.get("fraud", version=1).predict(np.array(rows, dtype=np.float32))
    np.testing.assert_allclose(probs[:, 1], expected, rtol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert b.json()["outputs"] == out["outputs"]


def test_infer_by_feature_columns(client: Any) -> None:
    rows = np.array(_rows(2))
    inputs = [
        {"name": f, "shape": [2], "datatype": "FP64", "data": rows[:, j].tolist()}
        for j, f in enumerate(FEATURES)
    ]
    by_column = client.post("/v2/models/fraud/infer", json={"inputs": inputs})
    whole = client.post(
        "/v2/models/fraud/infer",
        json={"inputs": [{"name": "input", "shape": [2, 15], "datatype": "FP32",
                          "data": rows.tolist()}]},
    )  # fmt: skip
    assert by_column.status_code == 200, by_column.text
    assert by_column.json()["outputs"] == whole.json()["outputs"]


@pytest.mark.parametrize(
    ("tensor", "field"),
    [
        ({"shape": [2, 15], "data": [0.0] * 15}, "inputs.0"),  # data do not fill the shape
        ({"shape": [1, 14], "data": [0.0] * 14}, "inputs.shape"),
        ({"shape": [1, 15], "data": ["x"] * 15}, "inputs.0"),
        ({"shape": [1, 15], "data": [0.0] * 15, "datatype": "BYTES"}, "inputs"),
        ({"shape": [1, 15], "data": [0.0] * 15, "name": "other"}, "inputs"),
        ({"shape": [1, 15], "data": [0.0] * 15, "datatype": "FP128"}, "inputs.0.datatype"),
    ],
)
def test_bad_tensors_are_422(client: Any, tensor: dict[str, Any], field: str) -> None:
    body = {"inputs": [{"name": "input", "datatype": "FP32", **tensor}]}
    response = client.post("/v2/models/fraud/infer", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_non_finite_tensor_values_are_422(client: Any) -> None:
    text = (
        '{"inputs":[{"name":"input","shape":[1,15],"datatype":"FP32","data":['
        + ",".join(["NaN"] + ["0"] * 14)
        + "]}]}"
    )
    response = client.post(
        "/v2/models/fraud/infer", content=text, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text


def test_unknown_output_unknown_model_and_version(client: Any) -> None:
    tensor = {"name": "input", "shape": [1, 15], "datatype": "FP32", "data": [0.0] * 15}
    bad_output = client.post(
        "/v2/models/fraud/infer", json={"inputs": [tensor], "outputs": [{"name": "nope"}]}
    )
    assert bad_output.status_code == 422
    assert bad_output.json()["field"] == "outputs"
    assert client.post("/v2/models/x/infer", json={"inputs": [tensor]}).status_code == 404
    missing = client.post("/v2/models/fraud/versions/9/infer", json={"inputs": [tensor]})
    assert missing.status_code == 404
