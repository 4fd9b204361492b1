"""The feature-freshness bound: a cached score is not served once its features have a newer
event (past the tolerance), even where the new event left the values, and so the key, alone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from mlsd.errors import ValidationError
from mlsd.features.store import FeatureStore
from mlsd.inference.assemble import FeatureAssembler
from mlsd.inference.metrics import ServingMetrics
from mlsd.inference.pipeline import ScoringPipeline
from mlsd.serving.app import create_app
from mlsd.serving.testing import FEATURES, NOW, sample_transaction


def _renew_customer(store: FeatureStore, customer: int, age: timedelta) -> None:
    """Push the customer's row again, same values as `seed_feature_store`, a newer event."""
    row = pd.DataFrame(
        {
            "CUSTOMER_ID": [customer],
            "event_timestamp": pd.to_datetime([NOW - age], utc=True),
            **{f: [3.0] for f in FEATURES if f.startswith("CUSTOMER_ID_")},
        }
    )
    store.push("customer_spending", row)


def _cached_flags(client: Any, n: int) -> list[bool]:
    flags = []
    for _ in range(n):
        response = client.post("/v1/score", json=sample_transaction())
        assert response.status_code == 200, response.text
        flags.append(bool(response.json()["results"][0]["cached"]))
    return flags


@pytest.mark.parametrize(
    ("tolerance_s", "renewed_after", "served_from_cache"),
    [
        (None, timedelta(minutes=30), True),  # bound off: same values, same key, a hit
        (0.0, timedelta(minutes=30), False),  # any newer event refuses the entry
        (3600.0, timedelta(minutes=30), True),  # 30 min newer, within a 1 h tolerance
        (600.0, timedelta(minutes=30), False),  # 30 min newer, past a 10 min tolerance
    ],
)
def test_a_customer_whose_features_get_a_newer_event_is_not_answered_from_cache(
    settings: Any,
    store: FeatureStore,
    build_service: Any,
    make_client: Any,
    tolerance_s: float | None,
    renewed_after: timedelta,
    served_from_cache: bool,
) -> None:
    service = build_service(store, cache_freshness_s=tolerance_s)
    client = make_client(create_app(settings, service=service))
    assert _cached_flags(client, 2) == [False, True]  # filed, then served
    # seed_feature_store filed customer 1 at NOW - 1 h; the renewed row is 30 min newer
    _renew_customer(store, 1, timedelta(hours=1) - renewed_after)
    assert _cached_flags(client, 2) == [served_from_cache, True]
    assert service.cache is not None
    assert service.cache.stats().stale == (0 if served_from_cache else 1)


def test_the_tolerance_comes_from_settings_when_the_options_leave_it(
    settings: Any, store: FeatureStore, build_service: Any
) -> None:
    service = build_service(store)
    assert service.pipeline.freshness_us is None
    tuned = settings.model_copy(update={"cache_freshness_seconds": 2.5})
    from mlsd.serving.service import Service

    other = Service(tuned, service.host, options=service.options, features=store)
    try:
        assert other.pipeline.freshness_us == 2_500_000
    finally:
        other.close()


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_a_negative_or_non_finite_tolerance_is_refused(bad: float) -> None:
    metrics = ServingMetrics()
    with pytest.raises(ValidationError, match="tolerance") as info:
        ScoringPipeline(FeatureAssembler(None, metrics), metrics, freshness_s=bad)
    assert info.value.field == "cache_freshness_s"


def test_a_negative_setting_is_refused() -> None:
    from mlsd.errors import ConfigError
    from mlsd.settings import Settings

    with pytest.raises((ValueError, ConfigError)):
        Settings(cache_freshness_seconds=-5)
