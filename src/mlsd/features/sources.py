"""Where a feature view reads its events: Parquet files, a DuckDB query, a frame, a dataset.

A `Source` is registered without copying data: the batch pipeline reads it in place each
build. Kinds, by the field given:

- `path`: a Parquet file or folder; a folder is read recursively (`**/*.parquet`), with
  Hive partitions (`day=2018-04-01/`) as columns when its sub-folders are so named;
- `query`: a DuckDB SQL query over files (`SELECT ... FROM read_parquet('...')`), the
  user's own SQL, run as a sub-query;
- `frame`: a pandas DataFrame or Arrow table held by this process (`Source.of_frame`),
  known to the registry by name only: build it in the process that defined it;
- none: the transactions of the dataset given to `FeatureStore.build` (the handbook's).

`field_mapping` renames source columns to the names the views use (entity join keys,
the event time); `timestamp_field` is the event time after mapping, `created_timestamp_field`
the optional time a row was written (the offline table's created time), `tie_break` the
column ordering events sharing a time (TRANSACTION_ID for transactions; without one,
events at one time are peers and each sees them all).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import duckdb

from mlsd.data import schema
from mlsd.errors import NotFoundError, ValidationError

DATASET: Final = "transactions"
_FRAMES: dict[str, Any] = {}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Source:
    """One event source of feature views; see the module docstring for the kinds."""

    name: str
    path: str | None = None
    query: str | None = None
    timestamp_field: str = schema.TX_DATETIME
    created_timestamp_field: str | None = None
    field_mapping: tuple[tuple[str, str], ...] = ()
    tie_break: str | None = None
    description: str = field(default="", compare=False)
    frame: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValidationError(f"invalid source name {self.name!r}", field="name")
        if isinstance(self.field_mapping, Mapping):
            object.__setattr__(self, "field_mapping", tuple(sorted(self.field_mapping.items())))
        given = [k for k in ("path", "query", "frame") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValidationError(
                f"source {self.name!r}: give one of path, query or frame, not {given}",
                field=given[1],
            )
        if self.path is not None:
            object.__setattr__(self, "path", str(Path(self.path).expanduser().resolve()))
        if not self.timestamp_field:
            raise ValidationError(
                f"source {self.name!r} needs a timestamp_field", field="timestamp_field"
            )
        if self.frame is not None:
            _FRAMES[self.name] = self.frame

    @classmethod
    def of_frame(cls, name: str, frame: Any, **fields: Any) -> Source:
        """A source over a pandas DataFrame or Arrow table, registered by name in-process."""
        return cls(name, frame=frame, **fields)

    @property
    def kind(self) -> str:
        """`path`, `query`, `frame` or `dataset`."""
        if self.path is not None:
            return "path"
        if self.query is not None:
            return "query"
        return "frame" if self.frame is not None or self.name in _FRAMES else "dataset"

    @property
    def mapping(self) -> dict[str, str]:
        """Source column -> the name views use."""
        return dict(self.field_mapping)

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-ready form (part of each view's version): no data, no frame."""
        return {
            "name": self.name,
            "kind": self.kind,
            "path": self.path,
            "query": self.query,
            "timestamp_field": self.timestamp_field,
            "created_timestamp_field": self.created_timestamp_field,
            "field_mapping": [list(p) for p in self.field_mapping],
            "tie_break": self.tie_break,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Source:
        """Rebuild from `to_dict` output (a frame source finds its frame by name)."""
        try:
            return cls(
                name=data["name"],
                path=data.get("path"),
                query=data.get("query"),
                timestamp_field=data.get("timestamp_field", schema.TX_DATETIME),
                created_timestamp_field=data.get("created_timestamp_field"),
                field_mapping=tuple((str(a), str(b)) for a, b in data.get("field_mapping", ())),
                tie_break=data.get("tie_break"),
                description=data.get("description", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"invalid source {data!r}", field="source") from exc

    # reading -----------------------------------------------------------------------------

    def relation_sql(self, con: duckdb.DuckDBPyConnection, dataset_glob: str | None) -> str:
        """A SELECT of the source's rows with mapped names; registers a frame on `con`."""
        if self.kind == "path":
            base = f"SELECT * FROM {_read_parquet(Path(str(self.path)))}"
        elif self.kind == "query":
            base = str(self.query)
        elif self.kind == "frame":
            frame = self.frame if self.frame is not None else _FRAMES.get(self.name)
            if frame is None:
                raise NotFoundError(f"frame source {self.name!r} is not loaded", field="source")
            table = f"__mlsd_frame_{self.name}"
            con.register(table, frame)
            base = f"SELECT * FROM {table}"
        else:
            if dataset_glob is None:
                raise ValidationError(
                    f"source {self.name!r} reads a dataset's transactions: give a dataset",
                    field="dataset_dir",
                )
            base = f"SELECT * FROM read_parquet('{dataset_glob}')"
        if not self.field_mapping:
            return base
        renames = ", ".join(f"{_ident(a)} AS {_ident(b)}" for a, b in self.field_mapping)
        return f"SELECT * RENAME ({renames}) FROM ({base})"

    def columns(self, con: duckdb.DuckDBPyConnection, dataset_glob: str | None) -> dict[str, str]:
        """Column name -> DuckDB type, after mapping (reads metadata, not the data)."""
        try:
            rows = con.execute(f"DESCRIBE {self.relation_sql(con, dataset_glob)}").fetchall()
        except duckdb.Error as exc:
            raise ValidationError(
                f"source {self.name!r} cannot be read: {exc}", field="source"
            ) from exc
        return {str(r[0]): str(r[1]) for r in rows}

    def identity(self, dataset_identity: str | None) -> str:
        """What a table built from this source came from (see `mlsd.features.source`)."""
        if self.kind == "dataset":
            return dataset_identity or ""
        digest = hashlib.sha256()
        if self.kind == "path":
            root = Path(str(self.path))
            files = [root] if root.is_file() else sorted(root.rglob("*.parquet"))
            for f in files:
                st = f.stat()
                digest.update(f"{f}:{st.st_size}:{st.st_mtime_ns}\n".encode())
            return f"{root}#sha256:{digest.hexdigest()}"
        digest.update(str(self.query or self.name).encode())
        return f"{self.kind}:{self.name}#sha256:{digest.hexdigest()}"


def _read_parquet(path: Path) -> str:
    if path.is_file():
        return f"read_parquet('{path}')"
    if not path.is_dir() or not any(path.rglob("*.parquet")):
        raise NotFoundError(f"no Parquet files under {path}", field="path")
    hive = any("=" in p.name for p in path.rglob("*") if p.is_dir())
    return f"read_parquet('{path}/**/*.parquet', hive_partitioning = {str(hive).lower()})"


TRANSACTIONS: Final = Source(
    DATASET, tie_break=schema.TRANSACTION_ID, description="a dataset's transactions"
)
