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


def _tensor(datatype: str, values: list[Any], name: str = "input") -> dict[str, Any]:
    return {"name": name, "shape": [1, 15], "datatype": datatype, "data": values}


@pytest.mark.parametrize(
    ("datatype", "bad"),
    [
        ("FP32", 1e39),  # finite in JSON, infinite as float32
        ("FP32", -1e308),
        ("FP64", 1e300),  # a fine FP64, but the model takes float32
        ("FP16", 70000.0),
        ("INT8", 128),
        ("INT8", -129),
        ("UINT8", -1),
        ("UINT8", 256),
        ("INT32", 2**31),
        ("UINT64", 2**64),
        ("INT64", 1.5),  # not an integer
        ("FP32", True),  # a boolean is no number
        ("BOOL", 1),  # nor a number a boolean
    ],
)
def test_values_outside_their_datatype_are_refused_naming_the_input(
    client: Any, service: Any, datatype: str, bad: Any
) -> None:
    before = service.metrics.child(
        service.metrics.predictions, "fraud", "1", "champion", "primary", "ok"
    )._value.get()
    body = {"inputs": [_tensor(datatype, [bad] + [0] * 14, name="input")]}
    if datatype == "BOOL":
        body = {"inputs": [_tensor(datatype, [bad] + [False] * 14, name="input")]}
    response = client.post("/v2/models/fraud/infer", json=body)
    assert response.status_code == 422, response.text
    assert "'input'" in response.json()["error"]
    after = service.metrics.child(
        service.metrics.predictions, "fraud", "1", "champion", "primary", "ok"
    )._value.get()
    assert after == before  # nothing was scored (no NaN score logged as "legit")


@pytest.mark.parametrize(
    ("datatype", "edge"), [("INT8", 127), ("INT8", -128), ("UINT8", 255), ("FP32", 3.4e38)]
)
def test_values_at_their_datatypes_edge_are_scored(client: Any, datatype: str, edge: Any) -> None:
    body = {"inputs": [_tensor(datatype, [edge] + [0] * 14)]}
    response = client.post("/v2/models/fraud/infer", json=body)
    assert response.status_code == 200, response.text
    assert np.isfinite(response.json()["outputs"][0]["data"]).all()


def test_a_body_without_content_type_is_read_as_json(client: Any) -> None:
    import json

    body = json.dumps({"inputs": [_tensor("FP32", [0.0] * 15)]})
    response = client.post("/v2/models/fraud/infer", content=body.encode(), headers={})
    assert response.status_code == 200, response.text
    octet = client.post(
        "/v2/models/fraud/infer",
        content=body.encode(),
        headers={"content-type": "application/octet-stream"},
    )
    assert octet.json()["outputs"] == response.json()["outputs"]


def test_binary_tensor_data_in_and_out(client: Any, service: Any) -> None:
    import json

    rows = np.array(_rows(2), dtype=np.float32)
    raw = rows.astype("<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [{"name": "input", "shape": [2, 15], "datatype": "FP32",
                        "parameters": {"binary_data_size": len(raw)}}],
            "parameters": {"binary_data_output": True},
        }
    ).encode()  # fmt: skip
    response = client.post(
        "/v2/models/fraud/infer",
        content=header + raw,
        headers={"inference-header-content-length": str(len(header))},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    meta = json.loads(response.content[:length])
    (out,) = meta["outputs"]
    assert "data" not in out
    assert out["parameters"]["binary_data_size"] == 2 * 2 * 4
    probabilities = np.frombuffer(response.content[length:], dtype="<f4").reshape(2, 2)
    expected = service.host.get("fraud", version=1).predict(rows)
    np.testing.assert_allclose(probabilities[:, 1], expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("size", "sent", "length"),
    [(60, 56, None), (56, 56, None), (60, 64, None), (60, 60, "999999"), (60, 60, "x")],
    ids=["data-short", "size-not-the-shape", "bytes-left-over", "header-too-long", "not-a-number"],
)
def test_bad_binary_bodies_are_422(client: Any, size: int, sent: int, length: str | None) -> None:
    import json

    header = json.dumps(
        {"inputs": [{"name": "input", "shape": [1, 15], "datatype": "FP32",
                     "parameters": {"binary_data_size": size}}]}
    ).encode()  # fmt: skip
    raw = np.zeros(16, "<f4").tobytes()[:sent]  # 15 FP32 values are 60 bytes
    response = client.post(
        "/v2/models/fraud/infer",
        content=header + raw,
        headers={"inference-header-content-length": length or str(len(header))},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]


def test_v2_errors_take_the_open_inference_protocol_shape(client: Any) -> None:
    tensor = _tensor("FP32", [0.0] * 15)
    unknown = client.post("/v2/models/nope/infer", json={"inputs": [tensor]})
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "no endpoint serves model 'nope'", "field": "model"}
    bad = client.post("/v2/models/fraud/infer", json={"inputs": []})
    assert bad.status_code == 422
    assert set(bad.json()) == {"error", "field"}
    assert bad.json()["field"] == "inputs"
    not_json = client.post("/v2/models/fraud/infer", content=b"{nope")
    assert not_json.status_code == 422
    assert not_json.json()["field"] == "body"
    no_route = client.get("/v2/models/fraud/nothing")
    assert no_route.status_code == 404
    assert no_route.json() == {"error": "no route /v2/models/fraud/nothing", "field": None}
    wrong_method = client.delete("/v2/models/fraud")
    assert wrong_method.status_code == 405
    assert "DELETE" in wrong_method.json()["error"]
    assert wrong_method.headers["allow"] == "GET"
    bad_name = client.get("/v2/models/..%2Fetc")
    assert bad_name.status_code in (404, 422)
    assert set(bad_name.json()) == {"error", "field"}


def test_compressed_bodies_are_inflated_within_the_limit(client: Any, service: Any) -> None:
    import gzip
    import json

    body = json.dumps({"inputs": [_tensor("FP32", [0.0] * 15)]}).encode()
    ok = client.post(
        "/v2/models/fraud/infer", content=gzip.compress(body), headers={"content-encoding": "gzip"}
    )
    assert ok.status_code == 200, ok.text
    bomb = gzip.compress(b" " * (service.settings.max_body_bytes + 1) + body)
    refused = client.post(
        "/v2/models/fraud/infer", content=bomb, headers={"content-encoding": "gzip"}
    )
    assert refused.status_code == 413
    assert refused.json()["field"] == "body"
    garbage = client.post(
        "/v2/models/fraud/infer", content=b"not gzip", headers={"content-encoding": "gzip"}
    )
    assert garbage.status_code == 422
    brotli = {"content-encoding": "br"}
    unknown = client.post("/v2/models/fraud/infer", content=body, headers=brotli)
    assert (unknown.status_code, unknown.json()["field"]) == (422, "content-encoding")
