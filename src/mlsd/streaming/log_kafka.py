"""The event log on Kafka (confluent-kafka, i.e. librdkafka): the reference design.

Topics and partitions are Kafka's own; mlsd picks the partition (`partition_for`) so
every backend files a key alike. The producer is idempotent with `acks=all`; publish
returns after every record is acknowledged. A consumer group is a Kafka group with
auto-commit off: `commit` commits the next offset of each partition synchronously.
`session.timeout.ms` and `max.poll.interval.ms` are both the session timeout, so a
member that stops polling leaves the group as a dead one does (heartbeat: a sixth).
Replay assigns partitions outside any group (no join) and reads up to the end the
fetches report, never the ListOffsets high watermark (see docs/streaming.md).
Exactly-once here is idempotent output by event id, not Kafka transactions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from mlsd.errors import ConflictError, UnavailableError, ValidationError
from mlsd.streaming.log import (
    DEFAULT_SESSION_TIMEOUT_S,
    Event,
    Record,
    by_partition,
    check_name,
    check_partitions,
    check_record,
    check_replay,
    check_session_timeout,
    now_ms,
    partition_for,
    unknown_topic,
)


def _safe(prefix: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in prefix)


class KafkaEventLog:
    """`EventLog` on a Kafka cluster."""

    name = "kafka"

    def __init__(self, bootstrap: str, prefix: str = "", timeout: float = 10.0) -> None:
        import confluent_kafka
        from confluent_kafka.admin import AdminClient

        self._ck = confluent_kafka
        self.bootstrap = bootstrap
        self.prefix = _safe(prefix)
        self.timeout = timeout
        self._admin: Any = AdminClient({"bootstrap.servers": bootstrap})
        self._producer: Any = None
        self._partitions: dict[str, int] = {}

    def topic_name(self, topic: str) -> str:
        """The Kafka topic of `topic` (the prefix applied)."""
        return self.prefix + topic

    def _fail(self, what: str, exc: BaseException) -> UnavailableError:
        return UnavailableError(f"Kafka event log at {self.bootstrap}: {what} failed: {exc}")

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        check_name(topic, "topic")
        check_partitions(partitions)
        from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

        name = self.topic_name(topic)
        futures = self._admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=-1)],
            operation_timeout=self.timeout,
        )
        try:
            futures[name].result(timeout=self.timeout)
        except self._ck.KafkaException as exc:
            if exc.args[0].code() != self._ck.KafkaError.TOPIC_ALREADY_EXISTS:
                raise self._fail(f"creating topic {name!r}", exc) from exc
        self._partitions.pop(topic, None)
        have = self.partitions(topic)
        if have != partitions:
            raise ConflictError(
                f"topic {topic!r} exists with {have} partitions, not {partitions}", field="topic"
            )

    def partitions(self, topic: str) -> int:
        check_name(topic, "topic")
        if topic not in self._partitions:
            name = self.topic_name(topic)
            try:
                # all topics, not list_topics(name): asking for one may auto-create it
                meta = self._admin.list_topics(timeout=self.timeout)
            except self._ck.KafkaException as exc:
                raise self._fail("reading metadata", exc) from exc
            found = meta.topics.get(name)
            if found is None or found.error is not None or not found.partitions:
                raise unknown_topic(topic, self.name)
            self._partitions[topic] = len(found.partitions)
        return self._partitions[topic]

    def _get_producer(self) -> Any:
        if self._producer is None:
            self._producer = self._ck.Producer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 2,
                    "message.timeout.ms": int(self.timeout * 1000),
                }
            )
            # Metadata first: an idempotent producer asks for its producer id before it
            # knows a broker, finds none, and retries on a 500 ms timer, so the first
            # publish took 0.5-1 s; after this call (~50 ms) it takes ~1 ms.
            try:
                self._producer.list_topics(timeout=self.timeout)
            except self._ck.KafkaException as exc:
                self._producer = None
                raise self._fail("reading metadata", exc) from exc
        return self._producer

    def publish(self, topic: str, records: Iterable[Record]) -> int:
        count = self.partitions(topic)
        checked = [check_record(r) for r in records]
        if not checked:
            return 0
        producer = self._get_producer()
        name = self.topic_name(topic)
        stamp = now_ms()
        errors: list[Any] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        for record in checked:
            ts = stamp if record.timestamp_ms is None else record.timestamp_ms
            while True:
                try:
                    producer.produce(
                        name,
                        value=bytes(record.value),
                        key=record.key.encode(),
                        partition=partition_for(record.key, count),
                        timestamp=ts,
                        on_delivery=delivered,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)  # local queue full: serve callbacks, then retry
        left = producer.flush(self.timeout)
        if left or errors:
            why = errors[0] if errors else f"{left} records not acknowledged in {self.timeout}s"
            raise UnavailableError(f"Kafka publish to {name!r} failed: {why}")
        return len(checked)

    def consumer(
        self, topic: str, group: str, *, session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S
    ) -> KafkaConsumer:
        self.partitions(topic)
        check_name(group, "group")
        session_ms = int(check_session_timeout(session_timeout_s) * 1000)
        if session_ms < 6000:
            raise ValidationError(
                "Kafka brokers refuse sessions under 6 s (group.min.session.timeout.ms)",
                field="session_timeout_s",
            )
        config = {
            "bootstrap.servers": self.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(500, session_ms // 6),
            "max.poll.interval.ms": session_ms,
            # Tansu answers a fetch when this expires, not once fetch.min.bytes is there:
            # librdkafka's 500 ms held a trickle's events ~130 ms (p50) before the poll
            "fetch.wait.max.ms": 10,
        }
        client = self._ck.Consumer(config)
        client.subscribe([self.topic_name(topic)])
        return KafkaConsumer(self, topic, group, client)

    def event(self, topic: str, msg: Any) -> Event:
        """An `Event` from a Kafka message."""
        key = msg.key()
        return Event(
            topic,
            int(msg.partition()),
            int(msg.offset()),
            key.decode(errors="replace") if key else "",
            msg.value() or b"",
            int(msg.timestamp()[1]),
        )

    def replay(
        self,
        topic: str,
        partition: int,
        *,
        offset: int | None = None,
        since_ms: int | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        check_replay(partition, self.partitions(topic), offset, since_ms)
        ck = self._ck
        name = self.topic_name(topic)
        client = ck.Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"mlsd-replay-{uuid.uuid4().hex[:8]}",  # never joined: assign()
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 20,  # the end of the partition is an empty fetch: soon
            }
        )
        try:
            start = ck.OFFSET_BEGINNING if offset is None else offset
            if since_ms is not None:
                found = client.offsets_for_times(
                    [ck.TopicPartition(name, partition, since_ms)], timeout=self.timeout
                )[0]
                if found.offset < 0:
                    return []
                start = found.offset
            client.assign([ck.TopicPartition(name, partition, start)])
            return self._read_to_end(topic, client, limit, since_ms)
        except ck.KafkaException as exc:
            raise self._fail(f"replaying {name!r}", exc) from exc
        finally:
            client.close()

    def _read_to_end(
        self, topic: str, client: Any, limit: int, since_ms: int | None
    ) -> list[Event]:
        """Read to the partition's end. With `since_ms`, events before the first one
        stamped at or after it are skipped: a broker may answer a time lookup with an
        earlier offset (Tansu answers a time past the end with the first offset)."""
        events: list[Event] = []
        deadline = time.monotonic() + self.timeout
        while len(events) < limit and time.monotonic() < deadline:
            for msg in client.consume(min(500, limit - len(events)), 0.2):
                err = msg.error()
                if err is not None and err.code() == self._ck.KafkaError._PARTITION_EOF:
                    return events
                if err is not None:
                    raise self._ck.KafkaException(err)
                if since_ms is not None and not events and msg.timestamp()[1] < since_ms:
                    continue
                events.append(self.event(topic, msg))
        return events

    def delete_topic(self, topic: str) -> None:
        check_name(topic, "topic")
        name = self.topic_name(topic)
        futures = self._admin.delete_topics([name], operation_timeout=self.timeout)
        try:
            futures[name].result(timeout=self.timeout)
        except self._ck.KafkaException as exc:
            if exc.args[0].code() != self._ck.KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise self._fail(f"deleting topic {name!r}", exc) from exc
        self._partitions.pop(topic, None)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.timeout)
            self._producer = None
        self._admin = None  # librdkafka handles go with their last reference


class KafkaConsumer:
    """A member of a Kafka consumer group."""

    def __init__(self, log: KafkaEventLog, topic: str, group: str, client: Any) -> None:
        self._log = log
        self.topic = topic
        self.group = group
        self._client = client
        self._closed = False

    @property
    def member(self) -> str:
        member_id: str = self._client.memberid() or ""
        return member_id

    def poll(self, max_events: int = 256, timeout_s: float = 1.0) -> list[Event]:
        """What librdkafka has fetched, up to `max_events`; when it has nothing, the first
        event to come within `timeout_s` and what came with it. `consume(n, timeout)`
        alone waits for all n or the whole timeout: a batch short of n (the end of a
        backlog, a slow stream) would wait the full timeout."""
        msgs = self._client.consume(max_events, 0)
        if not msgs:
            msgs = self._client.consume(1, timeout_s)
            if msgs and max_events > 1:
                msgs += self._client.consume(max_events - 1, 0)
        return self._events(msgs)

    def _events(self, msgs: list[Any]) -> list[Event]:
        ck = self._log._ck
        events: list[Event] = []
        for msg in msgs:
            err = msg.error()
            if err is None:
                events.append(self._log.event(self.topic, msg))
            elif err.code() == ck.KafkaError._MAX_POLL_EXCEEDED:
                continue  # this member was too slow and left the group; this poll rejoins
            elif err.code() != ck.KafkaError._PARTITION_EOF:
                raise UnavailableError(f"Kafka consume of {self.topic!r} failed: {err}")
        return events

    def commit(self, events: Sequence[Event]) -> bool:
        if not events:
            return True
        ck = self._log._ck
        name = self._log.topic_name(self.topic)
        offsets = [
            ck.TopicPartition(name, part, max(e.offset for e in batch) + 1)
            for part, batch in by_partition(events).items()
        ]
        try:
            self._client.commit(offsets=offsets, asynchronous=False)
        except ck.KafkaException as exc:
            code = exc.args[0].code()
            lost = {
                ck.KafkaError.REBALANCE_IN_PROGRESS,
                ck.KafkaError.ILLEGAL_GENERATION,
                ck.KafkaError.UNKNOWN_MEMBER_ID,
                ck.KafkaError._ASSIGNMENT_LOST,
            }
            if code in lost:
                return False  # the group moved these partitions on: they come back
            raise UnavailableError(f"Kafka commit on {self.topic!r} failed: {exc}") from exc
        return True

    def lag(self) -> int:
        """Over the assigned partitions: the high watermark this consumer's fetches saw
        (not ListOffsets': Tansu's lags a batch) less the committed offset."""
        return sum(self.lag_by_partition().values())

    def lag_by_partition(self) -> dict[str, int]:
        ck = self._log._ck
        assigned = self._client.assignment()
        if not assigned:
            return {}
        try:
            committed = self._client.committed(assigned, timeout=self._log.timeout)
        except ck.KafkaException as exc:
            raise UnavailableError(f"Kafka committed offsets of {self.topic!r}: {exc}") from exc
        out: dict[str, int] = {}
        for tp in committed:
            low, high = self._client.get_watermark_offsets(tp, cached=True)
            if high < 0:  # nothing fetched yet: ask the broker
                low, high = self._client.get_watermark_offsets(tp, timeout=self._log.timeout)
            out[str(tp.partition)] = max(0, high - (tp.offset if tp.offset >= 0 else low))
        return out

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()
