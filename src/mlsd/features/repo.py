"""A feature repository: definitions as Python code in the user's own folder (no YAML).

`load_repo(path)` imports every `.py` file of a folder (or one file), the folder put first
on `sys.path` so its modules can import each other, and collects the `Entity`, `Source`
and `FeatureView` objects they define at module level. `validate` checks every view
against its source's columns (read from the files' metadata, not their data): join keys,
the event time, each aggregation's column and type, the derived features' operands, a SQL
view's output. `apply_repo` validates everything first and registers the views in one
registry transaction, so a bad definition leaves the registry as it was.

    my_features/
      sources.py    payments = Source("payments", path="data/payments", timestamp_field="ts")
      customer.py   spending = FeatureView("spending", customer, "window", (...), ...)
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import duckdb

from mlsd.data import schema
from mlsd.errors import MlsdError, ValidationError
from mlsd.features.aggregations import FUNCTIONS
from mlsd.features.definitions import Entity, FeatureView
from mlsd.features.pipeline import connect
from mlsd.features.sources import Source

#: the columns of a dataset's transactions, as the pipeline reads them (`source_sql`)
DATASET_COLUMNS: Final = {
    schema.TRANSACTION_ID: "BIGINT",
    schema.TX_DATETIME: "TIMESTAMP WITH TIME ZONE",
    schema.CUSTOMER_ID: "BIGINT",
    schema.TERMINAL_ID: "BIGINT",
    schema.TX_AMOUNT: "DOUBLE",
    schema.TX_FRAUD: "TINYINT",
}
_NUMERIC: Final = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "BOOLEAN",
)  # fmt: skip
_INTEGER: Final = _NUMERIC[:10]
_TIME: Final = ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "DATE")


@dataclass
class Repo:
    """What a definitions folder holds, in the order found."""

    root: Path
    files: list[Path] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    views: list[FeatureView] = field(default_factory=list)


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValidationError(f"no definitions folder or file at {path}", field="path")
    return sorted(
        p
        for p in path.rglob("*.py")
        if not any(part.startswith((".", "__pycache__")) for part in p.relative_to(path).parts)
    )


def _import(file: Path, root: Path, tag: str) -> ModuleType:
    rel = file.relative_to(root).with_suffix("") if file != root else Path(file.stem)
    name = f"_mlsd_repo_{tag}." + ".".join(rel.parts).replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ValidationError(f"{file} is not an importable Python file", field="path")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except MlsdError as exc:  # a definition refused by its own constructor
        raise ValidationError(f"{file}: {exc.message}", field=exc.field) from exc
    except Exception as exc:  # the user's module failed: name the file, never a traceback
        raise ValidationError(
            f"{file} failed to import: {type(exc).__name__}: {exc}", field="path"
        ) from exc
    return module


def load_repo(path: Path) -> Repo:
    """Import a definitions folder (or file) and collect what it defines."""
    path = Path(path).expanduser().resolve()
    files = _files(path)
    if not files:
        raise ValidationError(f"no .py files under {path}", field="path")
    root = path if path.is_dir() else path.parent
    tag = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    repo = Repo(root, files)
    seen: set[int] = set()
    before = set(sys.modules)
    sys.path.insert(0, str(root))
    try:
        for file in files:
            module = _import(file, root, tag)
            for value in vars(module).values():
                if id(value) in seen:
                    continue
                if isinstance(value, FeatureView):
                    repo.views.append(value)
                elif isinstance(value, Source):
                    repo.sources.append(value)
                elif isinstance(value, Entity):
                    repo.entities.append(value)
                else:
                    continue
                seen.add(id(value))
    finally:
        sys.path.remove(str(root))
        for name in set(sys.modules) - before:  # the folder's own modules, imported by
            where = getattr(sys.modules[name], "__file__", None) or ""  # each other: the
            if Path(where).resolve().is_relative_to(root):  # next load reads them afresh
                del sys.modules[name]
    return repo


# validation --------------------------------------------------------------------------


def _problems(view: FeatureView, cols: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(field, message) for every way `view` does not fit its source's columns."""
    src = view.event_source
    key = view.entity.join_key if view.entity else None
    if key is not None:
        if key not in cols:
            yield "entity", f"join key {key!r} is not a column of source {src.name!r}"
        elif not cols[key].startswith(_INTEGER):
            yield "entity", f"join key {key!r} must be integers, is {cols[key]}"
    ts = src.timestamp_field
    if ts not in cols:
        yield "timestamp_field", f"source {src.name!r} has no time column {ts!r}"
    elif not cols[ts].startswith(_TIME):
        yield "timestamp_field", f"time column {ts!r} must be a timestamp, is {cols[ts]}"
    for name in (src.created_timestamp_field, src.tie_break):
        if name and name not in cols:
            yield "source", f"source {src.name!r} has no column {name!r}"
    for agg in view.aggregations:
        if agg.column is None:
            continue
        if agg.column not in cols:
            yield (
                f"aggregations.{agg.name}.column",
                (
                    f"aggregation {agg.name!r} reads {agg.column!r}, not a column of "
                    f"source {src.name!r}"
                ),
            )
        elif FUNCTIONS[agg.function][1] and not cols[agg.column].startswith(_NUMERIC):
            yield (
                f"aggregations.{agg.name}.column",
                (
                    f"aggregation {agg.name!r}: {agg.function} needs a number, "
                    f"{agg.column!r} is {cols[agg.column]}"
                ),
            )
    aggs = {a.name for a in view.aggregations}
    for d in view.derived:
        for arg in d.args:
            if arg in aggs:
                continue
            if arg not in cols:
                yield (
                    f"derived.{d.name}.args",
                    (
                        f"derived {d.name!r} uses {arg!r}: not an aggregation of the view "
                        f"nor a column of source {src.name!r}"
                    ),
                )
            elif not cols[arg].startswith(_NUMERIC):
                yield (
                    f"derived.{d.name}.args",
                    (f"derived {d.name!r} uses column {arg!r} of type {cols[arg]}, not a number"),
                )


def _sql_problems(
    view: FeatureView, con: duckdb.DuckDBPyConnection, source: str
) -> Iterator[tuple[str, str]]:
    query = str(view.sql).replace("{source}", f"({source})")
    try:
        rows = con.execute(f"DESCRIBE {query}").fetchall()
    except duckdb.Error as exc:
        yield "sql", f"the query does not run on source {view.event_source.name!r}: {exc}"
        return
    cols = {str(r[0]): str(r[1]) for r in rows}
    key = view.entity.join_key if view.entity else ""
    ts = view.event_source.timestamp_field
    for name, what in ((key, "join key"), (ts, "time column")):
        if name not in cols:
            yield "sql", f"the query returns no {what} {name!r}"
    for feat in view.features:
        if feat not in cols:
            yield "features", f"the query returns no feature {feat!r}"
        elif not cols[feat].startswith(_NUMERIC):
            yield "features", f"feature {feat!r} is {cols[feat]}, not a number"


def validate(views: Sequence[FeatureView], entities: Sequence[Entity] = ()) -> None:
    """ValidationError (field `view.field`) naming every problem; nothing when all fit."""
    problems: list[tuple[str, str, str]] = []
    by_name: dict[str, FeatureView] = {}
    for view in views:
        if view.name in by_name and by_name[view.name] != view:
            problems.append((view.name, "name", "two different views are named so"))
        by_name[view.name] = view
    keys: dict[str, str] = {}
    for ent in [*entities, *(v.entity for v in views if v.entity)]:
        if keys.setdefault(ent.name, ent.join_key) != ent.join_key:
            problems.append((ent.name, "join_key", "entity defined with two join keys"))
    con = connect()
    columns: dict[str, dict[str, str]] = {}
    try:
        for view in by_name.values():
            if view.kind not in ("window", "sql"):
                continue
            src = view.event_source
            try:
                if src.name not in columns:
                    columns[src.name] = (
                        {src.mapping.get(c, c): t for c, t in DATASET_COLUMNS.items()}
                        if src.kind == "dataset"
                        else src.columns(con, None)
                    )
            except MlsdError as exc:
                problems.append((view.name, "source", exc.message))
                continue
            found = list(_problems(view, columns[src.name]))
            if view.kind == "sql" and not found:
                source = (
                    f"SELECT * FROM (VALUES {_dataset_row()}) t({', '.join(DATASET_COLUMNS)})"
                    if src.kind == "dataset"
                    else src.relation_sql(con, None)
                )
                found += list(_sql_problems(view, con, source))
            problems += [(view.name, f, m) for f, m in found]
    finally:
        con.close()
    if problems:
        lines = "; ".join(f"view {v!r}, {f}: {m}" for v, f, m in problems)
        first = problems[0]
        raise ValidationError(f"invalid definitions: {lines}", field=f"{first[0]}.{first[1]}")


def _dataset_row() -> str:
    """One typed row of a dataset's columns, to DESCRIBE a SQL view over a dataset."""
    values: dict[str, Any] = {
        "BIGINT": "0::BIGINT",
        "TIMESTAMP WITH TIME ZONE": "'2018-04-01 00:00:00+00'::TIMESTAMPTZ",
        "DOUBLE": "0.0::DOUBLE",
        "TINYINT": "0::TINYINT",
    }
    return "(" + ", ".join(values[t] for t in DATASET_COLUMNS.values()) + ")"


def check_repo(path: Path) -> Repo:
    """Load and validate a definitions folder without registering anything."""
    repo = load_repo(path)
    if not repo.views:
        raise ValidationError(f"no FeatureView defined under {repo.root}", field="path")
    validate(repo.views, repo.entities)
    unique: dict[str, FeatureView] = {}
    for view in repo.views:  # one view imported by two modules is one view
        unique.setdefault(view.name, view)
    repo.views = list(unique.values())
    return repo
