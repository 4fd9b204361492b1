"""POST /v1/jobs and GET /v1/jobs/{id}: queued batches scored like /v1/score."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlsd.serving.testing import sample_transaction

from .conftest import wait_for_job


def test_rows_job_matches_online_scores(client: Any) -> None:
    rows = [sample_transaction(transaction_id=i, amount=5.0 * i) for i in range(1, 4)]
    submitted = client.post("/v1/jobs", json={"rows": rows})
    assert submitted.status_code == 202, submitted.text
    done = wait_for_job(client, submitted.json()["job_id"])
    assert done["state"] == "done", done
    assert done["attempts"] == 1  # the in-process queue counts runs (a restart re-runs)
    online = client.post("/v1/score", json={"transactions": rows}).json()["results"]
    for job_row, live in zip(done["results"], online, strict=True):
        assert job_row["transaction_id"] == live["transaction_id"]
        assert math.isclose(job_row["score"], live["score"], rel_tol=1e-6)
        assert job_row["decision"] == live["decision"]


def test_parquet_job_with_dataset_column_names(client: Any, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {
            "TRANSACTION_ID": [1, 2],
            "TX_DATETIME": pd.to_datetime(["2026-11-20T12:00:00Z"] * 2, utc=True),
            "CUSTOMER_ID": [1, 2],
            "TERMINAL_ID": [7, 7],
            "TX_AMOUNT": [10.0, 900.0],
            "TX_FRAUD": [0, 1],
        }
    )
    frame.to_parquet(home / "batch.parquet")
    job_id = client.post("/v1/jobs", json={"path": "batch.parquet"}).json()["job_id"]
    done = wait_for_job(client, job_id)
    assert done["state"] == "done", done
    assert [r["transaction_id"] for r in done["results"]] == [1, 2]


def test_bad_jobs_are_4xx(client: Any) -> None:
    assert client.post("/v1/jobs", json={"path": "../etc/passwd.parquet"}).status_code == 422
    assert (
        client.post("/v1/jobs", json={"rows": [sample_transaction(amount=-1)]}).status_code == 422
    )
    assert client.post("/v1/jobs", json={"rows": []}).status_code == 422
    assert client.post("/v1/jobs", json={}).status_code == 422
    unknown = client.post("/v1/jobs", json={"rows": [sample_transaction()], "model": "x"})
    assert unknown.status_code == 404
    assert client.get("/v1/jobs/doesnotexist").status_code == 404


@pytest.mark.redis
def test_a_job_whose_redis_key_vanished_answers_json_404(
    settings: Any, service: Any, make_client: Any, redis_url: str, redis_prefix: str
) -> None:
    from mlsd.serving.app import create_app
    from mlsd.serving.jobs.redis import RedisJobQueue

    service.jobs = RedisJobQueue(redis_url, settings.home, prefix=f"{redis_prefix}jobs:")
    client = make_client(create_app(settings, service=service))
    job_id = client.post("/v1/jobs", json={"rows": [sample_transaction()]}).json()["job_id"]
    wait_for_job(client, job_id)
    key = f"{redis_prefix}jobs:job:{job_id}"
    service.jobs._client.delete(key)
    service.jobs._client.hset(key, "done", 1)  # a remnant: a late write after the key went
    answer = client.get(f"/v1/jobs/{job_id}")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["error"] == "NotFoundError", body
    assert body["field"] == "job_id", body
