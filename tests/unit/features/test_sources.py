"""Sources are read in place: a frame (pandas or Arrow), a DuckDB query, mapped columns."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from mlsd.errors import NotFoundError, ValidationError
from mlsd.features.aggregations import Aggregation
from mlsd.features.definitions import Entity, FeatureView
from mlsd.features.pipeline import compute_view_frame
from mlsd.features.sources import Source
from mlsd.features.store import FeatureStore
from mlsd.settings import Settings

USER = Entity("user", "user_id")
DAY = timedelta(days=1)


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "uid": [1, 1, 1, 2],
            "at": pd.to_datetime(
                ["2024-01-01 10:00", "2024-01-01 20:00", "2024-01-03 09:00", "2024-01-01 10:00"],
                utc=True,
            ),
            "written": pd.to_datetime(["2024-01-05"] * 4, utc=True),
            "value": [1.0, 2.0, 4.0, 8.0],
        }
    )


def _view(src: Source) -> FeatureView:
    return FeatureView(
        "totals", USER, "window", ("SUM_1D", "MAX_2D"), 2 * DAY, source=src,
        aggregations=(Aggregation("SUM_1D", "sum", "value", DAY),
                      Aggregation("MAX_2D", "max", "value", 2 * DAY)),
    )  # fmt: skip


WANT = {"SUM_1D": [1.0, 3.0, 4.0, 8.0], "MAX_2D": [1.0, 2.0, 4.0, 8.0]}


@pytest.mark.parametrize("kind", ["pandas", "arrow"])
def test_a_frame_source_with_mapped_columns(kind: str) -> None:
    frame = _events() if kind == "pandas" else pa.Table.from_pandas(_events())
    src = Source.of_frame(f"events_{kind}", frame, timestamp_field="at",
                          field_mapping={"uid": "user_id"})  # fmt: skip
    assert src.kind == "frame"
    assert src.to_dict()["kind"] == "frame"  # no data in the definition: the name only
    got = compute_view_frame(None, _view(src)).df().sort_values(["user_id", "event_timestamp"])
    assert {f: got[f].tolist() for f in WANT} == WANT


def test_a_query_source_and_created_times(tmp_path: Path) -> None:
    _events().to_parquet(tmp_path / "e.parquet")
    src = Source(
        "q",
        query=f"SELECT uid AS user_id, \"at\", written, value FROM '{tmp_path}/*.parquet'",
        timestamp_field="at", created_timestamp_field="written",
    )  # fmt: skip
    store = FeatureStore.open(Settings(home=tmp_path / "home"))
    try:
        view = _view(src)
        store.apply([view])
        assert store.build().rows == {"totals": 4}
        table = pd.read_parquet(store.offline.parts("totals", view.version)[0])
        assert (table["created_timestamp"] == pd.Timestamp("2024-01-05", tz="UTC")).all()
        assert sorted(table["SUM_1D"]) == sorted(WANT["SUM_1D"])
    finally:
        store.close()


def test_sources_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="one of path, query or frame") as err:
        Source("two", path=str(tmp_path), query="SELECT 1")
    assert err.value.field == "query"
    with pytest.raises(NotFoundError, match="no Parquet files"):
        compute_view_frame(None, _view(Source("empty", path=str(tmp_path))))
    with pytest.raises(ValidationError, match="give a dataset"):
        compute_view_frame(None, _view(Source("transactions", timestamp_field="at")))


def test_peers_cannot_feed_a_feature_of_the_current_event() -> None:
    from mlsd.errors import IntegrityError
    from mlsd.features.aggregations import Derived

    src = Source.of_frame("peers", _events(), timestamp_field="at",
                          field_mapping={"uid": "user_id"})  # fmt: skip
    view = FeatureView(
        "peer_view", USER, "window", ("SUM_1D", "D"), DAY, source=src,
        aggregations=(Aggregation("SUM_1D", "sum", "value", DAY),),
        derived=(Derived("D", "diff", ("value", "SUM_1D")),),
    )  # fmt: skip
    assert compute_view_frame(None, view).df()["D"].notna().all()  # no ties: fine
    tied = _events().assign(at=pd.Timestamp("2024-01-01", tz="UTC"))
    src = Source.of_frame("peers", tied, timestamp_field="at", field_mapping={"uid": "user_id"})
    with pytest.raises(IntegrityError, match="give source 'peers' a tie_break") as err:
        compute_view_frame(None, replace(view, source=src))
    assert err.value.field == "tie_break"
