"""The journal's packed records: what the scoring path writes, one `struct` call per part.

A served record is plain numbers and a few strings that repeat for every record of one
variant. The packed form writes the repeating part (model, version, threshold, entry point,
variant, feature names, decision) once per segment as a context, and each record as fixed
binary fields, its feature values as float64s and its request id as UTF-8:

    <q first seq><I count>, then per record
    <q ts µs><I context><d score><d latency ms><B flags><q tx id><q customer><q terminal>
    <q tx time µs><H n> n x <d feature> <H id length><id bytes>

`flags` marks degraded and which of the four optional fields are present. `struct` checks
every value on the way in (an int where an int goes, a float-like where a float goes: a
numpy scalar converts, None or a string does not), so there is no per-field type check in
Python; a record it refuses (a missing feature value, a features mapping, an id that is
not a string) sends the whole write to the journal's general, marshal-based frame.
Measured in the serving process, a one-record frame costs a third of the marshal frame's
Python work, and the journal is on every request's path.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from mlsd.predlog.record import PredictionRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: Marks an entry's feature names as absent.
NO_NAMES = -1

HEAD = struct.Struct("<qI")
FIXED = struct.Struct("<qIddBqqqqH")
ID_LENGTH = struct.Struct("<H")
_DEGRADED, _TX, _CUSTOMER, _TERMINAL, _TX_TIME = 1, 2, 4, 8, 16

#: A packed context: (model, version, threshold, entry point, variant, names index, decision)
Context = tuple[Any, ...]


@lru_cache(maxsize=64)
def _doubles(n: int) -> struct.Struct:
    return struct.Struct(f"<{n}d")


def pack(
    records: Sequence[PredictionRecord],
    first_seq: int,
    names_index: Any,
    context_index: Any,
) -> bytes:
    """The packed body of `records`. `names_index(names)` and `context_index(key)` give
    (and, for new ones, register) the segment's table indexes.

    Raises TypeError, ValueError, AttributeError or struct.error for a record that does
    not pack (the caller writes the general frame instead).
    """
    parts = [HEAD.pack(first_seq, len(records))]
    last_ts: datetime | None = None
    ts_us = 0
    for r in records:
        features = r.features
        if type(features) is not list:
            raise TypeError("features that are not a list of numbers")
        names = r.feature_names
        index = NO_NAMES if names is None else names_index(names)
        context = context_index(
            (r.model, r.version, r.threshold, r.endpoint, r.variant, index, r.decision)
        )
        ts = r.ts
        if ts is not last_ts:  # a batch's records share one timestamp object
            ts_us, last_ts = (ts - _EPOCH) // _MICROSECOND, ts
        tx, customer, terminal, tx_time = r.transaction_id, r.customer_id, r.terminal_id, r.tx_time
        flags = (
            (_DEGRADED if r.degraded else 0)
            | (0 if tx is None else _TX)
            | (0 if customer is None else _CUSTOMER)
            | (0 if terminal is None else _TERMINAL)
            | (0 if tx_time is None else _TX_TIME)
        )
        request_id = r.request_id.encode()
        n = len(features)
        fixed = FIXED.pack(
            ts_us, context, r.score, r.latency_ms, flags,
            0 if tx is None else tx, 0 if customer is None else customer,
            0 if terminal is None else terminal,
            0 if tx_time is None else (tx_time - _EPOCH) // _MICROSECOND, n,
        )  # fmt: skip
        parts.append(fixed)
        parts.append(_doubles(n).pack(*features))
        parts.append(ID_LENGTH.pack(len(request_id)))
        parts.append(request_id)
    return b"".join(parts)


def unpack(
    body: bytes | memoryview,
    names: Mapping[int, tuple[str, ...]],
    contexts: Mapping[int, Context],
) -> tuple[int, list[PredictionRecord]]:
    """(first sequence number, records) of a packed body; KeyError / struct.error when
    it does not read (a corrupt frame)."""
    first_seq, count = HEAD.unpack_from(body, 0)
    offset = HEAD.size
    records = []
    for _ in range(count):
        ts_us, context, score, latency_ms, flags, tx, customer, terminal, tx_us, n = (
            FIXED.unpack_from(body, offset)
        )
        offset += FIXED.size
        values = list(_doubles(n).unpack_from(body, offset))
        offset += 8 * n
        (length,) = ID_LENGTH.unpack_from(body, offset)
        offset += ID_LENGTH.size
        request_id = bytes(body[offset : offset + length]).decode()
        offset += length
        model, version, threshold, endpoint, variant, index, decision = contexts[context]
        record = PredictionRecord(
            request_id, _EPOCH + timedelta(microseconds=ts_us), model, version, values,
            score, decision, threshold, latency_ms, bool(flags & _DEGRADED),
            None if index == NO_NAMES else names[index], endpoint, variant,
            tx if flags & _TX else None, customer if flags & _CUSTOMER else None,
            terminal if flags & _TERMINAL else None,
            _EPOCH + timedelta(microseconds=tx_us) if flags & _TX_TIME else None,
        )  # fmt: skip
        records.append(record)
    if offset != len(body):
        raise ValueError(f"a packed body of {len(body)} bytes holds {offset}")
    return first_seq, records
