"""Bring your own transactions: validate an external table into a dataset folder.

`import_transactions` reads a Parquet or CSV file (or a folder of Parquet files), maps its
columns onto mlsd's (`schema.TX_COLUMNS`), checks every row, and writes the same layout as
the simulator (`mlsd.data.io`): one file per UTC day whatever the input order, profile
tables, and a manifest whose provenance is the source itself (its path and sha256, the
column mapping, the label delay), not a simulator seed.

Every row in is a row out or a counted rejection with its reason; the rejected rows are
written beside the dataset (`rejected.parquet`, with a `REASON` column), so nothing is
silently lost. Checks, per row: the required values present and of their type, a
non-negative finite amount, a label of 0 or 1, a transaction id not seen before (the first
occurrence is kept). Whole-file problems (a missing column, naive timestamps without a
stated time zone, nothing left to write) refuse the import and write nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.data.io import FORMAT, check_target, replace_folder, sha256_of, write_days
from mlsd.errors import NotFoundError, ValidationError

#: Columns an import must provide (after the mapping).
REQUIRED = (
    schema.TRANSACTION_ID,
    schema.TX_DATETIME,
    schema.CUSTOMER_ID,
    schema.TERMINAL_ID,
    schema.TX_AMOUNT,
    schema.TX_FRAUD,
)
#: Written beside the dataset: every rejected input row, with its reason.
REJECTED_FILE = "rejected.parquet"
REASON = "REASON"


@dataclass
class ImportReport:
    """What an import did: rows in, rows written, rejections by reason, days, files."""

    source: str
    rows_in: int
    rows_out: int
    rejected: dict[str, int] = field(default_factory=dict)
    start_date: str = ""
    end_date: str = ""
    days: int = 0
    out: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        return {
            "source": self.source,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rejected": dict(self.rejected),
            "start_date": self.start_date,
            "end_date": self.end_date,
            "days": self.days,
            "out": self.out,
        }


def _source_files(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(source.rglob("*.parquet"))
        if not files:
            raise NotFoundError(f"{source} holds no Parquet files", field="source")
        return files
    if not source.is_file():
        raise NotFoundError(f"no file or folder at {source}", field="source")
    if source.suffix.lower() not in (".parquet", ".csv"):
        raise ValidationError(
            f"{source.name}: give a .parquet or .csv file, or a folder of Parquet files",
            field="source",
        )
    return [source]


def read_source(source: Path) -> pd.DataFrame:
    """The source's rows, as they are (CSV values as text)."""
    frames = []
    for path in _source_files(source):
        try:
            if path.suffix.lower() == ".csv":
                frames.append(pd.read_csv(path, dtype=str, keep_default_na=False))
            else:
                frames.append(pd.read_parquet(path))
        except (OSError, ValueError) as exc:
            raise ValidationError(f"cannot read {path}: {exc}", field="source") from exc
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _sources_hash(source: Path) -> str:
    files = _source_files(source)
    if len(files) == 1:
        return sha256_of(files[0])
    listing = "".join(f"{p.relative_to(source)}={sha256_of(p)}\n" for p in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def _mapped(raw: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    unknown = sorted(set(columns) - set(schema.TX_COLUMNS))
    if unknown:
        raise ValidationError(
            f"--map names {unknown[0]!r}, not an mlsd column; the columns are "
            f"{', '.join(schema.TX_COLUMNS)}",
            field=unknown[0],
        )
    wanted = {ours: columns.get(ours, ours) for ours in schema.TX_COLUMNS}
    for ours in REQUIRED:
        if wanted[ours] not in raw.columns:
            raise ValidationError(
                f"the source has no column {wanted[ours]!r} for {ours} "
                f"(its columns: {', '.join(map(str, raw.columns))}); map one with "
                f"--map {ours}=COLUMN",
                field=ours,
            )
    return pd.DataFrame(
        {ours: raw[theirs] for ours, theirs in wanted.items() if theirs in raw.columns}
    )


def _timestamps(values: pd.Series, assume_timezone: str | None, name: str) -> pd.Series:
    """UTC timestamps; NaT where a value does not parse. Naive input needs a stated zone."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        converted: pd.Series = values.dt.tz_convert("UTC")
        return converted
    if pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = values
    else:
        text = values.astype("string")
        aware = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True, na=False)
        if aware.any() and not aware[text.notna() & (text != "")].all():
            raise ValidationError(f"{name} mixes values with and without a time zone", field=name)
        if aware.any():
            stamped: pd.Series = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
            return stamped
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
    if assume_timezone is None:
        raise ValidationError(
            f"{name} has no time zone: state the one it is in with --assume-timezone "
            "(for instance UTC)",
            field=name,
        )
    try:
        local = parsed.dt.tz_localize(assume_timezone, ambiguous="NaT", nonexistent="NaT")
        utc: pd.Series = local.dt.tz_convert("UTC")
        return utc
    except (ValueError, TypeError, KeyError) as exc:
        raise ValidationError(
            f"unknown time zone {assume_timezone!r}: {exc}", field="assume_timezone"
        ) from exc


def _integers(values: pd.Series) -> pd.Series:
    """Int64 values; <NA> where a value is missing, not a number or not whole."""
    numbers = pd.to_numeric(values, errors="coerce")
    whole = numbers.notna() & np.isfinite(numbers.astype("float64")) & (numbers % 1 == 0)
    return numbers.where(whole).astype("Int64")


class _Rows:
    """The mapped rows and the reason each rejected one was rejected."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.reason = pd.Series(pd.NA, index=frame.index, dtype="string")

    def reject(self, mask: pd.Series, reason: str) -> None:
        self.reason = self.reason.mask(mask & self.reason.isna(), reason)


def validate(
    raw: pd.DataFrame,
    columns: Mapping[str, str],
    label_delay: timedelta,
    assume_timezone: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accepted rows in `schema.TX_COLUMNS`, sorted by time; rejected input rows + REASON)."""
    if label_delay < timedelta(0):
        raise ValidationError("the label delay cannot be negative", field="label_delay")
    frame = _mapped(raw, columns)
    rows = _Rows(frame)
    out = pd.DataFrame(index=frame.index)
    out[schema.TX_DATETIME] = _timestamps(frame[schema.TX_DATETIME], assume_timezone, "TX_DATETIME")
    rows.reject(out[schema.TX_DATETIME].isna(), "TX_DATETIME missing or not a timestamp")
    for column in (schema.TRANSACTION_ID, schema.CUSTOMER_ID, schema.TERMINAL_ID):
        out[column] = _integers(frame[column])
        rows.reject(out[column].isna(), f"{column} missing or not an integer")
    amount = pd.to_numeric(frame[schema.TX_AMOUNT], errors="coerce").astype("float64")
    bad_amount = pd.Series(~np.isfinite(amount.to_numpy()), index=amount.index) | (amount < 0)
    rows.reject(bad_amount, "TX_AMOUNT missing, negative or not a number")
    out[schema.TX_AMOUNT] = amount
    label = _integers(frame[schema.TX_FRAUD])
    rows.reject(~label.isin([0, 1]).fillna(False).astype(bool), "TX_FRAUD not 0 or 1")
    out[schema.TX_FRAUD] = label
    if schema.TX_FRAUD_SCENARIO in frame.columns:
        scenario = _integers(frame[schema.TX_FRAUD_SCENARIO])
        rows.reject(scenario.isna() | (scenario < 0), "TX_FRAUD_SCENARIO not a whole number >= 0")
    else:  # unknown: 1 marks a fraud of an unstated scenario
        scenario = label.fillna(0).astype("Int64")
    out[schema.TX_FRAUD_SCENARIO] = scenario
    if schema.LABEL_AVAILABLE_AT in frame.columns:
        available = _timestamps(
            frame[schema.LABEL_AVAILABLE_AT], assume_timezone, "LABEL_AVAILABLE_AT"
        )
        rows.reject(
            available.isna() | (available < out[schema.TX_DATETIME]),
            "LABEL_AVAILABLE_AT missing or before TX_DATETIME",
        )
    else:
        available = out[schema.TX_DATETIME] + pd.Timedelta(label_delay)
    out[schema.LABEL_AVAILABLE_AT] = available
    injected = frame.get(schema.INJECTED)
    out[schema.INJECTED] = "" if injected is None else injected.fillna("").astype(str)
    ok = rows.reason.isna()
    repeated = out[schema.TRANSACTION_ID].where(ok).duplicated(keep="first") & ok
    rows.reject(repeated, "TRANSACTION_ID seen before (the first row is kept)")
    ok = rows.reason.isna()
    rejected = raw.loc[~ok].astype(str).assign(**{REASON: rows.reason[~ok].astype(str)})
    good = out.loc[ok]
    if good.empty:
        raise ValidationError(
            f"no valid rows to import ({len(raw):,} rejected: "
            f"{_reasons(rejected) or 'the source is empty'})",
            field="source",
        )
    return _finish(good), rejected.reset_index(drop=True)


def _finish(good: pd.DataFrame) -> pd.DataFrame:
    """Typed columns in schema order, sorted by (time, id), times since the first day."""
    good = good.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID], kind="stable")
    stamps = good[schema.TX_DATETIME].dt.as_unit("us")
    first_day = stamps.iloc[0].normalize()
    seconds = ((stamps - first_day) // pd.Timedelta(seconds=1)).astype("int64")
    out = pd.DataFrame(
        {
            schema.TRANSACTION_ID: good[schema.TRANSACTION_ID].astype("int64"),
            schema.TX_DATETIME: stamps,
            schema.CUSTOMER_ID: good[schema.CUSTOMER_ID].astype("int64"),
            schema.TERMINAL_ID: good[schema.TERMINAL_ID].astype("int64"),
            schema.TX_AMOUNT: good[schema.TX_AMOUNT].round(2),
            schema.TX_TIME_SECONDS: seconds,
            schema.TX_TIME_DAYS: (seconds // 86_400).astype("int64"),
            schema.TX_FRAUD: good[schema.TX_FRAUD].astype("int8"),
            schema.TX_FRAUD_SCENARIO: good[schema.TX_FRAUD_SCENARIO].astype("int8"),
            schema.LABEL_AVAILABLE_AT: good[schema.LABEL_AVAILABLE_AT].dt.as_unit("us"),
            schema.INJECTED: good[schema.INJECTED],
        }
    )
    return out.reset_index(drop=True)


def _reasons(rejected: pd.DataFrame) -> str:
    counts = rejected[REASON].value_counts() if len(rejected) else pd.Series(dtype=int)
    return "; ".join(f"{n:,} {reason}" for reason, n in counts.items())


def _profiles(tx: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The entities seen, with what the data says of them (no simulated geometry)."""
    customers = (
        tx.groupby(schema.CUSTOMER_ID)[schema.TX_AMOUNT]
        .agg(["mean", "std", "size"])
        .rename(columns={"mean": "mean_amount", "std": "std_amount", "size": "n_transactions"})
        .reset_index()
    )
    terminals = tx.groupby(schema.TERMINAL_ID).size().rename("n_transactions").reset_index()
    return customers, terminals


def import_transactions(
    source: Path,
    out: Path,
    *,
    columns: Mapping[str, str] | None = None,
    label_delay: timedelta = timedelta(days=7),
    assume_timezone: str | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Validate `source` into the dataset folder `out` (atomically); what happened.

    `columns` maps mlsd column -> source column (unmapped columns are looked up by their
    mlsd name). Without a LABEL_AVAILABLE_AT column, a label is known `label_delay` after
    its transaction. Raises ValidationError / NotFoundError / ConflictError naming the
    field, and then writes nothing.
    """
    source, out = Path(source), Path(out)
    check_target(out, overwrite)
    raw = read_source(source)
    good, rejected = validate(raw, columns or {}, label_delay, assume_timezone)
    customers, terminals = _profiles(good)
    days = good[schema.TX_DATETIME].dt.date
    first, last = days.iloc[0], days.iloc[-1]
    rejections = {str(k): int(v) for k, v in rejected[REASON].value_counts().items()}
    provenance = {
        "path": str(source.resolve()),
        "sha256": _sources_hash(source),
        "columns": dict(columns or {}),
        "label_delay_seconds": None
        if schema.LABEL_AVAILABLE_AT in (columns or {}) or schema.LABEL_AVAILABLE_AT in raw
        else label_delay.total_seconds(),
        "assume_timezone": assume_timezone,
        "rows_in": len(raw),
        "rejected": rejections,
    }

    def write(folder: Path) -> dict[str, Any]:
        files = write_days(good, folder, first, last)
        for frame, name in ((customers, schema.CUSTOMERS_FILE), (terminals, schema.TERMINALS_FILE)):
            frame.to_parquet(folder / name, index=False)
            files[name] = sha256_of(folder / name)
        if len(rejected):
            rejected.to_parquet(folder / REJECTED_FILE, index=False)
        whole = hashlib.sha256("".join(f"{k}={v}\n" for k, v in sorted(files.items())).encode())
        return {
            "format": FORMAT,
            "created_at": pd.Timestamp.now("UTC").isoformat(),
            "config": None,
            "seed": None,
            "source": provenance,
            "rows": {
                "transactions": len(good),
                "frauds": int(good[schema.TX_FRAUD].sum()),
                "customers": len(customers),
                "terminals": len(terminals),
                "rejected": len(rejected),
            },
            "start_date": str(first),
            "end_date": str(last),
            "files": files,
            "content_sha256": whole.hexdigest(),
        }

    replace_folder(out, lambda folder: json.dumps(write(folder), indent=2))
    return ImportReport(
        source=str(source),
        rows_in=len(raw),
        rows_out=len(good),
        rejected=rejections,
        start_date=str(first),
        end_date=str(last),
        days=(last - first).days + 1,
        out=str(out),
    )
