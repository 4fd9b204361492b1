"""FeatureStore online API: vectors, statuses, push, versions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlsd.errors import NotFoundError, ValidationError
from mlsd.features import HANDBOOK_FEATURES
from mlsd.features.handbook import CUSTOMER_VIEW
from mlsd.features.store import FeatureStore


def _request(tx: pd.Series, when: datetime | str | None = None) -> dict[str, object]:
    return {
        "CUSTOMER_ID": int(tx["CUSTOMER_ID"]),
        "TERMINAL_ID": int(tx["TERMINAL_ID"]),
        "TX_AMOUNT": float(tx["TX_AMOUNT"]),
        "TX_DATETIME": when if when is not None else tx["TX_DATETIME"].to_pydatetime(),
    }


def test_online_vectors_match_the_training_set(
    built: FeatureStore, transactions: pd.DataFrame
) -> None:
    end = transactions["TX_DATETIME"].iloc[-1].to_pydatetime()
    built.materialize(end=end)
    later = end + timedelta(hours=1)
    sample = transactions.drop_duplicates("CUSTOMER_ID").head(20)
    reqs = [_request(tx, later) for _, tx in sample.iterrows()]
    vec = built.online_vectors(reqs, list(HANDBOOK_FEATURES))
    assert vec.values.dtype == np.float32
    assert vec.values.shape == (20, 15)
    assert vec.view_versions == built.view_versions()
    ents = sample.assign(TX_DATETIME=pd.Timestamp(later).as_unit("us"))
    offline = built.get_training_set(ents, list(HANDBOOK_FEATURES))
    expected = offline[list(HANDBOOK_FEATURES)].to_numpy(dtype=np.float32)
    np.testing.assert_array_equal(vec.values, expected)
    statuses = {s for row in vec.status for s in row.values()}
    assert statuses <= {"present", "expired"}


def test_status_missing_and_expired(built: FeatureStore, transactions: pd.DataFrame) -> None:
    end = transactions["TX_DATETIME"].iloc[-1].to_pydatetime()
    built.materialize(end=end)
    tx = transactions.iloc[-1]
    far = end + timedelta(days=400)
    unknown = {**_request(tx, end), "CUSTOMER_ID": 10_000_000}
    vec = built.online_vectors(
        [_request(tx, end), _request(tx, far), unknown],
        ["CUSTOMER_ID_NB_TX_1DAY_WINDOW", "TX_AMOUNT"],
        fill=-1.0,
    )
    assert [s["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] for s in vec.status] == [
        "present",
        "expired",
        "missing",
    ]
    assert vec.values[0, 0] >= 1.0
    assert list(vec.values[1:, 0]) == [-1.0, -1.0]
    assert list(vec.values[:, 1]) == [np.float32(tx["TX_AMOUNT"])] * 3
    assert all(s["TX_AMOUNT"] == "present" for s in vec.status)


def test_request_time_features(store: FeatureStore) -> None:
    reqs = [
        {"TX_AMOUNT": 5, "TX_DATETIME": "2024-06-01T06:59:59Z"},  # Saturday, night
        {"TX_AMOUNT": 7.5, "TX_DATETIME": datetime(2024, 6, 3, 7, 0, tzinfo=UTC)},  # Monday
    ]
    vec = store.online_vectors(reqs, ["TX_DURING_NIGHT", "TX_DURING_WEEKEND", "TX_AMOUNT"])
    assert vec.values.tolist() == [[1.0, 1.0, 5.0], [0.0, 0.0, 7.5]]


def test_bad_requests_are_clear(built: FeatureStore) -> None:
    feats = ["CUSTOMER_ID_NB_TX_1DAY_WINDOW"]
    ok = {"CUSTOMER_ID": 1, "TX_AMOUNT": 1.0, "TX_DATETIME": "2018-05-01T00:00:00+00:00"}
    with pytest.raises(ValidationError, match="naive") as info:
        built.online_vectors([{**ok, "TX_DATETIME": "2018-05-01T00:00:00"}], feats)
    assert info.value.field == "TX_DATETIME"
    with pytest.raises(ValidationError, match="CUSTOMER_ID"):
        built.online_vectors([{**ok, "CUSTOMER_ID": None}], feats)
    with pytest.raises(ValidationError, match="TX_DATETIME"):
        built.online_vectors([{"CUSTOMER_ID": 1}], feats)
    with pytest.raises(ValidationError, match="ISO"):
        built.online_vectors([{**ok, "TX_DATETIME": "yesterday"}], feats)
    with pytest.raises(NotFoundError, match="NOPE"):
        built.online_vectors([ok], ["NOPE"])


def test_push_obeys_the_write_rule(built: FeatureStore) -> None:
    feats = list(CUSTOMER_VIEW.features)
    t = pd.Timestamp("2030-01-01T00:00:00Z")

    def push(event: pd.Timestamp, value: float) -> None:
        rows = pd.DataFrame({"CUSTOMER_ID": [424242], "event_timestamp": [event]})
        for f in feats:
            rows[f] = value
        built.push("customer_spending", rows)

    push(t, 1.0)
    push(t - pd.Timedelta(seconds=1), 2.0)  # late: ignored
    req = {"CUSTOMER_ID": 424242, "TX_DATETIME": t.to_pydatetime()}
    assert built.online_vectors([req], feats[:1]).values[0, 0] == 1.0
    push(t + pd.Timedelta(seconds=1), 3.0)
    req["TX_DATETIME"] = (t + pd.Timedelta(seconds=1)).to_pydatetime()
    assert built.online_vectors([req], feats[:1]).values[0, 0] == 3.0
    with pytest.raises(ValidationError, match="lack"):
        built.push("customer_spending", pd.DataFrame({"CUSTOMER_ID": [1]}))
    with pytest.raises(ValidationError, match="request time"):
        built.push("transaction_request", pd.DataFrame())
    with pytest.raises(NotFoundError):
        built.push("nope", pd.DataFrame())


def test_old_version_stays_servable(built: FeatureStore, transactions: pd.DataFrame) -> None:
    end = transactions["TX_DATETIME"].iloc[-1].to_pydatetime()
    built.materialize(end=end)
    v1 = built.view_versions()["customer_spending"]
    v2_view = replace(CUSTOMER_VIEW, ttl=timedelta(days=3))
    built.apply([v2_view])
    assert built.view_versions()["customer_spending"] == v2_view.version != v1
    req = _request(transactions.iloc[-1], end)
    feats = ["CUSTOMER_ID_NB_TX_7DAY_WINDOW"]
    old = built.online_vectors([req], feats, versions={"customer_spending": v1})
    assert old.status[0][feats[0]] == "present"
    assert old.view_versions["customer_spending"] == v1
    new = built.online_vectors([req], feats)
    assert new.status[0][feats[0]] == "missing"  # v2 not materialized yet
    ents = transactions.tail(5)
    train = built.get_training_set(ents, feats, versions={"customer_spending": v1})
    assert train[feats[0]].notna().all()


def test_another_process_apply_is_seen_after_refresh(store: FeatureStore) -> None:
    other = FeatureStore.open(store.settings)
    v2 = replace(CUSTOMER_VIEW, ttl=timedelta(days=2))
    other.apply([v2])
    other.close()
    assert store.view_versions()["customer_spending"] == CUSTOMER_VIEW.version
    assert store.refresh()["customer_spending"] == v2.version
