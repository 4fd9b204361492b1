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
import json
import threading
import uuid
from collections import deque
from collections.abc import Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from mlsd.errors import ConflictError, UnavailableError, ValidationError
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
_TOPIC_DESCRIPTION = "mlsd event log topic; partitions="
_STATUS, _DESCRIPTION = "Status", "Description"  # where nats-py files a status line
_HEARTBEAT = "100"
_PULL_ENDED = ("404", "408")  # no messages / request expired: the pull is answered
_EXPIRY_GRACE_S = 0.5  # past a waiting pull's expiry, how long its 408 may take
_PUBLISH_WINDOW = 4096  # most messages awaiting their acknowledgement at once
_ACK, _NAK = b"", b"-NAK"  # the bodies of an acknowledgement and a negative one


def _safe(prefix: str) -> str:
    """A prefix usable in stream names and subject tokens (no '.', '*', '>', ':')."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in prefix)


def delivery_of(reply: str) -> tuple[int, int]:
    """(stream sequence, append time in ns) from a JetStream message's ack subject:
    `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending>`,
    or with `<domain>.<account hash>` after `$JS.ACK` (NATS 2.9+, 11 or 12 tokens). Read
    here rather than by nats-py's `Msg.metadata`, which builds a datetime per message.

    >>> delivery_of("$JS.ACK.orders.g.1.42.7.1700000000000000000.3")
    (42, 1700000000000000000)
    """
    tokens = reply.split(".") if reply else []
    if len(tokens) == 9 and tokens[:2] == ["$JS", "ACK"]:
        return int(tokens[5]), int(tokens[7])
    if len(tokens) >= 11 and tokens[:2] == ["$JS", "ACK"]:
        return int(tokens[7]), int(tokens[9])
    raise ValidationError(f"not a JetStream message (reply subject {reply!r})", field="reply")


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
        self._publisher = _Publisher(self)
        self.run(self._publisher.start())

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
            description=f"{_TOPIC_DESCRIPTION}{partitions}",
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
            if not description.startswith(_TOPIC_DESCRIPTION):
                raise ConflictError(
                    f"stream {self.stream(topic)!r} is not an mlsd topic", field="topic"
                )
            self._partitions[topic] = int(description.removeprefix(_TOPIC_DESCRIPTION))
        return self._partitions[topic]

    def publish(self, topic: str, records: Iterable[Record]) -> int:
        count = self.partitions(topic)
        checked = [check_record(r) for r in records]
        stamp = str(now_ms())
        for start in range(0, len(checked), _PUBLISH_WINDOW):
            chunk = checked[start : start + _PUBLISH_WINDOW]
            self.run(self._publisher.publish(topic, count, chunk, stamp))
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
        stream = self.stream(topic)

        async def join() -> NatsConsumer:
            try:
                await self.js.consumer_info(stream, group)
            except self._nats.js.errors.NotFoundError:
                await self.js.add_consumer(stream, config)
            consumer = NatsConsumer(self, topic, group)
            await consumer.start()
            return consumer

        return self.run(join())

    def event(self, topic: str, msg: Any) -> Event:
        """An `Event` from a JetStream message."""
        headers = msg.headers or {}
        sequence, stamp_ns = delivery_of(msg.reply)
        stamp = headers.get(_TIME)
        return Event(
            topic,
            int(msg.subject.rpartition(".")[2]),
            sequence,
            headers.get(_KEY, ""),
            msg.data,
            int(stamp) if stamp else stamp_ns // 1_000_000,
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


class _Batch:
    """The acknowledgements one publish call still waits for."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.error = ""
        self.done = asyncio.Event()


class _Publisher:
    """Publishes to JetStream and waits for the acknowledgements, a batch at a time.

    Every message of a batch asks for its acknowledgement on one subject of an inbox
    that one callback counts (nats-py's `publish_async` spends a future, a semaphore
    slot and a token on every message: half the rate here). Runs on the log's loop.
    """

    def __init__(self, log: NatsEventLog) -> None:
        self._log = log
        self._inbox = log._nc.new_inbox()
        self._batches: dict[str, _Batch] = {}
        self._count = 0

    async def start(self) -> None:
        await self._log._nc.subscribe(f"{self._inbox}.*", cb=self._on_ack)

    async def _on_ack(self, msg: Any) -> None:
        batch = self._batches.get(msg.subject.rpartition(".")[2])
        if batch is None:
            return  # a late answer to a batch given up on
        if not batch.error:
            batch.error = _ack_error(msg)
        batch.left -= 1
        if batch.left <= 0:
            batch.done.set()

    async def publish(self, topic: str, count: int, records: list[Record], stamp: str) -> None:
        """Publish `records` to `topic` (of `count` partitions); return once JetStream
        acknowledged every one, else UnavailableError."""
        if not records:
            return
        self._count += 1
        key = str(self._count)
        reply = f"{self._inbox}.{key}"
        batch = self._batches[key] = _Batch(len(records))
        log = self._log
        try:
            await _write(log._nc, _publish_commands(log, topic, count, records, stamp, reply))
            await asyncio.wait_for(batch.done.wait(), log.timeout)
        except TimeoutError:
            raise UnavailableError(
                f"NATS publish to {topic!r}: {batch.left} of {len(records)} events not "
                f"acknowledged in {log.timeout:.0f}s"
            ) from None
        finally:
            del self._batches[key]
        if batch.error:
            raise UnavailableError(f"NATS publish to {topic!r} failed: {batch.error}")


def _ack_error(msg: Any) -> str:
    """Why a publish acknowledgement is a refusal ("" if it is not one)."""
    if msg.headers and msg.headers.get(_STATUS):  # 503: no stream takes the subject
        return f"status {msg.headers[_STATUS]}"
    if b'"error"' not in msg.data:
        return ""
    error = json.loads(msg.data).get("error", {})
    return f"{error.get('code', '')} {error.get('description', '')}".strip() or "refused"


def _publish_commands(
    log: NatsEventLog, topic: str, count: int, records: list[Record], stamp: str, reply: str
) -> bytes:
    """The HPUB commands of `records`, each with its key and time headers and asking for
    its acknowledgement on `reply`: nats-py's `publish` builds the same bytes, but with
    two validations, a header loop and an await per message. Header values get the
    same cleaning as there (stripped, CR/LF as spaces); MaxPayloadError past the
    server's limit, as there."""
    from nats.aio.client import _HEADER_VALUE_NEWLINES

    limit = log._nc.max_payload
    subjects = [log.subject(topic, p) for p in range(count)]
    parts: list[bytes] = []
    for record in records:
        key = record.key.strip().translate(_HEADER_VALUE_NEWLINES)
        at = stamp if record.timestamp_ms is None else str(record.timestamp_ms)
        header = f"NATS/1.0\r\n{_KEY}: {key}\r\n{_TIME}: {at}\r\n\r\n".encode()
        value = bytes(record.value)
        if len(value) > limit:
            raise log._nats.errors.MaxPayloadError
        subject = subjects[partition_for(record.key, count)]
        size = len(header) + len(value)
        parts.append(f"HPUB {subject} {reply} {len(header)} {size}\r\n".encode())
        parts.append(header)
        parts.append(value)
        parts.append(b"\r\n")
    return b"".join(parts)


def _acks(msgs: Iterable[Any], body: bytes) -> bytes:
    """One PUB of `body` ("" = +ACK, "-NAK") to each message's ack subject."""
    tail = b" %d\r\n%s\r\n" % (len(body), body)
    return b"".join(b"PUB " + msg.reply.encode() + tail for msg in msgs)


async def _write(nc: Any, commands: bytes) -> None:
    """Queue whole protocol commands on nats-py's outgoing buffer and kick its flusher,
    with the checks of its `publish` (closed, draining, buffer full while reconnecting),
    in one append rather than one awaited publish per message."""
    from nats import errors

    if nc.is_closed:
        raise errors.ConnectionClosedError
    if nc.is_draining_pubs:
        raise errors.ConnectionDrainingError
    if not nc.is_connected and (
        nc._max_pending_size <= 0 or len(commands) + nc._pending_data_size > nc._max_pending_size
    ):
        raise errors.OutboundBufferLimitError
    await nc._send_command(commands)
    if nc._flush_queue is not None and nc._flush_queue.empty():
        await nc._flush_pending()


class _Pull:
    """One pull request in flight: how many messages it asked for and got, how it ended."""

    def __init__(self, reply: str, batch: int) -> None:
        self.reply = reply
        self.batch = batch
        self.received = 0
        self.error = ""
        self.done = asyncio.Event()


class NatsConsumer:
    """A member of a JetStream durable pull consumer (the group).

    It pulls with the JetStream API directly rather than nats-py's `fetch`, which spends
    a task, a timer and a uuid on every message (~80 µs; 14k messages/s at best here).
    A poll first asks for up to `max_events` messages without waiting (`no_wait`: the
    server sends what it has, then a 408 status if that was fewer); when none came, it
    waits for one (`expires` = the poll's timeout), then asks without waiting for the
    rest of the batch. Every message the server delivers to this member's inbox is kept,
    even one of a request given up on, and handed out by the next poll.
    """

    def __init__(self, log: NatsEventLog, topic: str, group: str) -> None:
        self._log = log
        self.topic = topic
        self.group = group
        self._member = f"{group}-{uuid.uuid4().hex[:12]}"
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{log.stream(topic)}.{group}"
        self._inbox = log._nc.new_inbox()
        self._sub: Any = None
        self._requests = 0
        self._pull: _Pull | None = None
        self._delivered: deque[Any] = deque()  # delivered to this member, not polled yet
        self._unacked: dict[int, Any] = {}
        self._closed = False

    async def start(self) -> None:
        """Subscribe to this member's inbox (on the log's loop)."""
        self._sub = await self._log._nc.subscribe(f"{self._inbox}.*", cb=self._on_message)

    async def _on_message(self, msg: Any) -> None:
        status = msg.headers.get(_STATUS) if msg.headers else None
        if status is None:
            self._delivered.append(msg)
        pull = self._pull
        if pull is None:
            return
        if status is None:
            pull.received += 1
            if pull.received >= pull.batch:
                pull.done.set()
        elif msg.subject == pull.reply and status != _HEARTBEAT:
            if status not in _PULL_ENDED:
                pull.error = f"{status} {msg.headers.get(_DESCRIPTION, '')}".strip()
            pull.done.set()

    async def _request(self, batch: int, expires_s: float | None) -> None:
        """One pull request of `batch` messages: without waiting (`expires_s` None) or
        waiting up to `expires_s` for them; returns when it is answered."""
        self._requests += 1
        pull = _Pull(f"{self._inbox}.{self._requests}", batch)
        body: dict[str, Any] = {"batch": batch}
        if expires_s is None:
            body["no_wait"] = True
            wait_s = self._log.timeout
        else:
            body["expires"] = int(expires_s * 1e9)
            wait_s = expires_s + _EXPIRY_GRACE_S
        self._pull = pull
        try:
            await self._log._nc.publish(self._next, json.dumps(body).encode(), reply=pull.reply)
            await asyncio.wait_for(pull.done.wait(), wait_s)
        except TimeoutError:
            if expires_s is None:
                raise UnavailableError(
                    f"NATS event log: no answer to a pull of group {self.group!r} on topic "
                    f"{self.topic!r} in {wait_s:.0f}s (is the consumer deleted?)"
                ) from None
        finally:
            self._pull = None
        if pull.error:
            raise UnavailableError(f"NATS pull of group {self.group!r} failed: {pull.error}")

    async def _fetch(self, max_events: int, timeout_s: float) -> list[Any]:
        if len(self._delivered) < max_events:
            await self._request(max_events - len(self._delivered), None)
        if not self._delivered:
            await self._request(1, max(timeout_s, 0.01))
            if self._delivered and len(self._delivered) < max_events:
                await self._request(max_events - len(self._delivered), None)
        take = min(max_events, len(self._delivered))
        return [self._delivered.popleft() for _ in range(take)]

    @property
    def member(self) -> str:
        return self._member

    def poll(self, max_events: int = 256, timeout_s: float = 1.0) -> list[Event]:
        msgs = self._log.run(self._fetch(max_events, timeout_s), timeout_s + self._log.timeout)
        events = [self._log.event(self.topic, m) for m in msgs]
        for event in events:
            self._unacked[event.offset] = event.receipt
        return events

    def commit(self, events: Sequence[Event]) -> bool:
        # each message acked once: committing an event twice is a no-op, as elsewhere
        msgs = [m for m in (self._unacked.pop(e.offset, None) for e in events) if m is not None]
        if not msgs:
            return True

        async def ack() -> None:
            await _write(self._log._nc, _acks(msgs, _ACK))
            await self._log._nc.flush(timeout=self._log.timeout)

        self._log.run(ack())
        return True

    def lag(self) -> int:
        """The durable consumer's undelivered plus unacknowledged messages."""
        found = self._log.run(self._log.js.consumer_info(self._log.stream(self.topic), self.group))
        return int(found.num_pending) + int(found.num_ack_pending)

    def lag_by_partition(self) -> dict[str, int]:
        """One durable consumer per topic: one figure, not split by subject."""
        return {"all": self.lag()}

    def close(self) -> None:
        """Hand back what was delivered and not committed (NAK: redelivered at once)."""
        if self._closed:
            return
        self._closed = True

        async def release() -> None:
            if self._sub is not None:
                await self._sub.unsubscribe()  # first: nothing is delivered to it after
            pending = [*self._unacked.values(), *self._delivered]
            self._unacked.clear()
            self._delivered.clear()
            if pending:
                await _write(self._log._nc, _acks(pending, _NAK))
            await self._log._nc.flush(timeout=self._log.timeout)

        if not self._log._closed:
            self._log.run(release())
