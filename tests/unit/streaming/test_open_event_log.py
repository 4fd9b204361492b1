"""The event log is chosen by MLSD_EVENT_LOG through the one backend table."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlsd.errors import ConfigError
from mlsd.settings import Settings
from mlsd.streaming import EventLog, Record, open_event_log
from mlsd.streaming.log_sqlite import SqliteEventLog


def test_the_default_is_the_embedded_log_in_home(tmp_path: Path) -> None:
    log = open_event_log(Settings(home=tmp_path))
    try:
        assert isinstance(log, SqliteEventLog)
        assert isinstance(log, EventLog)
        assert log.path == tmp_path / "events" / "log.sqlite"
    finally:
        log.close()


def test_a_sqlite_url_names_another_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "events.db"
    log = open_event_log(Settings(home=tmp_path, event_log=f"sqlite:///{path}"))
    try:
        assert isinstance(log, SqliteEventLog)
        assert log.path == path
    finally:
        log.close()


def test_an_unknown_scheme_names_the_accepted_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"use '' \(embedded\), sqlite://.*kafka://") as info:
        open_event_log(Settings(home=tmp_path, event_log="amqp://127.0.0.1"))
    assert info.value.field == "event_log"


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("kafka://127.0.0.1:9092", "confluent_kafka", "kafka"),
        ("nats://127.0.0.1:4222", "nats", "nats"),
        ("redis://127.0.0.1:6379/0", "redis", "redis"),
    ],
)
def test_a_missing_driver_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, module: str, extra: str
) -> None:
    for name in list(sys.modules):
        if name.startswith("mlsd.streaming.log_"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError, match=rf"install mlsd\[{extra}\]") as info:
        open_event_log(Settings(home=tmp_path, event_log=url))
    assert info.value.field == "event_log"


def test_the_embedded_log_survives_a_restart(tmp_path: Path) -> None:
    """Published events, commits and a dead member's leases are all on disk."""
    path = tmp_path / "log.sqlite"
    log = SqliteEventLog(path)
    log.create_topic("tx", 2)
    log.publish("tx", [Record(f"k{i}", str(i).encode()) for i in range(20)])
    member = log.consumer("tx", "g", session_timeout_s=0.2)
    first = member.poll(5, 1.0)
    assert member.commit(first)
    held = member.poll(5, 1.0)  # polled, never committed: the process "dies" here
    log.close()

    again = SqliteEventLog(path)
    try:
        assert again.partitions("tx") == 2
        survivor = again.consumer("tx", "g", session_timeout_s=0.2)
        got: list[int] = []
        while len(got) < 15:  # the 20 less the 5 committed, the held 5 once they expire
            batch = survivor.poll(50, 5.0)
            assert batch, "the log lost events across the restart"
            assert survivor.commit(batch)
            got += [int(e.value) for e in batch]
        committed = {int(e.value) for e in first}
        assert sorted(got) == sorted(set(range(20)) - committed)
        assert {int(e.value) for e in held} <= set(got)
        assert survivor.poll(50, 0.3) == []
        assert again.committed("tx", "g") == {
            p: 1 + max(e.offset for e in again.replay("tx", p)) for p in range(2)
        }
    finally:
        again.close()
