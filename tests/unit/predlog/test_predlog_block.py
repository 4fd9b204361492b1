"""Record blocks: a batch's rows as columns, the same records through the journal, the
Arrow encoding and a replay as the record lists they stand for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.errors import ValidationError
from mlsd.predlog import ParquetPredictionLog, PredictionRecord
from mlsd.predlog.block import RecordBlock, parts_table
from mlsd.predlog.journal import Journal, read_segment
from mlsd.predlog.record import finish_frame, to_table

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
NAMES = ("amount", "tx_count_1d")


def block(first: int, n: int, *, tx: bool = True, **overrides: object) -> RecordBlock:
    ids = list(range(first, first + n))
    values = np.array([[float(i), np.nan if i % 2 else 2.0 * i] for i in ids], dtype=np.float32)
    fields: dict[str, object] = {
        "request_ids": [f"r{i}" for i in ids],
        "ts": T0,
        "model": "fraud",
        "version": "1",
        "features": values,
        "scores": np.array([i / 100 for i in ids]),
        "decisions": ["fraud" if i % 3 == 0 else "legit" for i in ids],
        "threshold": 0.5,
        "latency_ms": [1.0 + i for i in ids],
        "degraded": [i % 4 == 0 for i in ids],
        "feature_names": NAMES,
        "endpoint": "score",
        "variant": "champion",
        "transactions": (
            ids,
            [7] * n,
            [9 + i for i in ids],
            [T0 - timedelta(seconds=i) for i in ids],
        )
        if tx
        else None,
    }
    fields.update(overrides)
    return RecordBlock(**fields)  # type: ignore[arg-type]


def _frame(records: list[PredictionRecord]) -> pd.DataFrame:
    return finish_frame(to_table(records).to_pandas())


def test_a_block_is_the_sequence_of_its_records() -> None:
    b = block(2, 3)
    records = b.records()
    assert [repr(r) for r in b] == [repr(r) for r in records]
    assert len(b) == 3
    assert repr(b[1]) == repr(records[1])
    assert records[0].features == [2.0, 4.0]
    assert np.isnan(np.asarray(records[1].features, dtype=float)[1])
    assert (records[1].transaction_id, records[1].terminal_id) == (3, 12)
    assert [r.request_id for r in b[1:]] == ["r3", "r4"]
    assert block(1, 2, tx=False).records()[0].tx_time is None


def test_a_block_of_mismatched_columns_is_refused() -> None:
    with pytest.raises(ValidationError):
        block(1, 2, decisions=["legit"])
    with pytest.raises(ValidationError):
        block(1, 2, features=np.zeros((2, 3), dtype=np.float32))


def test_blocks_encode_as_their_records_mixed_parts_in_order() -> None:
    parts = [block(1, 2), [block(10, 1).records()[0]], block(20, 3, tx=False), block(30, 1)]
    records = [r for p in parts for r in p]
    expected = _frame(records)
    got = finish_frame(parts_table(parts).to_pandas())
    pd.testing.assert_frame_equal(got, expected)
    other = block(40, 2, feature_names=("x", "y"))  # other names: a map of its own
    got = finish_frame(parts_table([block(1, 2), other]).to_pandas())
    assert list(got["features"][2]) == ["x", "y"]


def test_blocks_that_differ_in_a_shared_field_encode_each_rows_own_value() -> None:
    parts = [
        block(1, 2),
        block(5, 1, model="other", version="7", threshold=0.25, ts=T0 + timedelta(seconds=1)),
        block(8, 3, endpoint="v2", variant="canary"),
        block(12, 1),
    ]
    expected = _frame([r for p in parts for r in p])
    pd.testing.assert_frame_equal(finish_frame(parts_table(parts).to_pandas()), expected)


def test_a_block_round_trips_through_the_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    written = [block(1, 3), block(4, 2, tx=False, variant="shadow")]
    journal.write(written[0], 1)
    journal.write([block(9, 1).records()[0]], 4)  # a record list between blocks
    journal.write(written[1], 5)
    sealed = journal.seal()
    assert sealed is not None
    read = list(read_segment(sealed))
    assert [seq for seq, _ in read] == [1, 2, 3, 4, 5, 6]
    expected = [*written[0].records(), block(9, 1).records()[0], *written[1].records()]
    pd.testing.assert_frame_equal(_frame([r for _, r in read]), _frame(expected))
    journal.close(clean=True)


def test_a_block_of_values_marshal_would_mistake_is_journaled_as_plain_records(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path)
    odd = block(1, 2, threshold=np.float64(0.5), request_ids=["a", np.str_("b")])
    journal.write(odd, 1)
    sealed = journal.seal()
    assert sealed is not None
    read = [r for _, r in read_segment(sealed)]
    assert [r.request_id for r in read] == ["a", "b"]
    assert {type(r.threshold) for r in read} == {float}
    journal.close(clean=True)


def test_blocks_appended_and_replayed_after_a_crash_are_stored_once(tmp_path: Path) -> None:
    plog = ParquetPredictionLog(tmp_path, flush_seconds=3600, compact_every_s=None)
    journal = plog._journal
    assert journal is not None
    journal.discard = lambda segments: None  # type: ignore[method-assign]
    plog.append(block(1, 3))
    plog.flush()  # stored, its segment kept: the replay must skip it by the mark
    plog.append(block(4, 2))
    plog._closed = True  # stop the flusher without writing (as a kill would)
    plog._wake.set()
    plog._thread.join()
    journal.close(clean=False)
    plog._release()
    reopened = ParquetPredictionLog(tmp_path, flush_seconds=3600, compact_every_s=None)
    try:
        frame = reopened.read()
        assert sorted(frame["request_id"]) == [f"r{i}" for i in range(1, 6)]
        assert reopened.stats().replayed == 2
    finally:
        reopened.close()
