"""Request-time features use the UTC time of the payment, whatever offset the client sent."""

from __future__ import annotations

import pytest

from mlsd.inference.request_features import REQUEST_FEATURES
from mlsd.serving.schemas import TransactionBody
from mlsd.serving.testing import sample_transaction


@pytest.mark.parametrize(
    ("timestamp", "weekend", "night"),
    [
        ("2026-11-20T12:00:00Z", 0.0, 0.0),  # Friday noon
        ("2026-11-21T01:00:00+05:00", 0.0, 0.0),  # = Friday 20:00 UTC
        ("2026-11-21T03:00:00Z", 1.0, 1.0),  # Saturday 03:00
        ("2026-11-22T23:30:00-02:00", 0.0, 1.0),  # = Monday 01:30 UTC
    ],
)
def test_weekend_and_night_in_utc(timestamp: str, weekend: float, night: float) -> None:
    body = sample_transaction(timestamp=timestamp, amount=12.5)
    tx = TransactionBody.model_validate(body).to_domain()
    assert REQUEST_FEATURES["TX_AMOUNT"](tx) == 12.5
    assert REQUEST_FEATURES["TX_DURING_WEEKEND"](tx) == weekend
    assert REQUEST_FEATURES["TX_DURING_NIGHT"](tx) == night


def test_functions_of_another_request_view_version() -> None:
    from datetime import timedelta

    from mlsd.errors import ValidationError
    from mlsd.features.definitions import FeatureView
    from mlsd.features.handbook import CUSTOMER_VIEW, REQUEST_VIEW
    from mlsd.features.transforms import RequestTransform
    from mlsd.inference.request_features import request_functions

    assert request_functions() == REQUEST_FEATURES
    late = RequestTransform("TX_DURING_NIGHT", "timestamp", "hour", "<=", 5)
    view = FeatureView(
        REQUEST_VIEW.name, None, "request", REQUEST_VIEW.features, timedelta(0), transforms=(late,)
    )
    body = sample_transaction(timestamp="2026-11-23T06:30:00Z")
    tx = TransactionBody.model_validate(body).to_domain()
    assert REQUEST_FEATURES["TX_DURING_NIGHT"](tx) == 1.0
    assert request_functions(view)["TX_DURING_NIGHT"](tx) == 0.0
    with pytest.raises(ValidationError):
        request_functions(CUSTOMER_VIEW)
