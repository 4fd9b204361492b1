"""The batch feature pipeline: the handbook's windowed features in DuckDB, no Python loops.

Windows are range frames over integer microseconds, so the bounds are exact:

- customer views: (t - n days, t], the current transaction included. Like the
  handbook's pandas `rolling('nD')`, rows sharing the current timestamp but coming
  later (by TRANSACTION_ID) are not counted yet.
- terminal views: (t - d - n days, t - d days] with d the label delay; 0 risk when empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import duckdb

from mlsd.data import schema
from mlsd.errors import IntegrityError, NotFoundError, ValidationError
from mlsd.features.definitions import FeatureView
from mlsd.features.transforms import select_sql

DAY_US: Final = 86_400_000_000
EVENT_TS: Final = "event_timestamp"
CREATED_TS: Final = "created_timestamp"
LAST_FLAG: Final = "_last_at_time"


def connect(memory_limit: str = "1500MB", threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection in UTC with a memory cap."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def transactions_glob(dataset_dir: Path) -> str:
    """The Parquet glob of a dataset's transactions, checked to exist."""
    folder = Path(dataset_dir) / schema.TRANSACTIONS_DIR
    if not folder.is_dir() or not any(folder.glob("*.parquet")):
        raise NotFoundError(f"no transactions Parquet files under {folder}", field="dataset_dir")
    return str(folder / "*.parquet")


def source_sql(glob: str) -> str:
    """The transactions source, with the columns the pipeline reads."""
    names = (schema.TRANSACTION_ID, schema.TX_DATETIME, schema.CUSTOMER_ID, schema.TERMINAL_ID)
    cols = ", ".join((*names, schema.TX_AMOUNT, schema.TX_FRAUD))
    return f"SELECT {cols} FROM read_parquet('{glob}')"


def has_ties(con: duckdb.DuckDBPyConnection, view: FeatureView, source: str) -> bool:
    """Whether the tie correction is needed: an entity with two transactions at one time.

    Never for delayed (terminal) views: their windows end before t, so transactions
    sharing a time get identical values and need no correction (nor deduplication).
    """
    if view.kind == "terminal_risk":
        return False
    key = view.entity.join_key if view.entity else ""
    row = con.execute(
        f"SELECT EXISTS (SELECT 1 FROM ({source}) GROUP BY {key}, {schema.TX_DATETIME} "
        "HAVING count(*) > 1)"
    ).fetchone()
    return bool(row and row[0])


def request_view_sql(view: FeatureView, source: str) -> str:
    """SQL of a request view for every transaction of `source`: its transforms as SQL.

    Columns: TRANSACTION_ID, `event_timestamp`, the features (DOUBLE). Nothing is stored:
    serving computes the same transforms from each request (`RequestTransform.row`).
    """
    if view.kind != "request":
        raise ValidationError(f"view {view.name!r} is not a request view", field="view")
    return (
        f"SELECT {schema.TRANSACTION_ID}, {schema.TX_DATETIME} AS {EVENT_TS}, "
        f"{select_sql(view.transforms)} FROM ({source})"
    )


def view_sql(view: FeatureView, source: str, ties: bool = True) -> str:
    """SQL computing one view for every transaction of `source`.

    Batch views' columns: TRANSACTION_ID, the join key, `event_timestamp`, the features
    (DOUBLE) and `_last_at_time` (true for the last transaction of an entity at a given
    timestamp). With `ties=False` (no entity has two transactions at one time, see
    `has_ties`) the tie corrections, and the sort they need, are left out. Request views
    are their transforms (`request_view_sql`).
    """
    if view.kind == "request":
        return request_view_sql(view, source)
    if view.entity is None:
        raise ValidationError(f"view {view.name!r} needs an entity", field="entity")
    key = view.entity.join_key
    base = (
        f"SELECT {schema.TRANSACTION_ID} AS tid, {key} AS k, {schema.TX_DATETIME} AS ts, "
        f"epoch_us({schema.TX_DATETIME}) AS us, {schema.TX_AMOUNT}::DOUBLE AS amt, "
        f"{schema.TX_FRAUD}::DOUBLE AS fraud FROM ({source})"
    )
    later = (
        "OVER (PARTITION BY k, us ORDER BY tid ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)"
    )
    windows: list[str] = (
        [f"count(*) {later} AS later_n", f"sum(amt) {later} AS later_s"]
        if ties
        else ["0 AS later_n", "0.0 AS later_s"]
    )
    outputs: list[str] = []
    for i, (w, (n_name, v_name)) in enumerate(
        zip(
            view.windows_days,
            zip(view.features[::2], view.features[1::2], strict=True),
            strict=True,
        )
    ):
        if view.kind == "customer_spending":
            frame = f"RANGE BETWEEN {w * DAY_US - 1} PRECEDING AND CURRENT ROW"
            over = f"OVER (PARTITION BY k ORDER BY us {frame})"
            windows += [f"count(*) {over} AS n{i}", f"sum(amt) {over} AS s{i}"]
            n_expr = f"(n{i} - later_n)"
            outputs += [
                f"{n_expr}::DOUBLE AS {n_name}",
                f"(s{i} - coalesce(later_s, 0.0)) / {n_expr} AS {v_name}",
            ]
        else:
            d = view.delay_days
            frame = f"RANGE BETWEEN {(d + w) * DAY_US - 1} PRECEDING AND {d * DAY_US} PRECEDING"
            over = f"OVER (PARTITION BY k ORDER BY us {frame})"
            windows += [f"count(*) {over} AS n{i}", f"sum(fraud) {over} AS f{i}"]
            outputs += [
                f"n{i}::DOUBLE AS {n_name}",
                f"CASE WHEN n{i} = 0 THEN 0.0 ELSE f{i} / n{i} END AS {v_name}",
            ]
    return (
        f"SELECT tid AS {schema.TRANSACTION_ID}, k AS {key}, ts AS {EVENT_TS}, "
        f"{', '.join(outputs)}, later_n = 0 AS {LAST_FLAG} "
        f"FROM (SELECT tid, k, ts, {', '.join(windows)} FROM ({base}))"
    )


def offline_sql(view: FeatureView, source: str, created_us: int, ties: bool = True) -> str:
    """SQL of the offline table: one row per (entity, event time), sorted by event time."""
    if view.kind == "request":
        raise ValidationError(f"view {view.name!r} is computed at request time", field="view")
    per_tx = view_sql(view, source, ties)
    key = view.entity.join_key if view.entity else ""
    feats = ", ".join(view.features)
    return (
        f"SELECT {key}, {EVENT_TS}, make_timestamptz({created_us}) AS {CREATED_TS}, "
        f"{feats} FROM ({per_tx}) WHERE {LAST_FLAG} ORDER BY {EVENT_TS}"
    )


def compute_view_frame(dataset_dir: Path, view: FeatureView) -> duckdb.DuckDBPyRelation:
    """Every transaction's values of one view (for checks; `build` writes batch tables)."""
    con = connect()
    return con.sql(view_sql(view, source_sql(transactions_glob(dataset_dir))))


def write_offline(
    con: duckdb.DuckDBPyConnection, view: FeatureView, source: str, created_us: int, out: Path
) -> int:
    """Compute one batch view and write its offline Parquet table; the row count."""
    if view.kind == "embedding":  # an SVD per refresh, not SQL windows
        from mlsd.features.embeddings import write_embedding_offline

        return write_embedding_offline(view, source, created_us, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    try:
        sql = offline_sql(view, source, created_us, has_ties(con, view, source))
        con.execute(f"COPY ({sql}) TO '{tmp}' (FORMAT parquet, ROW_GROUP_SIZE 122880)")
    except duckdb.Error as exc:
        tmp.unlink(missing_ok=True)
        raise IntegrityError(
            f"cannot compute view {view.name!r} from the dataset: {exc}", field="dataset_dir"
        ) from exc
    tmp.replace(out)
    row = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()
    return int(row[0]) if row else 0
