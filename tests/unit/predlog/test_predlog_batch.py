"""`PredictionBatch`: one journal frame and one Arrow table, the same as its records'."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from mlsd.errors import ValidationError
from mlsd.predlog.batch import PredictionBatch, items_table
from mlsd.predlog.journal import Journal, read_segment
from mlsd.predlog.parquet import ParquetPredictionLog
from mlsd.predlog.record import PredictionRecord, to_table

NAMES = ("a", "b", "c")
T0 = datetime(2026, 4, 1, 12, tzinfo=UTC)


def _batch(n: int = 20, *, tx: bool = True, start: int = 0) -> PredictionBatch:
    rng = np.random.default_rng(n + start)
    features = rng.random((n, len(NAMES))).astype(np.float32)
    features[0, 1] = np.nan
    ids = list(range(start, start + n))
    return PredictionBatch(
        [f"tx-{i}" for i in ids], T0, "fraud", "3", features, NAMES,
        rng.random(n).tolist(), ["fraud" if i % 3 else "legit" for i in ids], 0.5, 1.25, False,
        "stream", "champion",
        ids if tx else None, [i % 7 for i in ids] if tx else None,
        [i % 5 for i in ids] if tx else None,
        [T0 - timedelta(seconds=i) for i in ids] if tx else None,
    )  # fmt: skip


@pytest.mark.parametrize("tx", [True, False])
def test_the_table_is_its_records_table(tx: bool) -> None:
    batch = _batch(tx=tx)
    assert batch.table().equals(to_table(batch.records()))
    loose = PredictionRecord("one", T0, "m", "1", [1.0], 0.1, "legit", 0.5, 1.0)
    mixed = items_table([loose, batch, loose])
    assert mixed.equals(to_table([loose, *batch.records(), loose]))


@pytest.mark.parametrize("tx", [True, False])
def test_the_journal_frame_is_its_records_frame(tmp_path: Path, tx: bool) -> None:
    batch = _batch(tx=tx)
    one, other = Journal(tmp_path / "a"), Journal(tmp_path / "b")
    try:
        assert one._batch_frame(batch, 7)[0] == other._frame(batch.records(), 7)[0]
        one.write_batch(batch, 7)
        one.write_batch(_batch(5, tx=tx, start=100), 27)  # the context and names known
        path = one.seal()
    finally:
        one.close(clean=False)
        other.close(clean=True)
    assert path is not None
    got = list(read_segment(path))
    want = batch.records() + _batch(5, tx=tx, start=100).records()
    assert [s for s, _ in got] == list(range(7, 7 + len(want)))
    for (_, r), w in zip(got, want, strict=True):
        assert (r.request_id, r.score, r.decision, r.transaction_id, r.tx_time) == (
            w.request_id, w.score, w.decision, w.transaction_id, w.tx_time,
        )  # fmt: skip
        assert np.array_equal(r.features, w.features, equal_nan=True)
        assert tuple(r.feature_names or ()) == NAMES


def test_a_log_stores_a_batch_as_its_records(tmp_path: Path) -> None:
    batch = _batch(50)
    by_batch = ParquetPredictionLog(tmp_path / "batch", 60.0, 5_000)
    by_records = ParquetPredictionLog(tmp_path / "records", 60.0, 5_000)
    try:
        assert by_batch.append_batch(batch) == 50
        assert by_records.append(batch.records()) == 50
        by_batch.flush()
        by_records.flush()
        a, b = by_batch.read(), by_records.read()
    finally:
        by_batch.close()
        by_records.close()
    assert a.drop(columns="features").equals(b.drop(columns="features"))
    assert [sorted(f.items()) for f in a["features"]] == [sorted(f.items()) for f in b["features"]]


def test_a_batch_of_mismatched_columns_is_refused() -> None:
    with pytest.raises(ValidationError):
        PredictionBatch(["x"], T0, "m", "1", np.zeros((2, 1)), ("a",), [0.1], ["legit"],
                        0.5, 1.0, False, "stream", "v")  # fmt: skip
