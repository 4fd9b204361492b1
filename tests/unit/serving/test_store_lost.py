"""An online store that came back empty is scored degraded, counted, and repaired by
materializing again (after a Redis restart, 1,003 requests were scored on fill values with
`degraded=false`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from mlsd.features.store import FeatureStore
from mlsd.features.testing import synthetic_transactions, write_transactions
from mlsd.serving.app import create_app
from mlsd.serving.testing import sample_transaction
from mlsd.settings import Settings


def eventually(check: Any, timeout_s: float = 10.0) -> bool:
    """True once `check()` is (a network store is probed off the event loop: the request
    after the one that started the probe sees its result)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_store_that_lost_its_data_scores_degraded_until_rematerialized(
    online_settings: Settings, tmp_path: Path, build_service: Any, make_client: Any
) -> None:
    dataset = write_transactions(
        synthetic_transactions(n_customers=30, n_terminals=30, days=20, seed=3), tmp_path / "ds"
    )
    store = FeatureStore.open(online_settings)
    try:
        store.apply()
        store.build(dataset)
        store.materialize()
        service = build_service(store, store_probe_s=0.0)  # probe on every request
        client = make_client(create_app(online_settings, service=service))

        def degraded() -> bool:
            response = client.post("/v1/score", json=sample_transaction(customer_id=1))
            assert response.status_code == 200, response.text
            flag: bool = response.json()["results"][0]["degraded"]
            return flag

        assert not degraded()
        store.online.clear()  # what a Redis restarted without its data looks like
        assert eventually(degraded)
        metrics = client.get("/metrics").text
        assert "mlsd_online_store_empty 1.0" in metrics
        assert 'mlsd_degraded_total{reason="online_store_empty"} 1.0' in metrics
        store.materialize()  # the repair the log message names
        assert eventually(lambda: not degraded())
        assert "mlsd_online_store_empty 0.0" in client.get("/metrics").text
    finally:
        store.close()


@pytest.mark.redis
def test_materialize_from_the_cli_repairs_a_lost_store_under_its_prefix(
    home: Path, tmp_path: Path, redis_url: str, redis_prefix: str, build_service: Any,
    make_client: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Redis loses every key of a non-default prefix: an alert event (WARNING, stable name)
    and degraded answers; `mlsd features materialize` with that prefix repairs it (an
    event again), and the answers are whole."""
    import redis
    from typer.testing import CliRunner

    from mlsd.cli.main import app
    from mlsd.settings import get_settings

    prefix = f"{redis_prefix}custom:"
    monkeypatch.setenv("MLSD_ONLINE_STORE", redis_url)
    monkeypatch.setenv("MLSD_REDIS_PREFIX", prefix)
    get_settings.cache_clear()
    settings = Settings(home=home, online_store=redis_url, redis_prefix=prefix)
    dataset = write_transactions(
        synthetic_transactions(n_customers=30, n_terminals=30, days=20, seed=3), tmp_path / "ds"
    )
    store = FeatureStore.open(settings)
    try:
        store.apply()
        store.build(dataset)
        store.materialize()
        client = make_client(create_app(settings, service=build_service(store, store_probe_s=0.0)))

        def degraded() -> bool:
            response = client.post("/v1/score", json=sample_transaction(customer_id=1))
            assert response.status_code == 200, response.text
            flag: bool = response.json()["results"][0]["degraded"]
            return flag

        assert not degraded()
        server = redis.Redis.from_url(redis_url)
        lost = list(server.scan_iter(match=f"{prefix}*", count=1000))
        assert lost, "nothing stored under the prefix"
        server.delete(*lost)  # a restart without persistence, for this prefix
        server.close()
        with caplog.at_level(logging.WARNING, logger="mlsd.inference.store_probe"):
            assert eventually(degraded)
            result = CliRunner().invoke(app, ["features", "materialize"])
            assert result.exit_code == 0, result.output
            assert eventually(lambda: not degraded())
        events = [(r.levelno, getattr(r, "event", None)) for r in caplog.records]
        assert events == [
            (logging.WARNING, "online_store_lost"),
            (logging.WARNING, "online_store_restored"),
        ]
        assert caplog.records[0].getMessage().startswith("online_store_lost: ")
        assert "mlsd_online_store_empty 0.0" in client.get("/metrics").text
    finally:
        store.close()
        get_settings.cache_clear()


def test_a_store_emptied_before_the_first_background_read_ran_is_still_reported_lost() -> None:
    """The CI race of 2026-12-02: the first request's probe read (on another thread) ran
    only after the store was emptied, so the probe never saw it full and never said lost.
    The probe now reads once when it is built."""
    from mlsd.inference.store_probe import StoreProbe

    marks: dict[str, int | None] = {"customer_spending": 5}
    deferred: list[Any] = []  # the background reads, run when the test says
    probe = StoreProbe(lambda: dict(marks), interval_s=0.0, submit=deferred.append)
    assert not probe.lost()  # submits a read, answers from what is known
    marks["customer_spending"] = None  # emptied before that read ran
    while deferred:
        deferred.pop(0)()
    probe.lost()  # the next request: submits again and answers from the last read
    while deferred:
        deferred.pop(0)()
    assert probe.lost()
    assert probe.views_lost == ["customer_spending"]
