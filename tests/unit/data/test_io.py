"""Dataset folders: round trip, atomic writes, refusing other data, integrity checks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mlsd.data import io, schema
from mlsd.data.simulator import Dataset
from mlsd.errors import ConflictError, IntegrityError, NotFoundError, ValidationError


@pytest.fixture(scope="module")
def written(small: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return io.write_dataset(small, tmp_path_factory.mktemp("io") / "ds")


def test_layout_and_manifest(small: Dataset, written: Path) -> None:
    days = sorted(p.name for p in (written / schema.TRANSACTIONS_DIR).iterdir())
    assert len(days) == small.config.n_days
    assert days[0] == "2018-04-01.parquet"
    assert (written / schema.CUSTOMERS_FILE).is_file()
    assert (written / schema.TERMINALS_FILE).is_file()
    manifest = io.read_manifest(written)
    assert manifest["rows"]["transactions"] == len(small.transactions)
    assert manifest["config"]["seed"] == small.config.seed
    assert len(manifest["content_sha256"]) == 64
    assert not [p for p in written.parent.iterdir() if p.name.startswith(".")]


def test_round_trip(small: Dataset, written: Path) -> None:
    pd.testing.assert_frame_equal(io.read_transactions(written, verify=True), small.transactions)
    customers, terminals = io.read_profiles(written)
    pd.testing.assert_frame_equal(terminals, small.terminals)
    assert (
        customers["available_terminals"].map(list).tolist()
        == small.customers["available_terminals"].tolist()
    )


def test_read_a_day_range(written: Path) -> None:
    tx = io.read_transactions(written, start="2018-04-03", end="2018-04-04")
    assert set(tx[schema.TX_TIME_DAYS].unique()) == {2, 3}
    empty = io.read_transactions(written, start="2019-01-01")
    assert len(empty) == 0
    assert tuple(empty.columns) == schema.TX_COLUMNS
    with pytest.raises(ValidationError) as info:
        io.read_transactions(written, start="yesterday")
    assert info.value.field == "start"


def test_refuses_a_folder_with_other_data(small: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.txt").write_text("precious")
    with pytest.raises(ConflictError) as info:
        io.write_dataset(small, out)
    assert info.value.field == "out"
    assert [p.name for p in out.iterdir()] == ["thesis.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_replaces_a_dataset_only_with_overwrite(small: Dataset, tmp_path: Path) -> None:
    out = io.write_dataset(small, tmp_path / "ds")
    first = io.read_manifest(out)["created_at"]
    with pytest.raises(ConflictError, match="overwrite"):
        io.write_dataset(small, out)
    io.write_dataset(small, out, overwrite=True)
    assert io.read_manifest(out)["created_at"] != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_a_failed_write_leaves_nothing(
    small: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(dataset: Dataset, folder: Path) -> dict[str, str]:
        (folder / "half-written").write_text("x")
        raise OSError("disk full")

    monkeypatch.setattr(io, "_write_tables", broken)
    with pytest.raises(OSError, match="disk full"):
        io.write_dataset(small, tmp_path / "ds")
    assert list(tmp_path.iterdir()) == []


def test_integrity_errors(small: Dataset, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        io.read_transactions(tmp_path)
    out = io.write_dataset(small, tmp_path / "ds")
    day = out / schema.TRANSACTIONS_DIR / "2018-04-02.parquet"
    day.write_bytes(day.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(IntegrityError, match="sha256"):
        io.read_transactions(out, verify=True)
    day.unlink()
    with pytest.raises(IntegrityError, match="missing"):
        io.read_transactions(out)
    (out / schema.MANIFEST_FILE).write_text(json.dumps({"format": "other"}))
    with pytest.raises(IntegrityError):
        io.read_manifest(out)


def test_same_config_same_bytes(small: Dataset, written: Path, tmp_path: Path) -> None:
    from mlsd.data.simulator import simulate

    again = io.write_dataset(simulate(small.config), tmp_path / "again")
    assert io.read_manifest(again)["content_sha256"] == io.read_manifest(written)["content_sha256"]
