"""`mlsd import`: external transactions in, every row out or a counted rejection, days
right whatever the order, provenance from the source; and the writer never misfiles."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.data import io, schema
from mlsd.data.importing import REJECTED_FILE, import_transactions
from mlsd.data.simulator import Dataset
from mlsd.errors import IntegrityError, ValidationError

THEIRS = {
    schema.TRANSACTION_ID: "tx_id",
    schema.TX_DATETIME: "when",
    schema.CUSTOMER_ID: "card",
    schema.TERMINAL_ID: "merchant",
    schema.TX_AMOUNT: "amount",
    schema.TX_FRAUD: "is_fraud",
}
MAP_ARGS = [arg for ours, theirs in THEIRS.items() for arg in ("--map", f"{ours}={theirs}")]


def _mlsd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlsd.cli.main", *args], capture_output=True, text=True, timeout=120
    )


def _external(small: Dataset) -> pd.DataFrame:
    """The simulated transactions as another system would hand them over: own column
    names, shuffled, naive UTC times as text."""
    tx = small.transactions
    frame = pd.DataFrame({theirs: tx[ours] for ours, theirs in THEIRS.items()})
    frame["when"] = tx[schema.TX_DATETIME].dt.tz_localize(None).astype(str)
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)


def _bad_rows(good: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows each rejected for one reason, and the count expected per reason."""
    rows = good.head(7).astype(object)
    rows["tx_id"] = np.arange(10**9, 10**9 + 7)
    rows.loc[rows.index[0], "amount"] = -5.0
    rows.loc[rows.index[1], "is_fraud"] = 2
    rows.loc[rows.index[2], "card"] = None
    rows.loc[rows.index[3], "when"] = "yesterday"
    rows.loc[rows.index[4], "merchant"] = 1.5
    dupes = good.tail(2)  # same ids as kept rows
    expected = {
        "TX_AMOUNT missing, negative or not a number": 1,
        "TX_FRAUD not 0 or 1": 1,
        "CUSTOMER_ID missing or not an integer": 1,
        "TX_DATETIME missing or not a timestamp": 1,
        "TERMINAL_ID missing or not an integer": 1,
        "TRANSACTION_ID seen before (the first row is kept)": 2,
    }
    return pd.concat([rows.iloc[:5], dupes]), expected


def test_shuffled_duplicated_naive_input_loses_nothing_silently(
    small: Dataset, tmp_path: Path
) -> None:
    good = _external(small)
    bad, expected = _bad_rows(good)
    source = tmp_path / "export.csv"
    pd.concat([good, bad]).sample(frac=1.0, random_state=4).to_csv(source, index=False)
    out = tmp_path / "imported"

    refused = _mlsd("import", str(source), "--out", str(out), *MAP_ARGS)
    assert refused.returncode == 2, refused.stderr
    assert "TX_DATETIME has no time zone" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not out.exists(), "a refused import writes nothing"

    done = _mlsd(
        "import", str(source), "--out", str(out), *MAP_ARGS,
        "--assume-timezone", "UTC", "--label-delay-days", "7", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows_in"] == len(good) + len(bad)
    assert report["rows_out"] == len(good)
    assert report["rejected"] == expected
    assert report["rows_in"] == report["rows_out"] + sum(report["rejected"].values())
    rejected = pd.read_parquet(out / REJECTED_FILE)
    assert len(rejected) == sum(expected.values())

    back = io.read_transactions(out, verify=True)
    original = small.transactions
    assert len(back) == len(original)
    pd.testing.assert_series_equal(
        back[schema.TRANSACTION_ID].reset_index(drop=True),
        original[schema.TRANSACTION_ID].reset_index(drop=True),
    )  # sorted by time again, ties by id
    for column in (schema.TX_DATETIME, schema.CUSTOMER_ID, schema.TERMINAL_ID, schema.TX_AMOUNT):
        np.testing.assert_array_equal(back[column].to_numpy(), original[column].to_numpy())
    np.testing.assert_array_equal(back[schema.TX_FRAUD], original[schema.TX_FRAUD])
    delay = back[schema.LABEL_AVAILABLE_AT] - back[schema.TX_DATETIME]
    assert (delay == pd.Timedelta(days=7)).all()
    manifest = io.read_manifest(out)
    for name in manifest["files"]:
        if name.startswith(schema.TRANSACTIONS_DIR):
            day = pd.read_parquet(out / name)[schema.TX_DATETIME].dt.date.astype(str)
            assert (day == name[-18:-8]).all(), f"{name} holds another day's rows"
    assert manifest["seed"] is None
    assert manifest["config"] is None
    assert manifest["source"]["sha256"] == io.sha256_of(source)
    assert manifest["rows"]["transactions"] == len(good)


def test_aware_parquet_input_needs_no_zone_and_gives_utc_days(
    small: Dataset, tmp_path: Path
) -> None:
    tx = small.transactions.sample(frac=1.0, random_state=1)
    source = tmp_path / "tx.parquet"
    frame = tx[list(THEIRS)].assign(
        **{schema.TX_DATETIME: tx[schema.TX_DATETIME].dt.tz_convert("Europe/Brussels")}
    )
    frame.to_parquet(source)
    report = import_transactions(source, tmp_path / "ds", label_delay=timedelta(days=2))
    assert (report.rows_in, report.rows_out, report.rejected) == (len(tx), len(tx), {})
    back = io.read_transactions(tmp_path / "ds")
    assert str(back[schema.TX_DATETIME].dt.tz) == "UTC"
    assert back[schema.TX_DATETIME].is_monotonic_increasing


@pytest.mark.parametrize(
    ("columns", "field"),
    [({"TX_WHEN": "when"}, "TX_WHEN"), ({schema.TX_AMOUNT: "nope"}, schema.TX_AMOUNT)],
)
def test_bad_mapping_names_the_column_and_writes_nothing(
    small: Dataset, tmp_path: Path, columns: dict[str, str], field: str
) -> None:
    source = tmp_path / "tx.parquet"
    small.transactions.head(50).to_parquet(source)
    with pytest.raises(ValidationError) as info:
        import_transactions(source, tmp_path / "ds", columns=columns)
    assert info.value.field == field
    assert not (tmp_path / "ds").exists()


def test_the_writer_files_unsorted_rows_by_their_day_and_refuses_rows_outside(
    small: Dataset, tmp_path: Path
) -> None:
    shuffled = replace(small, transactions=small.transactions.sample(frac=1.0, random_state=2))
    io.write_dataset(shuffled, tmp_path / "ds")
    back = io.read_transactions(tmp_path / "ds")
    assert len(back) == len(small.transactions)
    assert back[schema.TX_DATETIME].is_monotonic_increasing
    short = replace(small, config=small.config.with_changes(n_days=small.config.n_days // 2))
    with pytest.raises(IntegrityError, match="fall outside"):
        io.write_dataset(short, tmp_path / "short")
    assert not (tmp_path / "short").exists()
