"""The NATS log's protocol commands are the bytes nats-py's own publish would send."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("nats")

import nats
from nats.protocol.command import hpub_cmd

from mlsd.streaming.log import Record, partition_for
from mlsd.streaming.log_nats import _ACK, _NAK, _acks, _publish_commands


def fake_log(max_payload: int = 1 << 20) -> Any:
    return SimpleNamespace(
        subject=lambda topic, p: f"pre_{topic}.{p}",
        _nc=SimpleNamespace(max_payload=max_payload),
        _nats=nats,
    )


def test_publish_commands_match_nats_py_hpub() -> None:
    records = [
        Record("c1", b'{"a": 1}'),
        Record(" c2\r\nx ", b"", timestamp_ms=7),  # cleaned as nats-py cleans header values
        Record("c3", b"\x00\xff"),
    ]
    got = _publish_commands(fake_log(), "orders", 4, records, "123", "_INBOX.r.1")
    want = b""
    for record, key, at in zip(records, ["c1", "c2  x", "c3"], ["123", "7", "123"], strict=True):
        header = f"NATS/1.0\r\nMlsd-Key: {key}\r\nMlsd-Time: {at}\r\n\r\n".encode()
        subject = f"pre_orders.{partition_for(record.key, 4)}"
        want += hpub_cmd(subject, "_INBOX.r.1", bytearray(header), bytes(record.value))
    assert got == want


def test_a_value_past_the_server_limit_is_refused() -> None:
    with pytest.raises(nats.errors.MaxPayloadError):
        _publish_commands(fake_log(4), "orders", 1, [Record("k", b"12345")], "1", "r")


def test_acks_are_one_pub_per_message() -> None:
    msgs = [SimpleNamespace(reply=f"$JS.ACK.s.g.1.{i}.{i}.0.0") for i in (1, 2)]
    assert _acks(msgs, _ACK) == b"".join(f"PUB {m.reply} 0\r\n\r\n".encode() for m in msgs)
    assert _acks(msgs, _NAK) == b"".join(f"PUB {m.reply} 4\r\n-NAK\r\n".encode() for m in msgs)
