"""Streaming: the event log (one interface, four backends) and the stream processor.

`open_event_log(settings)` opens the backend `MLSD_EVENT_LOG` names:

- `''` (default): the embedded SQLite log in `home/events/log.sqlite`, no server;
  `sqlite:///relative/path` or `sqlite:////absolute/path` for another file;
- `redis://host:port/db[?prefix=]`: Redis Streams (extra `redis`);
- `nats://host:port[?prefix=]`: NATS JetStream (extra `nats`);
- `kafka://host:port[?prefix=&bootstrap=host2:port,host3:port]`: Kafka (extra `kafka`).

`?timeout_ms=` sets the broker timeout. Redis keys live under `{prefix}events:`;
NATS streams and Kafka topics are named `{prefix}{topic}` (no prefix unless given).
"""

from __future__ import annotations

from pathlib import Path

from mlsd.backends import Opening, open_backend
from mlsd.settings import Settings
from mlsd.streaming.log import Consumer, Event, EventLog, Record, partition_for

__all__ = ["Consumer", "Event", "EventLog", "Record", "open_event_log", "partition_for"]


def open_event_log(settings: Settings) -> EventLog:
    """The event log `settings.event_log` names."""
    log = open_backend("event_log", settings)
    if not isinstance(log, EventLog):  # pragma: no cover - the table names only event logs
        raise TypeError(f"{type(log).__name__} is not an EventLog")
    return log


def sqlite_log(o: Opening) -> EventLog:
    """The embedded log: `home/events/log.sqlite`, or the file a `sqlite://` URL names."""
    from mlsd.streaming.log_sqlite import SqliteEventLog

    if o.url.embedded:
        return SqliteEventLog(o.settings.path("events", "log.sqlite"))
    return SqliteEventLog(Path(o.url.path[1:]))


def redis_log(o: Opening) -> EventLog:
    """Redis Streams under the event log's key namespace."""
    from mlsd.streaming.log_redis import RedisEventLog

    return RedisEventLog(o.url.dsn, prefix=o.key_prefix, timeout=o.url.timeout(5.0))


def nats_log(o: Opening) -> EventLog:
    """NATS JetStream, streams named `{prefix}{topic}`."""
    from mlsd.streaming.log_nats import NatsEventLog

    return NatsEventLog(o.url.dsn, prefix=o.url.prefix or "", timeout=o.url.timeout(5.0))


def kafka_log(o: Opening) -> EventLog:
    """Kafka, topics named `{prefix}{topic}`; `?bootstrap=` adds more brokers."""
    from mlsd.streaming.log_kafka import KafkaEventLog

    servers = [f"{o.url.host or '127.0.0.1'}:{o.url.port or 9092}"]
    servers += [s for s in o.url.params.get("bootstrap", "").split(",") if s]
    return KafkaEventLog(",".join(servers), prefix=o.url.prefix or "", timeout=o.url.timeout(10.0))
