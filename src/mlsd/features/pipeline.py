"""The batch feature pipeline: each view's declared windows as one DuckDB query, no loops.

Windows are range frames over integer microseconds, so the bounds are exact:

- undelayed windows: (t - w, t], the current event included. Like the handbook's pandas
  `rolling('nD')`, events sharing the current timestamp but coming later (by the source's
  tie-break column, TRANSACTION_ID for transactions) are not counted yet;
- delayed windows: (t - d - w, t - d] with d the delay (the terminal risk's label delay).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import duckdb

from mlsd.data import schema
from mlsd.errors import IntegrityError, NotFoundError, ValidationError
from mlsd.features.aggregations import Aggregation
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


TIE_SLOTS: Final = 1024  # events of one entity at one time: order key us * 1024 + rank


def _needs_order(view: FeatureView) -> bool:
    """Whether events sharing a time get different values: an undelayed window, or a
    derived feature reading the current event's columns."""
    if view.kind != "window":
        return False
    aggs = {a.name for a in view.aggregations}
    undelayed = any(a.delay_us == 0 for a in view.aggregations)
    return undelayed or any(x not in aggs for d in view.derived for x in d.args)


def has_ties(con: duckdb.DuckDBPyConnection, view: FeatureView, source: str) -> bool:
    """Whether the tie correction is needed: an entity with two events at one time.

    Never for a view whose values are the same for events sharing a time (every window
    delayed, like the terminal risk), nor for a source with no tie-break column (events
    at one time are peers; unless the view reads the current event's columns, then such
    ties are an IntegrityError naming `tie_break`). More than 1,024 events of one entity
    at one time is an IntegrityError (the order key has that many slots).
    """
    tie = view.event_source.tie_break
    aggs = {a.name for a in view.aggregations}
    reads_row = any(x not in aggs for d in view.derived for x in d.args)
    if not _needs_order(view) or (tie is None and not reads_row) or view.entity is None:
        return False
    key, ts = view.entity.join_key, view.event_source.timestamp_field
    rows = con.execute(
        f'SELECT max(n) FROM (SELECT count(*) AS n FROM ({source}) GROUP BY "{key}", "{ts}")'
    ).fetchall()
    most = int(rows[0][0]) if rows and rows[0][0] is not None else 0
    if tie is None:  # peers would get different values (their own columns) at one time
        if most > 1:
            raise IntegrityError(
                f"view {view.name!r} reads the current event's columns and events of one "
                f"{key} share a time: give source {view.event_source.name!r} a tie_break "
                "column to order them",
                field="tie_break",
            )
        return False
    if most > TIE_SLOTS:
        raise IntegrityError(
            f"view {view.name!r}: {most} events of one {key} at one time (at most {TIE_SLOTS})",
            field=ts,
        )
    return most > 1


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


_SQL_FUNCTIONS: Final = {
    "count": "count(*)",
    "sum": "sum({x})",
    "mean": "avg({x})",
    "min": "min({x})",
    "max": "max({x})",
    "std": "stddev_samp({x})",
    "last": "last_value({x})",
    "count_distinct": "count(DISTINCT {x})",
}


def _frame(agg: Aggregation, ties: bool) -> str:
    """The RANGE frame of `(t - delay - window, t - delay]` over the order key.

    Without ties the key is µs, so the bounds are constants. With ties it is
    `us * 1024 + seq` (seq: the event's rank among the entity's events at its time, by the
    tie-break column), and the offsets depend on seq so that whole microseconds stay in or
    out: the lower bound is `(t - delay - window + 1 µs) * 1024`, the upper one
    `t * 1024 + seq` undelayed (later events at t excluded), `(t - delay) * 1024 + 1023`
    delayed (every event at t - delay included).
    """
    w, d = agg.window_us, agg.delay_us
    if not ties:
        hi = "CURRENT ROW" if d == 0 else f"{d} PRECEDING"
        return f"RANGE BETWEEN {d + w - 1} PRECEDING AND {hi}"
    m = TIE_SLOTS
    hi = "CURRENT ROW" if d == 0 else f"({d * m - m + 1} + seq) PRECEDING"
    return f"RANGE BETWEEN ({(d + w - 1) * m} + seq) PRECEDING AND {hi}"


def window_view_sql(view: FeatureView, source: str, ties: bool = True) -> str:
    """SQL of a window view for every event of `source`: one window function per aggregation.

    Columns: the tie-break column (if the source has one), the join key,
    `event_timestamp`, the features (DOUBLE) and `_last_at_time`.
    """
    if view.entity is None:
        raise ValidationError(f"view {view.name!r} needs an entity", field="entity")
    src = view.event_source
    key, ts, tie = view.entity.join_key, src.timestamp_field, src.tie_break
    aggs = {a.name: a for a in view.aggregations}
    columns = sorted({a.column for a in view.aggregations if a.column})
    row_cols = sorted({x for d in view.derived for x in d.args if x not in aggs})
    col_alias = {c: f"c{i}" for i, c in enumerate(dict.fromkeys([*columns, *row_cols]))}
    picks = [f'"{c}" AS {a}' for c, a in col_alias.items()]
    created = src.created_timestamp_field
    if created:
        picks.append(f'"{created}" AS cr')
    tid = f'"{tie}" AS tid, ' if tie else ""
    base = (
        f'SELECT {tid}"{key}" AS k, "{ts}"::TIMESTAMPTZ AS ts, epoch_us("{ts}") AS us'
        f"{''.join(', ' + p for p in picks)} FROM ({source})"
    )
    order = "us"
    if ties:
        base = (
            f"SELECT *, (row_number() OVER (PARTITION BY k, us ORDER BY tid) - 1) AS seq, "
            f"count(*) OVER (PARTITION BY k, us) AS n_at FROM ({base})"
        )
        order = f"us * {TIE_SLOTS} + seq"
    windows: list[str] = []
    refs: dict[str, str] = {}
    for i, agg in enumerate(view.aggregations):
        fn = _SQL_FUNCTIONS[agg.function].format(x=col_alias.get(agg.column or "", ""))
        over = f"OVER (PARTITION BY k ORDER BY {order} {_frame(agg, ties)})"
        windows.append(f"{fn} {over} AS a{i}")
        refs[agg.name] = f"a{i}"
    refs.update({c: col_alias[c] for c in row_cols})
    derived = {d.name: d.sql(refs) for d in view.derived}
    outputs = [
        f'CAST({refs[f]} AS DOUBLE) AS "{f}"' if f in aggs else f'{derived[f]} AS "{f}"'
        for f in view.features
    ]
    carry = ", ".join(
        ["k", "ts", *col_alias.values(), *(["tid"] if tie else []), *(["cr"] if created else [])]
    )
    made = ", cr AS _created" if created else ""
    last = "seq = n_at - 1" if ties else "true"
    tid_out = f'tid AS "{tie}", ' if tie else ""
    return (
        f'SELECT {tid_out}k AS "{key}", ts AS {EVENT_TS}, {", ".join(outputs)}, '
        f"{last} AS {LAST_FLAG}{made} "
        f"FROM (SELECT {carry}{', seq, n_at' if ties else ''}, {', '.join(windows)} "
        f"FROM ({base}))"
    )


def sql_view_sql(view: FeatureView, source: str) -> str:
    """SQL of a batch-only `sql` view: the user's query with `{source}` as the source rows."""
    if view.entity is None:
        raise ValidationError(f"view {view.name!r} needs an entity", field="entity")
    key, ts = view.entity.join_key, view.event_source.timestamp_field
    query = str(view.sql).replace("{source}", f"({source})")
    feats = ", ".join(f'CAST("{f}" AS DOUBLE) AS "{f}"' for f in view.features)
    created = view.event_source.created_timestamp_field
    made = f', "{created}" AS _created' if created else ""
    return (
        f'SELECT "{key}", "{ts}"::TIMESTAMPTZ AS {EVENT_TS}, {feats}, true AS {LAST_FLAG}'
        f"{made} FROM ({query})"
    )


def view_sql(view: FeatureView, source: str, ties: bool = True) -> str:
    """SQL computing one view for every event of `source`.

    Batch views' columns: the tie-break column (TRANSACTION_ID for transactions), the join
    key, `event_timestamp`, the features (DOUBLE) and `_last_at_time` (true for the last
    event of an entity at a given timestamp). With `ties=False` (no entity has two events
    at one time, see `has_ties`) the tie corrections, and the sort they need, are left out.
    Request views are their transforms (`request_view_sql`).
    """
    if view.kind == "request":
        return request_view_sql(view, source)
    if view.kind == "sql":
        return sql_view_sql(view, source)
    if view.kind != "window":
        raise ValidationError(f"view {view.name!r} ({view.kind}) is not SQL", field="kind")
    return window_view_sql(view, source, ties)


def offline_sql(view: FeatureView, source: str, created_us: int, ties: bool = True) -> str:
    """SQL of the offline table: one row per (entity, event time), sorted by event time."""
    if view.kind == "request":
        raise ValidationError(f"view {view.name!r} is computed at request time", field="view")
    per_tx = view_sql(view, source, ties)
    key = view.entity.join_key if view.entity else ""
    feats = ", ".join(f'"{f}"' for f in view.features)
    created = view.event_source.created_timestamp_field
    made = f"make_timestamptz({created_us})"
    if created:  # the row's own created time, carried by view_sql
        made = "_created::TIMESTAMPTZ"
    return (
        f'SELECT "{key}", {EVENT_TS}, {made} AS {CREATED_TS}, '
        f"{feats} FROM ({per_tx}) WHERE {LAST_FLAG} ORDER BY {EVENT_TS}"
    )


def view_source_sql(
    con: duckdb.DuckDBPyConnection, view: FeatureView, dataset_dir: Path | None
) -> str:
    """The SQL of a view's source rows: its own source, or the dataset's transactions."""
    src = view.event_source
    if src.kind == "dataset":
        if dataset_dir is None:
            raise ValidationError(
                f"view {view.name!r} reads a dataset's transactions: give a dataset",
                field="dataset_dir",
            )
        return source_sql(transactions_glob(Path(dataset_dir)))
    return src.relation_sql(con, None)


def compute_view_frame(
    dataset_dir: Path | None, view: FeatureView, con: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyRelation:
    """Every event's values of one view (for checks; `build` writes batch tables)."""
    con = con or connect()
    source = view_source_sql(con, view, dataset_dir)
    return con.sql(view_sql(view, source, has_ties(con, view, source)))


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
