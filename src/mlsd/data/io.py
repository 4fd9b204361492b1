"""Write and read dataset folders (layout in `mlsd.data.schema`), atomically.

`write_dataset` writes everything into a temporary folder beside `out` and renames it
into place at the end, so a failure never leaves a half-written dataset. A folder that
holds anything but an mlsd dataset is never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.data.simulator import Dataset
from mlsd.errors import ConflictError, IntegrityError, NotFoundError, ValidationError

FORMAT = "mlsd.dataset/1"
_EPOCH_DAY = date(1970, 1, 1)
# Dictionary-encode only the low-cardinality columns: as small as encoding all, ~35 % faster.
_DICTIONARY = [
    schema.CUSTOMER_ID,
    schema.TERMINAL_ID,
    schema.TX_TIME_DAYS,
    schema.TX_FRAUD,
    schema.TX_FRAUD_SCENARIO,
    schema.INJECTED,
]


def is_dataset(folder: Path) -> bool:
    """True when `folder` holds an mlsd dataset manifest."""
    manifest = folder / schema.MANIFEST_FILE
    if not manifest.is_file():
        return False
    try:
        return bool(json.loads(manifest.read_text(encoding="utf-8")).get("format") == FORMAT)
    except (OSError, ValueError):
        return False


def check_target(out: Path, overwrite: bool = False) -> None:
    """Refuse a target that holds other data, or a dataset without `overwrite`."""
    if out.exists() and not out.is_dir():
        raise ConflictError(f"{out} exists and is not a folder", field="out")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not is_dataset(out):
        raise ConflictError(f"{out} is not empty and holds other data; refusing", field="out")
    if not overwrite:
        raise ConflictError(
            f"{out} already holds a dataset; pass overwrite=True (--overwrite) to replace it",
            field="out",
        )


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_days(transactions: pd.DataFrame, folder: Path, first: date, last: date) -> dict[str, str]:
    """One Parquet file per UTC day from `first` to `last` (empty days too), whatever the
    rows' order; their sha256 by relative path.

    A row on another day is an IntegrityError, never a row left out: a file holds exactly
    its day's rows, and the files together exactly `transactions`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    stamps = transactions[schema.TX_DATETIME]
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        raise ValidationError("TX_DATETIME must be timezone-aware", field="TX_DATETIME")
    us = stamps.dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy()
    day_index = us // 86_400_000_000  # days since 1970-01-01, UTC
    lo_day, hi_day = (first - _EPOCH_DAY).days, (last - _EPOCH_DAY).days
    outside = int(((day_index < lo_day) | (day_index > hi_day)).sum())
    if outside:
        raise IntegrityError(
            f"{outside:,} of {len(transactions):,} transactions fall outside {first}..{last}; "
            "nothing written",
            field="TX_DATETIME",
        )
    order = np.lexsort((transactions[schema.TRANSACTION_ID].to_numpy(), us))
    table = pa.Table.from_pandas(transactions.iloc[order], preserve_index=False)
    bounds = np.searchsorted(day_index[order], np.arange(lo_day, hi_day + 2))
    tx_dir = folder / schema.TRANSACTIONS_DIR
    tx_dir.mkdir()
    files: dict[str, str] = {}
    written = 0
    for i in range(hi_day - lo_day + 1):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        name = f"{schema.TRANSACTIONS_DIR}/{first + timedelta(days=i)}.parquet"
        pq.write_table(table.slice(lo, hi - lo), folder / name, use_dictionary=_DICTIONARY)
        files[name] = sha256_of(folder / name)
        written += hi - lo
    if written != len(transactions):  # sorted by time, so the days are contiguous
        raise IntegrityError(f"wrote {written:,} of {len(transactions):,} transactions")
    return files


def _write_tables(dataset: Dataset, folder: Path) -> dict[str, str]:
    """Write the Parquet files; return their sha256 by relative path."""
    config = dataset.config
    files = write_days(dataset.transactions, folder, config.start_date, config.end_date)
    for frame, name in (
        (dataset.customers, schema.CUSTOMERS_FILE),
        (dataset.terminals, schema.TERMINALS_FILE),
    ):
        frame.to_parquet(folder / name, index=False)
        files[name] = sha256_of(folder / name)
    return files


def manifest_for(dataset: Dataset, files: dict[str, str]) -> dict[str, Any]:
    tx = dataset.transactions
    whole = hashlib.sha256("".join(f"{k}={v}\n" for k, v in sorted(files.items())).encode())
    return {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "config": dataset.config.model_dump(mode="json"),
        "seed": dataset.config.seed,
        "rows": {
            "transactions": len(tx),
            "frauds": int(tx[schema.TX_FRAUD].sum()),
            "customers": len(dataset.customers),
            "terminals": len(dataset.terminals),
        },
        "start_date": str(dataset.config.start_date),
        "end_date": str(dataset.config.end_date),
        "files": files,
        "content_sha256": whole.hexdigest(),
    }


def write_dataset(dataset: Dataset, out: Path, overwrite: bool = False) -> Path:
    """Write `dataset` to folder `out` atomically; return `out`.

    Raises ConflictError if `out` holds other data, or a dataset and not `overwrite`.
    """
    out = Path(out)
    check_target(out, overwrite)

    def build(folder: Path) -> str:
        return json.dumps(manifest_for(dataset, _write_tables(dataset, folder)), indent=2)

    replace_folder(out, build)
    return out


def replace_folder(out: Path, build: Callable[[Path], str]) -> None:
    """Fill a temporary folder beside `out` with `build` (which returns the manifest's
    text), then rename it into place: a failure never leaves a half-written dataset."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        manifest = build(tmp)
        (tmp / schema.MANIFEST_FILE).write_text(manifest, encoding="utf-8")
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a dataset folder."""
    path = Path(folder) / schema.MANIFEST_FILE
    if not path.is_file():
        raise NotFoundError(f"{folder} holds no mlsd dataset (no {schema.MANIFEST_FILE})")
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise IntegrityError(f"{path} is not valid JSON: {exc}") from None
    if data.get("format") != FORMAT:
        raise IntegrityError(f"{path} is not an {FORMAT} manifest")
    return data


def _as_date(value: date | datetime | str | None, field: str) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return value.date()
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValidationError(f"{value!r} is not a date (YYYY-MM-DD)", field=field) from None


def read_transactions(
    folder: Path,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    verify: bool = False,
) -> pd.DataFrame:
    """Transactions of the days `start`..`end` (inclusive; None = open), sorted by time.

    `verify=True` checks every file read against its sha256 in the manifest.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    first, last = _as_date(start, "start"), _as_date(end, "end")
    names = sorted(
        name
        for name in manifest["files"]
        if name.startswith(f"{schema.TRANSACTIONS_DIR}/")
        and (first is None or name[-18:-8] >= str(first))
        and (last is None or name[-18:-8] <= str(last))
    )
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise IntegrityError(f"{path} listed in the manifest is missing")
        if verify and sha256_of(path) != manifest["files"][name]:
            raise IntegrityError(f"{path} does not match its sha256 in the manifest")
        tables.append(pq.read_table(path))
    if not tables:  # an empty range: keep the columns and their types
        any_day = min(n for n in manifest["files"] if n.startswith(schema.TRANSACTIONS_DIR))
        return pd.read_parquet(folder / any_day).iloc[:0]
    frame: pd.DataFrame = pa.concat_tables(tables).to_pandas()
    return frame


def read_profiles(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The customer and terminal profile tables."""
    read_manifest(folder)
    return (
        pd.read_parquet(Path(folder) / schema.CUSTOMERS_FILE),
        pd.read_parquet(Path(folder) / schema.TERMINALS_FILE),
    )
