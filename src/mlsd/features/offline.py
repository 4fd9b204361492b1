"""The offline store: feature tables as Parquet, point-in-time joins and time travel in DuckDB.

Layout: `<root>/<view>/<version>/part-<created µs>.parquet`, columns: the join key,
`event_timestamp`, `created_timestamp`, then the features.

Point-in-time rule: for an entity row at time t, the latest feature row with
event time <= t; ties on event time go to the later created time; a row older than
t - TTL counts as missing (both TTL ends inclusive). Entity rows are never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.errors import NotFoundError, ValidationError
from mlsd.features.definitions import FeatureView
from mlsd.features.pipeline import CREATED_TS, EVENT_TS, connect
from mlsd.features.transforms import RequestTransform, select_sql

ROW = "__mlsd_row"
TS = "__mlsd_ts"


@dataclass(frozen=True)
class ViewRequest:
    """Features asked of one view version."""

    view: FeatureView
    version: str
    features: tuple[str, ...]


class OfflineStore:
    """Parquet feature tables under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, view: str, version: str) -> Path:
        """The folder of a view version's table."""
        return self.root / view / version

    def parts(self, view: str, version: str) -> list[Path]:
        """The Parquet parts of a view version, raising NotFoundError when none."""
        parts = sorted(self.folder(view, version).glob("part-*.parquet"))
        if not parts:
            raise NotFoundError(
                f"no offline table for view {view!r} version {version} (run `features build`)",
                field="view",
            )
        return parts

    def table_sql(self, view: FeatureView, version: str) -> str:
        """SQL of a view's rows, one per (key, event time): the latest created wins."""
        parts = self.parts(view.name, version)
        files = ", ".join(f"'{p}'" for p in parts)
        key = view.entity.join_key if view.entity else ""
        if len(parts) == 1:  # a part holds one row per (key, event time): written so
            return f"SELECT * FROM read_parquet([{files}])"
        return (  # of equal created times, the later part (names sort by creation)
            f"SELECT * EXCLUDE (filename) FROM read_parquet([{files}], filename = true) "
            f"QUALIFY row_number() OVER (PARTITION BY {key}, {EVENT_TS} "
            f"ORDER BY {CREATED_TS} DESC, filename DESC) = 1"
        )


def check_entity_frame(
    entity_df: pd.DataFrame, timestamp_column: str, keys: Sequence[str]
) -> pd.Series:
    """The entity timestamps as UTC microseconds; clear errors for bad frames."""
    if timestamp_column not in entity_df.columns:
        raise ValidationError(
            f"entity frame has no timestamp column {timestamp_column!r}", field=timestamp_column
        )
    ts = entity_df[timestamp_column]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_datetime64_dtype(ts.dtype):
            raise ValidationError(
                f"timestamp column {timestamp_column!r} is naive; give UTC-aware timestamps",
                field=timestamp_column,
            )
        raise ValidationError(
            f"timestamp column {timestamp_column!r} is not a datetime ({ts.dtype})",
            field=timestamp_column,
        )
    if ts.isna().any():
        raise ValidationError(
            f"timestamp column {timestamp_column!r} has nulls", field=timestamp_column
        )
    for key in keys:
        if key not in entity_df.columns:
            raise ValidationError(f"entity frame has no join key column {key!r}", field=key)
        if not pd.api.types.is_integer_dtype(entity_df[key].dtype):
            raise ValidationError(f"join key {key!r} must be integers", field=key)
    utc: pd.Series = ts.dt.tz_convert("UTC").dt.as_unit("us")
    return utc


def _entity_rows(ts: pd.Series) -> pd.DataFrame:
    """Row positions and UTC times, for DuckDB. `ts.to_numpy()` would box every aware time
    into a Timestamp object (about 4 s per million rows); the reset series stays datetime64."""
    return pd.DataFrame({ROW: np.arange(len(ts), dtype=np.int64), TS: ts.reset_index(drop=True)})


def point_in_time_join(
    store: OfflineStore,
    entity_df: pd.DataFrame,
    requests: Sequence[ViewRequest],
    timestamp_column: str,
    memory_limit: str = "2500MB",
) -> pd.DataFrame:
    """The requested features for every entity row, in entity order (one ASOF join per view)."""
    keys = list(dict.fromkeys(r.view.entity.join_key for r in requests if r.view.entity))
    ts = check_entity_frame(entity_df, timestamp_column, keys)
    if not requests:
        return pd.DataFrame(index=entity_df.index)
    ent = _entity_rows(ts)
    for key in keys:
        ent[key] = entity_df[key].to_numpy(dtype=np.int64)
    con = connect(memory_limit=memory_limit)
    con.register("ent", ent)
    n = len(entity_df)
    out: dict[str, np.ndarray] = {}
    try:
        for req in requests:  # one ASOF join per view; rows scattered back by position
            key = req.view.entity.join_key if req.view.entity else ""
            fresh = f"epoch_us(e.{TS}) - epoch_us(f.{EVENT_TS}) <= {req.view.ttl_us}"
            cols = ", ".join(
                f'CASE WHEN {fresh} THEN f."{feat}" END AS "{feat}"' for feat in req.features
            )
            got = con.execute(
                f"SELECT e.{ROW}, {cols} FROM (SELECT {ROW}, {TS}, {key} FROM ent) e "
                f"ASOF LEFT JOIN ({store.table_sql(req.view, req.version)}) f "
                f"ON e.{key} = f.{key} AND e.{TS} >= f.{EVENT_TS}"
            ).fetchnumpy()
            rows = np.asarray(got[ROW], dtype=np.int64)
            for feat in req.features:
                column = np.full(n, np.nan)
                column[rows] = np.ma.filled(np.ma.asarray(got[feat], dtype=np.float64), np.nan)
                out[feat] = column
    finally:
        con.close()
    return pd.DataFrame(out, index=entity_df.index)


def request_columns(
    entity_df: pd.DataFrame, transforms: Sequence[RequestTransform], timestamp_column: str
) -> pd.DataFrame:
    """Request-time features of every entity row: the transforms rendered to DuckDB SQL.

    The same definitions serving renders to Python (`RequestTransform.row`); the amount
    comes from the frame's TX_AMOUNT column, the time from `timestamp_column` (UTC).
    """
    ts = check_entity_frame(entity_df, timestamp_column, [])
    ent = _entity_rows(ts)
    if any(t.input == "amount" for t in transforms):
        amount = entity_df.get(schema.TX_AMOUNT)
        if amount is None:
            raise ValidationError("request features need a TX_AMOUNT column", field="TX_AMOUNT")
        if not pd.api.types.is_numeric_dtype(amount.dtype) or pd.api.types.is_bool_dtype(
            amount.dtype
        ):
            raise ValidationError(
                f"TX_AMOUNT must be numeric, got {amount.dtype}", field="TX_AMOUNT"
            )
        ent[schema.TX_AMOUNT] = amount.to_numpy(dtype=np.float64, na_value=np.nan)
    con = connect()
    try:
        con.register("ent", ent)
        got = con.execute(
            f"SELECT {ROW}, {select_sql(transforms, schema.TX_AMOUNT, TS)} FROM ent"
        ).fetchnumpy()
    finally:
        con.close()
    rows = np.asarray(got[ROW], dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    for t in transforms:
        column = np.full(len(entity_df), np.nan)
        column[rows] = np.ma.filled(np.ma.asarray(got[t.feature], dtype=np.float64), np.nan)
        out[t.feature] = column
    return pd.DataFrame(out, index=entity_df.index)


def as_of(store: OfflineStore, req: ViewRequest, when: datetime) -> pd.DataFrame:
    """Time travel: every entity's features as of `when` (within TTL), one row per entity."""
    if when.tzinfo is None:
        raise ValidationError("as-of time must be timezone-aware (UTC)", field="as_of")
    key = req.view.entity.join_key if req.view.entity else ""
    when_us = int(pd.Timestamp(when).tz_convert("UTC").value // 1000)
    cols = ", ".join(f'"{f}"' for f in req.features)
    sql = (
        f"SELECT {key}, {EVENT_TS}, {cols} FROM ({store.table_sql(req.view, req.version)}) "
        f"WHERE epoch_us({EVENT_TS}) <= {when_us} "
        f"QUALIFY row_number() OVER (PARTITION BY {key} "
        f"ORDER BY {EVENT_TS} DESC, {CREATED_TS} DESC) = 1"
    )
    con = connect()
    out = con.execute(
        f"SELECT * FROM ({sql}) WHERE {when_us} - epoch_us({EVENT_TS}) <= {req.view.ttl_us} "
        f"ORDER BY {key}"
    ).df()
    con.close()
    return out
