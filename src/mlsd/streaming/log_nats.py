"""The event log on NATS JetStream: one stream per topic, one subject per partition.

A topic `t` is the stream `{prefix}t` with subjects `{prefix}t.0`, `{prefix}t.1`, ...
(its partition count is kept in the stream's description). A consumer group is a
durable pull consumer on the stream with explicit acks and `ack_wait` = the session
timeout: every member fetches from it, so JetStream splits the events among them and
re-delivers the ones a dead member never acked. Offsets are stream sequences (they
grow within a partition, with gaps where other partitions' events sit).

nats-py is asyncio; this class runs its own event loop on a daemon thread and offers
the blocking `EventLog` interface the stream processor uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from mlsd.errors import ConflictError, UnavailableError
from mlsd.streaming.log import (
    DEFAULT_SESSION_TIMEOUT_S,
    Event,
    Record,
    check_name,
    check_partitions,
    check_record,
    check_replay,
    check_session_timeout,
    now_ms,
    partition_for,
    unknown_topic,
)

T = TypeVar("T")
_KEY = "Mlsd-Key"
_TIME = "Mlsd-Time"
_DESCRIPTION = "mlsd event log topic; partitions="


def _safe(prefix: str) -> str:
    """A prefix usable in stream names and subject tokens (no '.', '*', '>', ':')."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in prefix)


class NatsEventLog:
    """`EventLog` on NATS JetStream."""

    name = "nats"

    def __init__(self, url: str, prefix: str = "", timeout: float = 5.0) -> None:
        import nats

        self._nats = nats
        self.prefix = _safe(prefix)
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._partitions: dict[str, int] = {}
        self._closed = False
        try:
            self._nc: Any = self.run(
                nats.connect(url, connect_timeout=timeout, max_reconnect_attempts=2)
            )
        except BaseException:
            self._stop_loop()
            raise
        self.js: Any = self._nc.jetstream(timeout=timeout)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the log's loop and wait for it; a broker that does not answer
        is UnavailableError."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout=(timeout or self.timeout) + 5.0)
        except (TimeoutError, OSError, self._nats.errors.Error) as exc:
            if isinstance(exc, self._nats.js.errors.APIError):
                raise
            future.cancel()
            raise UnavailableError(f"NATS event log unavailable: {exc!r}") from exc

    def stream(self, topic: str) -> str:
        """The JetStream stream name of `topic`."""
        return f"{self.prefix}{topic}"

    def subject(self, topic: str, partition: int) -> str:
        """The subject of one partition."""
        return f"{self.prefix}{topic}.{partition}"

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        check_name(topic, "topic")
        check_partitions(partitions)
        from nats.js.api import StreamConfig

        config = StreamConfig(
            name=self.stream(topic),
            subjects=[f"{self.stream(topic)}.*"],
            description=f"{_DESCRIPTION}{partitions}",
        )
        # a stream that exists with another config: the partition check below names it
        with contextlib.suppress(self._nats.js.errors.BadRequestError):
            self.run(self.js.add_stream(config))
        have = self.partitions(topic)
        if have != partitions:
            raise ConflictError(
                f"topic {topic!r} exists with {have} partitions, not {partitions}", field="topic"
            )

    def partitions(self, topic: str) -> int:
        check_name(topic, "topic")
        if topic not in self._partitions:
            try:
                info = self.run(self.js.stream_info(self.stream(topic)))
            except self._nats.js.errors.NotFoundError:
                raise unknown_topic(topic, self.name) from None
            description = info.config.description or ""
            if not description.startswith(_DESCRIPTION):
                raise ConflictError(
                    f"stream {self.stream(topic)!r} is not an mlsd topic", field="topic"
                )
            self._partitions[topic] = int(description.removeprefix(_DESCRIPTION))
        return self._partitions[topic]

    def publish(self, topic: str, records: Iterable[Record]) -> int:
        count = self.partitions(topic)
        checked = [check_record(r) for r in records]
        stamp = str(now_ms())

        async def send() -> None:
            futures = []
            for record in checked:
                headers = {
                    _KEY: record.key,
                    _TIME: stamp if record.timestamp_ms is None else str(record.timestamp_ms),
                }
                subject = self.subject(topic, partition_for(record.key, count))
                futures.append(
                    await self.js.publish_async(subject, bytes(record.value), headers=headers)
                )
            await asyncio.wait_for(asyncio.gather(*futures), self.timeout)

        if checked:
            self.run(send())
        return len(checked)

    def consumer(
        self, topic: str, group: str, *, session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S
    ) -> NatsConsumer:
        self.partitions(topic)
        check_name(group, "group")
        session = check_session_timeout(session_timeout_s)
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        config = ConsumerConfig(
            durable_name=group,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=session,
            max_ack_pending=-1,
        )
        sub = self.run(
            self.js.pull_subscribe(
                f"{self.stream(topic)}.*", durable=group, stream=self.stream(topic), config=config
            )
        )
        return NatsConsumer(self, topic, group, sub)

    def event(self, topic: str, msg: Any) -> Event:
        """An `Event` from a JetStream message."""
        headers = msg.headers or {}
        meta = msg.metadata
        stamp = headers.get(_TIME)
        return Event(
            topic,
            int(msg.subject.rpartition(".")[2]),
            int(meta.sequence.stream),
            headers.get(_KEY, ""),
            msg.data,
            int(stamp) if stamp else int(meta.timestamp.timestamp() * 1000),
            receipt=msg,
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
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=self.subject(topic, partition),
            inactive_threshold=30.0,
            max_deliver=1,
        )
        if offset is not None:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = max(1, offset)
        elif since_ms is not None:
            config.deliver_policy = DeliverPolicy.BY_START_TIME
            config.opt_start_time = datetime.fromtimestamp(since_ms / 1000, UTC)

        async def read() -> list[Any]:
            sub = await self.js.pull_subscribe(
                self.subject(topic, partition), stream=self.stream(topic), config=config
            )
            try:
                info = await sub.consumer_info()
                want = min(limit, int(info.num_pending))
                msgs: list[Any] = []
                while len(msgs) < want:
                    msgs += await sub.fetch(want - len(msgs), timeout=self.timeout)
                return msgs
            finally:
                await self.js.delete_consumer(self.stream(topic), (await sub.consumer_info()).name)
                await sub.unsubscribe()

        return [self.event(topic, m) for m in self.run(read())]

    def delete_topic(self, topic: str) -> None:
        check_name(topic, "topic")
        with contextlib.suppress(self._nats.js.errors.NotFoundError):  # nothing to delete
            self.run(self.js.delete_stream(self.stream(topic)))
        self._partitions.pop(topic, None)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.run(self._nc.close())
        finally:
            self._stop_loop()


class NatsConsumer:
    """A member of a JetStream durable pull consumer (the group)."""

    def __init__(self, log: NatsEventLog, topic: str, group: str, sub: Any) -> None:
        self._log = log
        self.topic = topic
        self.group = group
        self._sub = sub
        self._member = f"{group}-{uuid.uuid4().hex[:12]}"
        self._unacked: dict[int, Any] = {}
        self._closed = False

    @property
    def member(self) -> str:
        return self._member

    def poll(self, max_events: int = 256, timeout_s: float = 1.0) -> list[Event]:
        nats = self._log._nats

        async def fetch() -> list[Any]:
            try:
                got: list[Any] = await self._sub.fetch(max_events, timeout=max(timeout_s, 0.01))
                return got
            except nats.errors.TimeoutError:
                return []

        events = [self._log.event(self.topic, m) for m in self._log.run(fetch(), timeout_s)]
        for event in events:
            self._unacked[event.offset] = event.receipt
        return events

    def commit(self, events: Sequence[Event]) -> bool:
        # each message acked once: committing an event twice is a no-op, as elsewhere
        msgs = [m for m in (self._unacked.pop(e.offset, None) for e in events) if m is not None]
        if not msgs:
            return True

        async def ack() -> None:
            for msg in msgs:
                await msg.ack()
            await self._log._nc.flush(timeout=self._log.timeout)

        self._log.run(ack())
        return True

    def lag(self) -> int:
        """The durable consumer's undelivered plus unacknowledged messages."""

        async def info() -> Any:
            return await self._sub.consumer_info()

        found = self._log.run(info())
        return int(found.num_pending) + int(found.num_ack_pending)

    def lag_by_partition(self) -> dict[str, int]:
        """One durable consumer per topic: one figure, not split by subject."""
        return {"all": self.lag()}

    def close(self) -> None:
        """Hand back what was polled and not committed (NAK: redelivered at once)."""
        if self._closed:
            return
        self._closed = True
        pending = list(self._unacked.values())
        self._unacked.clear()

        async def release() -> None:
            for msg in pending:
                await msg.nak()
            await self._log._nc.flush(timeout=self._log.timeout)
            await self._sub.unsubscribe()

        if not self._log._closed:
            self._log.run(release())
