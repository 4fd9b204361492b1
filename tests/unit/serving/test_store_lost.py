"""An online store that came back empty is scored degraded, counted, and repaired by
materializing again (after a Redis restart, 1,003 requests were scored on fill values with
`degraded=false`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlsd.features.store import FeatureStore
from mlsd.features.testing import synthetic_transactions, write_transactions
from mlsd.serving.app import create_app
from mlsd.serving.testing import sample_transaction
from mlsd.settings import Settings


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
        assert degraded()
        metrics = client.get("/metrics").text
        assert "mlsd_online_store_empty 1.0" in metrics
        assert 'mlsd_degraded_total{reason="online_store_empty"} 1.0' in metrics
        store.materialize()  # the repair the log message names
        assert not degraded()
        assert "mlsd_online_store_empty 0.0" in client.get("/metrics").text
    finally:
        store.close()
