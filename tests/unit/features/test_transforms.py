"""Request-time transforms: one definition, three renderings (DuckDB SQL, numpy, Python) that
agree on every instant, whatever the offset it was given in or the session's TimeZone."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mlsd.data import schema
from mlsd.data.transaction import Transaction
from mlsd.errors import ValidationError
from mlsd.features import transforms as transforms_module
from mlsd.features.definitions import FeatureView
from mlsd.features.handbook import CUSTOMER, REQUEST_FEATURES, REQUEST_VIEW
from mlsd.features.pipeline import compute_view_frame, connect
from mlsd.features.reference import reference_features
from mlsd.features.store import FeatureStore
from mlsd.features.transforms import OPS, STANDARD, RequestTransform, select_sql, vector_block
from mlsd.inference.request_features import REQUEST_FEATURES as SERVING

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
HANDBOOK = REQUEST_VIEW.transforms

#: Instants on both sides of every boundary the handbook's features have (UTC).
BOUNDARIES = [
    datetime(2026, 11, 20, 23, 59, 59, 999_999, tzinfo=UTC),  # Friday, last µs
    datetime(2026, 11, 21, 0, 0, tzinfo=UTC),  # Saturday, first µs: weekend starts
    datetime(2026, 11, 22, 23, 59, 59, 999_999, tzinfo=UTC),  # Sunday, last µs
    datetime(2026, 11, 23, 0, 0, tzinfo=UTC),  # Monday: weekend over, night starts
    datetime(2026, 11, 23, 6, 59, 59, 999_999, tzinfo=UTC),  # last µs of the night
    datetime(2026, 11, 23, 7, 0, tzinfo=UTC),  # day
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # before the epoch (Wednesday)
    datetime(1969, 12, 27, 3, 0, tzinfo=UTC),  # a Saturday night before the epoch
]

#: Offsets a client may send: the UTC instant decides, never the local wall clock.
ZONES = [
    UTC,
    timezone(timedelta(hours=5)),
    timezone(timedelta(hours=-2)),
    timezone(timedelta(hours=14)),
    timezone(timedelta(hours=-12)),
    timezone(timedelta(hours=5, minutes=30)),
    ZoneInfo("Europe/Paris"),
    ZoneInfo("America/New_York"),
    ZoneInfo("Pacific/Kiritimati"),
]

transform_specs = st.one_of(
    st.sampled_from(HANDBOOK),
    st.builds(
        RequestTransform,
        feature=st.just("F"),
        input=st.just("timestamp"),
        part=st.sampled_from(["weekday", "hour"]),
        op=st.sampled_from(sorted(OPS)),
        value=st.integers(-1, 24),
    ),
    st.builds(
        RequestTransform,
        feature=st.just("F"),
        input=st.just("amount"),
        op=st.sampled_from(sorted(OPS)),
        value=st.floats(-1e6, 1e6, allow_nan=False) | st.integers(-1000, 1000),
    ),
    st.builds(
        RequestTransform,
        feature=st.just("F"),
        input=st.just("timestamp"),
        part=st.sampled_from(["weekday", "hour"]),
    ),
)
instants = st.datetimes(
    min_value=datetime(1900, 1, 2),
    max_value=datetime(2199, 12, 30),
    timezones=st.sampled_from(ZONES),
) | st.sampled_from(BOUNDARIES)
amounts = st.floats(-1e7, 1e7, allow_nan=False, width=32) | st.sampled_from([0.0, 1e-3, 5.0, 6.0])
rows = st.lists(st.tuples(instants, amounts), min_size=1, max_size=40)


def _us(when: datetime) -> int:
    return (when - EPOCH) // US


def _oracle(t: RequestTransform, when: datetime, amount: float) -> float:
    """The definition in words, with Python's own calendar on the UTC instant."""
    if t.input == "amount":
        x: float = amount
    else:
        utc = when.astimezone(UTC)
        x = utc.weekday() if t.part == "weekday" else utc.hour
    if t.op is None:
        return float(x)
    return 1.0 if OPS[t.op](x, t.value) else 0.0


def _sql_values(
    t: RequestTransform, times: list[datetime], amounts: list[float], zone: str
) -> list[float]:
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime([w.astimezone(UTC) for w in times], utc=True).as_unit("us"),
            "amt": np.asarray(amounts, dtype=np.float64),
            "i": np.arange(len(times)),
        }
    )
    con = connect()
    con.execute(f"SET TimeZone = '{zone}'")  # must not matter
    con.register("frame", frame)
    got = con.execute(f"SELECT {t.sql('amt', 'ts')} AS v FROM frame ORDER BY i").fetchall()
    con.close()
    return [float(v) for (v,) in got]


@settings(deadline=None, max_examples=120, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(t=transform_specs, data=rows, zone=st.sampled_from(["UTC", "Asia/Kolkata", "US/Hawaii"]))
@example(t=HANDBOOK[1], data=[(w, 1.0) for w in BOUNDARIES], zone="Asia/Kolkata")
@example(t=HANDBOOK[2], data=[(w, 1.0) for w in BOUNDARIES], zone="US/Hawaii")
def test_sql_numpy_and_python_agree(
    t: RequestTransform, data: list[tuple[datetime, float]], zone: str
) -> None:
    times = [w for w, _ in data]
    money = [a for _, a in data]
    expected = [_oracle(t, w, a) for w, a in data]
    fn = t.row()
    txs = [Transaction(i, 1, 2, a, w) for i, (w, a) in enumerate(data)]
    assert [fn(tx) for tx in txs] == expected
    got = t.vector(np.asarray(money), np.array([_us(w) for w in times], dtype=np.int64))
    assert got.dtype == np.float64
    assert got.tolist() == expected
    assert _sql_values(t, times, money, zone) == expected


@pytest.mark.parametrize("zone", ZONES, ids=str)
def test_handbook_features_on_boundaries_in_every_offset(zone: object) -> None:
    expected = {  # (weekend, night) per boundary, in UTC
        0: (0.0, 0.0), 1: (1.0, 1.0), 2: (1.0, 0.0), 3: (0.0, 1.0),
        4: (0.0, 1.0), 5: (0.0, 0.0), 6: (0.0, 0.0), 7: (1.0, 1.0),
    }  # fmt: skip
    for i, when in enumerate(BOUNDARIES):
        local = when.astimezone(zone)  # type: ignore[arg-type]
        tx = Transaction(1, 1, 1, 3.5, local)
        assert (SERVING["TX_DURING_WEEKEND"](tx), SERVING["TX_DURING_NIGHT"](tx)) == expected[i]
        assert SERVING["TX_AMOUNT"](tx) == 3.5


def test_serving_functions_are_the_request_view_rendered() -> None:
    assert list(SERVING) == list(REQUEST_FEATURES) == [t.feature for t in HANDBOOK]
    for t in HANDBOOK:
        assert SERVING[t.feature] is t.row()  # compiled once, shared
        assert STANDARD[t.feature] == t


def test_row_function_refuses_a_naive_time() -> None:
    tx = Transaction(1, 1, 1, 3.5, datetime(2026, 11, 21, 3, 0))
    with pytest.raises(ValidationError) as err:
        SERVING["TX_DURING_NIGHT"](tx)
    assert err.value.field == "timestamp"


def test_renderings_of_the_handbook_view() -> None:
    assert select_sql(HANDBOOK, "a", "t") == (
        'CAST("a" AS DOUBLE) AS "TX_AMOUNT", '
        'CAST((isodow(make_timestamp(epoch_us("t"))) - 1) >= 5 AS DOUBLE) AS "TX_DURING_WEEKEND", '
        'CAST(hour(make_timestamp(epoch_us("t"))) <= 6 AS DOUBLE) AS "TX_DURING_NIGHT"'
    )
    block = vector_block(HANDBOOK, [1.5, 2.0], [_us(BOUNDARIES[1]), _us(BOUNDARIES[5])])
    assert block.tolist() == [[1.5, 1.0, 1.0], [2.0, 0.0, 0.0]]


def test_null_inputs_stay_null_in_sql() -> None:
    con = connect()
    got = con.execute(
        f"SELECT {select_sql(HANDBOOK, 'a', 't')} "
        "FROM (SELECT NULL::DOUBLE AS a, NULL::TIMESTAMPTZ AS t)"
    ).fetchall()
    con.close()
    assert got == [(None, None, None)]  # never a silent 0.0


def test_doctests() -> None:
    assert doctest.testmod(transforms_module).failed == 0


# definitions ----------------------------------------------------------------------------


def test_standard_transforms_keep_the_request_view_version() -> None:
    bare = FeatureView("transaction_request", None, "request", REQUEST_FEATURES, timedelta(0))
    assert bare.transforms == HANDBOOK
    assert bare.version == REQUEST_VIEW.version == "56f715c80556fb0b"  # as before transforms
    assert "transforms" not in REQUEST_VIEW.to_dict()
    assert FeatureView.from_dict(REQUEST_VIEW.to_dict()) == REQUEST_VIEW


def test_a_changed_transform_is_a_new_version_and_round_trips() -> None:
    late = RequestTransform("TX_DURING_NIGHT", "timestamp", "hour", "<=", 5)
    view = FeatureView(
        "transaction_request", None, "request", REQUEST_FEATURES, timedelta(0), transforms=(late,)
    )
    assert view.transforms == (*HANDBOOK[:2], late)
    assert view.version != REQUEST_VIEW.version
    assert view.to_dict()["transforms"] == [late.to_dict()]
    again = FeatureView.from_dict(view.to_dict())
    assert again == view
    assert again.version == view.version
    as_float = RequestTransform("TX_DURING_NIGHT", "timestamp", "hour", "<=", 5.0)
    assert FeatureView.from_dict({**view.to_dict(), "transforms": [as_float.to_dict()]}) == view


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input": "currency"}, "input"),
        ({"input": "timestamp"}, "part"),
        ({"input": "timestamp", "part": "minute"}, "part"),
        ({"input": "amount", "part": "hour"}, "part"),
        ({"input": "amount", "op": ">="}, "op"),
        ({"input": "amount", "op": "=>", "value": 1}, "op"),
        ({"input": "amount", "op": ">=", "value": float("nan")}, "value"),
        ({"input": "amount", "op": ">=", "value": True}, "value"),
        ({"input": "amount", "op": ">=", "value": "5"}, "value"),
    ],
)
def test_bad_transforms_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        RequestTransform("F", **kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_bad_request_views_name_the_field() -> None:
    night = STANDARD["TX_DURING_NIGHT"]
    with pytest.raises(ValidationError, match="needs a transform") as err:
        FeatureView("r", None, "request", ("TX_AMOUNT", "MY_FEATURE"), timedelta(0))
    assert err.value.field == "transforms"
    with pytest.raises(ValidationError, match="not one of its features"):
        FeatureView("r", None, "request", ("TX_AMOUNT",), timedelta(0), transforms=(night,))
    with pytest.raises(ValidationError, match="given twice"):
        FeatureView("r", None, "request", ("TX_DURING_NIGHT",), timedelta(0),
                    transforms=(night, night))  # fmt: skip
    with pytest.raises(ValidationError, match="batch view") as err:
        FeatureView("b", CUSTOMER, "customer_spending", ("X",),
                    timedelta(days=1), windows_days=(1,), transforms=(night,))  # fmt: skip
    assert err.value.field == "transforms"
    with pytest.raises(ValidationError) as err:
        FeatureView.from_dict({**REQUEST_VIEW.to_dict(), "transforms": [{"feature": "X"}]})
    assert err.value.field == "transforms"


# the consumers ---------------------------------------------------------------------------


def test_batch_pipeline_computes_the_request_view_like_the_handbook(
    transactions: pd.DataFrame, dataset: Path
) -> None:
    got = compute_view_frame(dataset, REQUEST_VIEW).df()
    got = got.set_index(schema.TRANSACTION_ID).sort_index()
    ref = reference_features(transactions)
    assert got.index.equals(ref.index)
    for feat in REQUEST_FEATURES:
        np.testing.assert_array_equal(
            got[feat].to_numpy(), ref[feat].to_numpy(dtype=np.float64), err_msg=feat
        )


def test_training_set_request_features_equal_serving_functions(
    tmp_path: Path, transactions: pd.DataFrame
) -> None:
    from mlsd.settings import Settings

    store = FeatureStore.open(Settings(home=tmp_path / "home"))
    store.apply()
    frame = transactions.head(500).copy()
    # given in another zone: the UTC instant decides, in training as in serving
    frame[schema.TX_DATETIME] = frame[schema.TX_DATETIME].dt.tz_convert("Asia/Kolkata")
    train = store.get_training_set(frame, list(REQUEST_FEATURES))
    store.close()
    for i, row in enumerate(frame.itertuples(index=False)):
        tx = Transaction(
            int(row.TRANSACTION_ID), int(row.CUSTOMER_ID), int(row.TERMINAL_ID),
            float(row.TX_AMOUNT), row.TX_DATETIME.to_pydatetime(),
        )  # fmt: skip
        for feat in REQUEST_FEATURES:
            assert train[feat].iloc[i] == SERVING[feat](tx), (feat, tx)


def test_training_set_refuses_a_non_numeric_amount(tmp_path: Path) -> None:
    from mlsd.settings import Settings

    store = FeatureStore.open(Settings(home=tmp_path / "home"))
    store.apply()
    frame = pd.DataFrame(
        {schema.TX_DATETIME: pd.to_datetime(["2026-11-21T03:00:00Z"]), schema.TX_AMOUNT: ["12"]}
    )
    try:
        with pytest.raises(ValidationError) as err:
            store.get_training_set(frame, ["TX_AMOUNT"])
        assert err.value.field == "TX_AMOUNT"
        weekend = store.get_training_set(frame, ["TX_DURING_WEEKEND"])  # amount not needed
        assert weekend["TX_DURING_WEEKEND"].tolist() == [1.0]
    finally:
        store.close()


def test_the_served_view_version_decides_both_training_and_online_values(
    tmp_path: Path,
) -> None:
    from mlsd.settings import Settings

    late = RequestTransform("TX_DURING_NIGHT", "timestamp", "hour", "<=", 5)
    custom = FeatureView(
        "transaction_request", None, "request", REQUEST_FEATURES, timedelta(0), transforms=(late,)
    )
    store = FeatureStore.open(Settings(home=tmp_path / "home"))
    try:
        store.apply([custom])
        at_six = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)  # night by the handbook, not here
        frame = pd.DataFrame(
            {schema.TX_DATETIME: pd.to_datetime([at_six]), schema.TX_AMOUNT: [2.5]}
        )
        train = store.get_training_set(frame, ["TX_DURING_NIGHT", "TX_AMOUNT"])
        assert train[["TX_DURING_NIGHT", "TX_AMOUNT"]].values.tolist() == [[0.0, 2.5]]
        req = {schema.TX_DATETIME: at_six, schema.TX_AMOUNT: 2.5}
        for n in (1, 40):  # the plain-Python and the numpy paths
            vec = store.online_vectors([req] * n, ["TX_AMOUNT", "TX_DURING_NIGHT"])
            assert vec.values.tolist() == [[2.5, 0.0]] * n
        assert store.view_versions()["transaction_request"] == custom.version
    finally:
        store.close()


def test_training_set_adds_request_features_in_the_order_asked(tmp_path: Path) -> None:
    from mlsd.settings import Settings

    store = FeatureStore.open(Settings(home=tmp_path / "home"))
    try:
        store.apply()
        frame = pd.DataFrame({schema.TX_DATETIME: pd.to_datetime(["2026-11-21T03:00:00Z"])})
        asked = ["TX_DURING_NIGHT", "TX_DURING_WEEKEND"]
        train = store.get_training_set(frame, asked)
        assert list(train.columns) == [schema.TX_DATETIME, *asked]
    finally:
        store.close()
