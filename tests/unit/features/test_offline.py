"""Point-in-time joins: TTL ends, ties, missing rows, bad entity frames, time travel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlsd.errors import NotFoundError, ValidationError
from mlsd.features.definitions import FeatureView
from mlsd.features.handbook import CUSTOMER
from mlsd.features.store import FeatureStore

T0 = datetime(2024, 1, 10, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=1)
VIEW = FeatureView("probe", CUSTOMER, "customer_spending", ("F1", "F2"), TTL, (1,))
US = timedelta(microseconds=1)


def _rows(*rows: tuple[int, datetime, datetime, float]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["CUSTOMER_ID", "event_timestamp", "created_timestamp", "F1"]
    )
    frame["F2"] = frame["F1"] * 10
    for col in ("event_timestamp", "created_timestamp"):
        frame[col] = pd.to_datetime(frame[col], utc=True).dt.as_unit("us")
    return frame


def _entities(*rows: tuple[int, datetime]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["CUSTOMER_ID", "TX_DATETIME"])
    frame["TX_DATETIME"] = pd.to_datetime(frame["TX_DATETIME"], utc=True).dt.as_unit("us")
    frame["extra"] = [f"row{i}" for i in range(len(frame))]
    return frame


@pytest.fixture
def probe(store: FeatureStore) -> FeatureStore:
    store.apply([VIEW])
    c1, c2 = T0 - timedelta(days=1), T0 - timedelta(hours=12)
    store.push(
        "probe", _rows((1, T0, c1, 1.0), (1, T0 - TTL, c1, 2.0), (2, T0, c1, 3.0)), "offline"
    )
    # a second part: same event time as customer 2's row, created later -> wins
    store.push("probe", _rows((2, T0, c2, 4.0), (3, T0 - TTL - US, c2, 5.0)), "offline")
    return store


def test_ttl_both_ends_inclusive_and_rows_kept(probe: FeatureStore) -> None:
    ents = _entities(
        (1, T0),  # event == t: upper end inclusive
        (1, T0 - US),  # only the T0 - TTL row is visible, exactly TTL old: present
        (3, T0),  # newest row TTL + 1 µs old: missing, row kept
        (9, T0),  # unknown entity: missing, row kept
        (1, T0 - TTL - US),  # before any row: missing
        (1, T0 + TTL),  # row at T0 exactly TTL old: present
        (1, T0 + TTL + US),  # expired
    )
    ents.index = pd.Index([10, 11, 12, 13, 14, 15, 16])
    out = probe.get_training_set(ents, ["F1", "F2"])
    assert list(out.index) == [10, 11, 12, 13, 14, 15, 16]
    assert list(out["extra"]) == list(ents["extra"])
    np.testing.assert_array_equal(
        out["F1"].to_numpy(), [1.0, 2.0, np.nan, np.nan, np.nan, 1.0, np.nan]
    )
    np.testing.assert_array_equal(out["F2"].to_numpy()[:2], [10.0, 20.0])


def test_repeated_index_keeps_rows_in_place(probe: FeatureStore) -> None:
    ents = _entities((1, T0), (2, T0), (9, T0))
    ents.index = pd.Index([5, 5, 5])
    out = probe.get_training_set(ents, ["F1"])
    np.testing.assert_array_equal(out["F1"].to_numpy(), [1.0, 4.0, np.nan])
    assert list(out.index) == [5, 5, 5]


def test_ties_on_event_time_go_to_later_created(probe: FeatureStore) -> None:
    for _ in range(3):  # deterministic
        out = probe.get_training_set(_entities((2, T0), (2, T0 + TTL)), ["F1"])
        assert list(out["F1"]) == [4.0, 4.0]


def test_time_travel(probe: FeatureStore) -> None:
    snap = probe.get_features_as_of(T0, ["F1"])["probe"]
    assert dict(zip(snap["CUSTOMER_ID"], snap["F1"], strict=True)) == {1: 1.0, 2: 4.0}
    earlier = probe.get_features_as_of(T0 - US, ["F1"])["probe"]
    assert dict(zip(earlier["CUSTOMER_ID"], earlier["F1"], strict=True)) == {1: 2.0, 3: 5.0}
    with pytest.raises(ValidationError):
        probe.get_features_as_of(T0.replace(tzinfo=None), ["F1"])


def test_entity_frame_errors_name_the_problem(probe: FeatureStore) -> None:
    good = _entities((1, T0))
    with pytest.raises(ValidationError, match="no timestamp column") as info:
        probe.get_training_set(good.drop(columns=["TX_DATETIME"]), ["F1"])
    assert info.value.field == "TX_DATETIME"
    naive = good.assign(TX_DATETIME=good["TX_DATETIME"].dt.tz_localize(None))
    with pytest.raises(ValidationError, match="naive"):
        probe.get_training_set(naive, ["F1"])
    with pytest.raises(ValidationError, match="not a datetime"):
        probe.get_training_set(good.assign(TX_DATETIME="2024-01-01"), ["F1"])
    with pytest.raises(ValidationError, match="join key") as info:
        probe.get_training_set(good.drop(columns=["CUSTOMER_ID"]), ["F1"])
    assert info.value.field == "CUSTOMER_ID"
    with pytest.raises(NotFoundError, match="NOPE") as info:
        probe.get_training_set(good, ["F1", "NOPE"])
    assert info.value.field == "features"
    with pytest.raises(NotFoundError, match="version"):
        probe.get_training_set(good, ["F1"], versions={"probe": "0" * 16})


def test_unbuilt_view_is_not_found(store: FeatureStore) -> None:
    with pytest.raises(NotFoundError, match="features build"):
        store.get_training_set(_entities((1, T0)), ["CUSTOMER_ID_NB_TX_1DAY_WINDOW"])


def test_ambiguous_feature_and_unknown_pinned_view(probe: FeatureStore) -> None:
    from dataclasses import replace

    from mlsd.errors import ConflictError

    probe.apply([replace(VIEW, name="probe_twin")])
    with pytest.raises(ConflictError, match="probe, probe_twin") as info:
        probe.get_training_set(_entities((1, T0)), ["F1"])
    assert info.value.field == "features"
    with pytest.raises(NotFoundError) as info:
        probe.online_vectors([], ["TX_AMOUNT"], versions={"nope": "x"})
    assert info.value.field == "versions"


def test_ties_inside_one_pushed_part_go_to_later_created(store: FeatureStore) -> None:
    """Many (customer, event time) ties inside ONE part: the join returns the later created
    row (equal created: the later row), as materialization does, on every run."""
    store.apply([VIEW])
    rng = np.random.default_rng(5)
    n = 6_000
    customers = rng.integers(0, 40, n)
    events = T0 - timedelta(minutes=30) + pd.to_timedelta(rng.integers(0, 20, n), unit="s")
    created = T0 - timedelta(days=1) + pd.to_timedelta(rng.integers(0, 3, n), unit="s")
    rows = _rows(*zip(customers.tolist(), events, created, np.arange(n, dtype=float), strict=True))
    store.push("probe", rows, "offline")
    winner = (
        rows.assign(order=np.arange(n))
        .sort_values(
            ["CUSTOMER_ID", "event_timestamp", "created_timestamp", "order"], kind="stable"
        )
        .drop_duplicates(["CUSTOMER_ID", "event_timestamp"], keep="last")
    )
    ents = _entities(*zip(winner["CUSTOMER_ID"], winner["event_timestamp"], strict=True))
    for _ in range(3):  # the choice must not change from run to run
        out = store.get_training_set(ents, ["F1"])
        np.testing.assert_array_equal(out["F1"].to_numpy(), winner["F1"].to_numpy())
    snap = store.get_features_as_of(T0, ["F1"])["probe"]  # the as-of lookup agrees
    latest = winner.groupby("CUSTOMER_ID")["F1"].last()
    assert dict(zip(snap["CUSTOMER_ID"], snap["F1"], strict=True)) == latest.to_dict()
