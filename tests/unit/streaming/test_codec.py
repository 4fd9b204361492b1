"""The batch codec against the per-event one: the same transactions, reasons and bytes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np

from mlsd.data.transaction import Transaction
from mlsd.errors import ValidationError
from mlsd.streaming.codec import (
    TransactionColumns,
    _decode_fast,
    decision_record,
    decision_records,
    decode_batch,
    decode_transaction,
    encode_transaction,
    iso_times,
)
from mlsd.streaming.log import Event

T0 = datetime(2026, 4, 1, 12, tzinfo=UTC)


def _events(values: list[bytes]) -> list[Event]:
    return [Event("t", 0, i, str(i), v, 0) for i, v in enumerate(values)]


def _reference(events: list[Event]) -> tuple[list[Transaction], list[str]]:
    txs, reasons = [], []
    for e in events:
        try:
            txs.append(decode_transaction(e.value))
        except ValidationError as exc:
            reasons.append(f"{exc.field}: {exc.message}")
    return txs, reasons


GOOD = [
    encode_transaction(Transaction(i, i % 7, i % 3, 10.0 + i / 4, T0 + timedelta(seconds=i,
                                                                              microseconds=i % 2)))
    for i in range(50)
]  # fmt: skip
ODD = [
    b'{"v":1,"transaction_id":1,"customer_id":2,"terminal_id":3,"amount":4,'
    b'"timestamp":"2026-04-01T12:00:00Z"}',
    b'{"v":1.0,"transaction_id":1,"customer_id":2,"terminal_id":3,"amount":4.5,'
    b'"timestamp":"2026-04-01T14:00:00+02:00"}',
    b'{"v":1,"transaction_id":true,"customer_id":2,"terminal_id":3,"amount":4.5,'
    b'"timestamp":"2026-04-01T12:00:00+00:00"}',
    b'{"v":1,"transaction_id":1,"customer_id":2,"terminal_id":3,"amount":NaN,'
    b'"timestamp":"2026-04-01T12:00:00+00:00"}',
    b'{"v":1,"transaction_id":1,"customer_id":2,"terminal_id":3,"amount":1,'
    b'"timestamp":"2026-04-01T12:00:00"}',
    b"not json",
    b'{"v":1,"transaction_id":1,"customer_id":2,"terminal_id":3,"amount":4.5,'
    b'"timestamp":"2026-04-01T12:00:00+00:00","note":"\xff"}',  # not UTF-8, in a skipped field
    b'{"v":1,"transaction_id":1,"customer_id":2,"terminal_id":3,"amount":4.5,'
    b'"timestamp":"2026-04-01T12:00:00+00:00","note":Infinity}',  # not JSON, skipped field
    b'{"v":1,"transaction_id":1,"customer_id":2,"terminal_id":3,"amount":1e400,'
    b'"timestamp":"2026-04-01T12:00:00+00:00"}',
    b"[1, 2]",
    b'{"v": 2}',
]


def test_a_canonical_batch_decodes_as_event_by_event() -> None:
    events = _events(GOOD)
    got = decode_batch(events)
    want, reasons = _reference(events)
    assert got.transactions == want
    assert not reasons
    assert not got.dead
    assert got.events == events
    columns = TransactionColumns.of(want)
    for name in ("transaction_id", "customer_id", "terminal_id", "amount", "time_us"):
        assert np.array_equal(getattr(got.columns, name), getattr(columns, name))


def test_odd_events_get_the_reference_transactions_and_reasons() -> None:
    """Each spelling the fast path leaves to `decode_transaction`, amid canonical events."""
    for odd in ODD:
        events = _events([*GOOD[:3], odd, *GOOD[3:6]])
        got = decode_batch(events)
        want, reasons = _reference(events)
        assert got.transactions == want, odd
        assert [t.timestamp for t in got.transactions] == [t.timestamp for t in want]
        assert len(got.events) == len(want)
        assert [json.loads(r.value)["reason"] for r in got.dead] == reasons
        assert all(json.loads(r.value)["offset"] == 3 for r in got.dead)


def test_the_fast_path_takes_canonical_batches_only() -> None:
    assert _decode_fast(_events([*GOOD, ODD[0]])) is not None  # Z, an int amount: plain
    assert all(_decode_fast(_events([*GOOD[:3], odd])) is None for odd in ODD[1:])


def test_the_fast_path_reads_json_as_the_reference() -> None:
    """Spellings the fast path takes (white space, a repeated key: the last wins, other
    fields of any JSON): the reference's transactions."""
    same = [
        b' {"v": 1, "transaction_id": 1, "customer_id": 2, "terminal_id": 3, "amount": 4,'
        b' "timestamp": "2026-04-01T12:00:00+00:00"}\n',
        b'{"v":1,"transaction_id":5,"transaction_id":6,"customer_id":2,"terminal_id":3,'
        b'"amount":4.5,"amount":-0.0,"timestamp":"2026-04-01T12:00:00+00:00"}',
        b'{"note":{"a":[1,"\\u00e9",null,-1e5]},"v":1,"transaction_id":1,"customer_id":2,'
        b'"terminal_id":3,"amount":1e-320,"timestamp":"2026-04-01T12:00:00.000001Z"}',
    ]
    events = _events([*GOOD[:3], *same])
    fast = _decode_fast(events)
    assert fast is not None
    want, reasons = _reference(events)
    assert not reasons
    assert fast.transactions == want
    assert [str(t.amount) for t in fast.transactions] == [str(t.amount) for t in want]


def test_decision_records_are_the_same_bytes() -> None:
    txs = decode_batch(_events(GOOD)).transactions
    scores = [i / 51 for i in range(len(txs))]
    decisions = ["fraud" if s > 0.5 else "legit" for s in scores]
    args = ("fraud", 3, "champion", "2026-04-01T12:00:01.5+00:00", "grp-ab\u00e9")
    got = decision_records(txs, scores, decisions, *args)
    want = [decision_record(t, s, d, *args) for t, s, d in zip(txs, scores, decisions, strict=True)]
    assert got == want
    assert decision_records(TransactionColumns.of(txs), scores, decisions, *args) == want


def test_iso_times_spell_as_isoformat() -> None:
    """Whole seconds without a fraction, others with six digits, far dates too."""
    whens = [
        T0, T0 + timedelta(microseconds=1), T0 + timedelta(seconds=59, microseconds=999_999),
        datetime(1, 1, 1, tzinfo=UTC), datetime(1969, 12, 31, 23, 59, 59, 5, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    ]  # fmt: skip
    columns = TransactionColumns.of([Transaction(1, 1, 1, 1.0, w) for w in whens])
    assert iso_times(columns.time_us) == [w.isoformat() for w in whens]
    assert iso_times(columns.time_us[:0]) == []


def test_a_stamp_holding_a_newline_is_left_to_the_reference() -> None:
    two = "2026-04-01T12:00:00+00:00\n2026-04-01T12:00:01+00:00"
    odd = (
        b'{"v":1,"transaction_id":1,"customer_id":2,"terminal_id":3,"amount":4,'
        b'"timestamp":"%s"}' % json.dumps(two)[1:-1].encode()
    )
    events = _events([*GOOD[:2], odd])
    assert _decode_fast(events) is None
    got = decode_batch(events)
    assert len(got.transactions) == 2
    assert [json.loads(r.value)["reason"] for r in got.dead] == _reference(events)[1]
