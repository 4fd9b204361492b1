from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from mlsd.errors import ValidationError
from mlsd.features import HANDBOOK_FEATURES
from mlsd.features.definitions import FeatureView
from mlsd.features.handbook import CUSTOMER_VIEW, HANDBOOK_VIEWS, TERMINAL_VIEW


def test_handbook_features_in_model_order() -> None:
    assert len(HANDBOOK_FEATURES) == 15
    assert HANDBOOK_FEATURES[:4] == (
        "TX_AMOUNT",
        "TX_DURING_WEEKEND",
        "TX_DURING_NIGHT",
        "CUSTOMER_ID_NB_TX_1DAY_WINDOW",
    )
    assert HANDBOOK_FEATURES[-1] == "TERMINAL_ID_RISK_30DAY_WINDOW"
    served = [f for v in HANDBOOK_VIEWS for f in v.features]
    assert sorted(served) == sorted(HANDBOOK_FEATURES)


def test_version_is_a_stable_content_hash() -> None:
    again = FeatureView.from_dict(CUSTOMER_VIEW.to_dict())
    assert again == CUSTOMER_VIEW
    assert again.version == CUSTOMER_VIEW.version
    assert len(CUSTOMER_VIEW.version) == 16
    assert CUSTOMER_VIEW.version != TERMINAL_VIEW.version


def test_changing_a_definition_changes_the_version() -> None:
    longer = replace(CUSTOMER_VIEW, ttl=timedelta(days=31))
    assert longer.version != CUSTOMER_VIEW.version
    described = replace(CUSTOMER_VIEW, description="words only")
    assert described.version == CUSTOMER_VIEW.version


def test_negative_ttl_is_refused() -> None:
    with pytest.raises(ValidationError, match="negative TTL") as info:
        replace(CUSTOMER_VIEW, ttl=timedelta(seconds=-1))
    assert info.value.field == "ttl"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "nope"}, "kind"),
        ({"windows_days": (0,)}, "windows_days"),
        ({"features": ()}, "features"),
        ({"name": "bad name"}, "name"),
        ({"entity": None}, "entity"),
    ],
)
def test_bad_definitions_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        replace(CUSTOMER_VIEW, **change)  # type: ignore[arg-type]
    assert info.value.field == field
