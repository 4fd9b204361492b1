"""GET /metrics: Prometheus text with latencies in seconds, `_total` counters, no customer."""

from __future__ import annotations

from typing import Any

from mlsd.serving.testing import sample_transaction


def test_metrics_after_traffic(client: Any) -> None:
    for _ in range(3):
        assert (
            client.post("/v1/score", json=sample_transaction(customer_id=123456)).status_code == 200
        )
    client.post("/v1/score", json=sample_transaction(amount=-1))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for needle in (
        'mlsd_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/score",'
        'status="200"}',
        'mlsd_request_duration_seconds_count{method="POST",route="/v1/score",status="422"} 1.0',
        'mlsd_model_requests_total{model="fraud",role="primary",status="ok",'
        'variant="champion",version="1"} 3.0',
        'mlsd_cache_hits_total{model="fraud"} 2.0',
        'mlsd_cache_misses_total{model="fraud"} 1.0',
        'mlsd_batch_size_count{model="fraud"} 1.0',
        'mlsd_feature_lookup_duration_seconds_count{status="ok"} 3.0',
        'mlsd_model_loads_total{model="fraud",version="1"} 1.0',
        "mlsd_loaded_models 1.0",
    ):
        assert needle in text, needle
    assert "123456" not in text  # no per-customer label ever


def test_prediction_log_gets_every_scored_row(
    settings: Any, store: Any, build_service: Any, make_client: Any
) -> None:
    from mlsd.predlog import make_prediction_log
    from mlsd.serving.app import create_app

    log = make_prediction_log(settings)
    svc = build_service(store, prediction_log=log)
    client = make_client(create_app(settings, service=svc))
    txs = [sample_transaction(transaction_id=i) for i in range(4)]
    client.post("/v1/score", json={"transactions": txs}, headers={"X-Request-ID": "r9"})
    log.flush()
    frame = log.read()
    assert len(frame) == 4
    assert sorted(frame["request_id"]) == [f"r9:{i}" for i in range(4)]
    assert set(frame["model"]) == {"fraud"}
    assert set(frame["version"]) == {"1"}
    assert frame["features"][0]["TX_AMOUNT"] == 42.5


def test_model_inference_duration_is_observed_per_model_call(client: Any) -> None:
    """`mlsd_model_inference_duration_seconds`: one observation per model call, batched
    (`/v1/score`, V2 by alias) or pinned (V2 `/versions/{v}`)."""
    assert client.post("/v1/score", json=sample_transaction()).status_code == 200
    for i, path in enumerate(("/v2/models/fraud/infer", "/v2/models/fraud/versions/1/infer")):
        data = [0.1 + i] * 15 + [0.2 + i] * 15  # rows no cache holds
        tensor = {"name": "input", "shape": [2, 15], "datatype": "FP32", "data": data}
        assert client.post(path, json={"inputs": [tensor]}).status_code == 200, path
    text = client.get("/metrics").text
    assert 'mlsd_model_inference_duration_seconds_count{model="fraud"} 3.0' in text
    assert 'mlsd_model_inference_duration_seconds_bucket{le="2.5",model="fraud"} 3.0' in text


def test_metrics_show_the_prediction_log_backlog(
    settings: Any, store: Any, build_service: Any, make_client: Any, tmp_path: Any
) -> None:
    from mlsd.predlog import ParquetPredictionLog
    from mlsd.serving.app import create_app

    log = ParquetPredictionLog(tmp_path / "log", flush_seconds=3600, journal=False)
    svc = build_service(store, prediction_log=log)
    client = make_client(create_app(settings, service=svc))

    def backlog() -> str:
        lines = client.get("/metrics").text.splitlines()
        return next(line for line in lines if line.startswith("mlsd_prediction_log_buffered "))

    assert backlog() == "mlsd_prediction_log_buffered 0.0"
    txs = [sample_transaction(transaction_id=i) for i in range(4)]
    assert client.post("/v1/score", json={"transactions": txs}).status_code == 200
    assert backlog() == "mlsd_prediction_log_buffered 4.0"  # answered, not yet stored
    log.flush()
    assert backlog() == "mlsd_prediction_log_buffered 0.0"
