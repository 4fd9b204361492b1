"""V2 tensor inference and async jobs append every scored row to the prediction log."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlsd.predlog import ParquetPredictionLog
from mlsd.serving.app import create_app
from mlsd.serving.service import Service
from mlsd.serving.testing import FEATURES, sample_transaction

from .conftest import wait_for_job


@pytest.fixture
def plog(tmp_path: Path) -> Iterator[ParquetPredictionLog]:
    log = ParquetPredictionLog(tmp_path / "predictions", flush_seconds=60, compact_every_s=None)
    yield log
    log.close()


@pytest.fixture
def logged(build_service: Any, store: Any, plog: ParquetPredictionLog) -> Service:
    svc: Service = build_service(store, prediction_log=plog)
    return svc


@pytest.fixture
def app_client(settings: Any, logged: Service, make_client: Any) -> Any:
    return make_client(create_app(settings, service=logged))


def test_v2_rows_are_logged_with_tensor_features(
    app_client: Any, logged: Service, plog: ParquetPredictionLog
) -> None:
    rows = np.random.default_rng(3).normal(size=(3, len(FEATURES))).round(3)
    body: dict[str, Any] = {
        "id": "client-7",
        "inputs": [{"name": "input", "shape": [3, 15], "datatype": "FP32", "data": rows.tolist()}],
    }
    out = app_client.post("/v2/models/fraud/infer", json=body)
    assert out.status_code == 200, out.text
    fraud = np.array(out.json()["outputs"][0]["data"]).reshape(3, 2)[:, 1]
    one = app_client.post(
        "/v2/models/fraud/versions/1/infer",
        json={**body, "inputs": [{**body["inputs"][0], "shape": [15], "data": rows[0].tolist()}]},
        headers={"x-request-id": "hdr-1"},
    )
    assert one.status_code == 200, one.text

    frame = plog.read()
    assert frame["request_id"].tolist() == ["client-7:0", "client-7:1", "client-7:2", "hdr-1"]
    assert set(frame["endpoint"]) == {"v2"}
    assert set(frame["model"]) == {"fraud"}
    assert set(frame["version"]) == {"1"}
    assert not frame["degraded"].any()
    threshold = logged.host.get("fraud", version=1).threshold
    assert set(frame["threshold"]) == {threshold}
    np.testing.assert_allclose(frame["score"][:3], fraud, rtol=1e-5)
    for score, decision in zip(frame["score"], frame["decision"], strict=True):
        assert decision == ("fraud" if score >= threshold else "legit")
    for i in range(3):
        logged_features = frame["features"][i]
        assert list(logged_features) == list(FEATURES)
        np.testing.assert_allclose(list(logged_features.values()), rows[i], rtol=1e-6)
    assert (frame["latency_ms"] > 0).all()
    assert frame["transaction_id"].isna().all(), "bare tensors carry no transaction"


def test_a_refused_v2_request_logs_nothing(app_client: Any, plog: ParquetPredictionLog) -> None:
    bad = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    assert app_client.post("/v2/models/fraud/infer", json=bad).status_code == 422
    assert plog.read().empty


def test_job_rows_are_logged(app_client: Any, plog: ParquetPredictionLog) -> None:
    rows = [sample_transaction(transaction_id=i, amount=7.0 * i) for i in range(1, 5)]
    job_id = app_client.post("/v1/jobs", json={"rows": rows}).json()["job_id"]
    done = wait_for_job(app_client, job_id)
    assert done["state"] == "done", done
    frame = plog.read()
    assert len(frame) == 4
    assert set(frame["endpoint"]) == {"job"}
    prefixes = {rid.rsplit(":", 1)[0] for rid in frame["request_id"]}
    assert prefixes == {job_id}, "the job's own id"
    assert sorted(frame["transaction_id"].tolist()) == [1, 2, 3, 4]
    assert set(frame["customer_id"]) == {rows[0]["customer_id"]}
    assert set(frame["terminal_id"]) == {rows[0]["terminal_id"]}
    assert set(frame["tx_time"]) == {pd.Timestamp(rows[0]["timestamp"])}
    assert sorted(int(rid.rsplit(":", 1)[1]) for rid in frame["request_id"]) == [1, 2, 3, 4]
    by_tx = {int(r.rsplit(":", 1)[1]): i for i, r in enumerate(frame["request_id"])}
    for result in done["results"]:
        i = by_tx[result["transaction_id"]]
        assert math.isclose(frame["score"][i], result["score"], rel_tol=1e-9)
        assert frame["decision"][i] == result["decision"]
        assert frame["version"][i] == str(result["version"])
        assert len(frame["features"][i]) == len(FEATURES)


def test_job_id_is_the_request_id_when_the_runner_passes_it(
    logged: Service, plog: ParquetPredictionLog
) -> None:
    frame = pd.DataFrame([sample_transaction(transaction_id=i) for i in (5, 6)])
    frame.attrs["job_id"] = "abc123"
    out = logged.score_frame(frame)
    assert len(out) == 2
    assert plog.read()["request_id"].tolist() == ["abc123:5", "abc123:6"]


def test_without_a_log_nothing_breaks(service: Service) -> None:
    frame = pd.DataFrame([sample_transaction(transaction_id=1)])
    assert len(service.score_frame(frame)) == 1


def test_a_job_run_again_logs_only_the_rows_its_interrupted_run_had_not(
    logged: Service, plog: ParquetPredictionLog
) -> None:
    """A rerun (attempt 2, after a kill -9 or a worker that lost the job) scores every row
    again, for its results, but logs each job row once."""
    rows = [sample_transaction(transaction_id=i) for i in range(1, 6)]
    first = pd.DataFrame(rows[:2])
    first.attrs.update(job_id="job-a", attempt=1)
    logged.score_frame(first)  # the interrupted run logged rows 1 and 2, then died
    again = pd.DataFrame(rows)
    again.attrs.update(job_id="job-a", attempt=2, since="2026-01-01T00:00:00+00:00")
    out = logged.score_frame(again)
    assert out["transaction_id"].tolist() == [1, 2, 3, 4, 5]
    ids = plog.read()["request_id"]
    assert sorted(ids) == [f"job-a:{i}" for i in range(1, 6)]
