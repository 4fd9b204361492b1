"""The event log on Redis Streams: one stream per partition, native consumer groups.

Keys, under the event log's namespace (`{prefix}events:`): `topics` (a hash of topic
→ partition count) and `t:{topic}:{partition}` (the stream). An entry holds the
fields `k` (key), `v` (value) and `t` (publish time, ms).

Offsets are the stream ids packed in one integer, `ms << 20 | seq` (ids stay ordered;
a sequence of 2**20 or more within one millisecond is refused, far beyond Redis's
rate), so replay takes an offset or a time on the same axis. A member that stops
polling keeps its entries pending; the next poll of another member takes them over
with `XAUTOCLAIM` once they were idle for the session timeout.
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

_SEQ_BITS = 20
#: XADD of each (key, value, time) triple of ARGV to the stream KEYS[1]: one command per
#: partition and publish call instead of one per event (redis-py spent ~20 µs on each)
_APPEND = """
for i = 1, #ARGV, 3 do
  redis.call('XADD', KEYS[1], '*', 'k', ARGV[i], 'v', ARGV[i + 1], 't', ARGV[i + 2])
end
return #ARGV / 3
"""
_APPEND_CHUNK = 1000  # events per script call: Redis runs nothing else meanwhile
_BLOCK_S = 1.0  # longest single XREADGROUP block; the client's socket timeout is above it


def offset_of(entry_id: bytes | str) -> int:
    """The integer offset of a stream id.

    >>> offset_of(b"1700000000000-3")
    1782579200000000003
    """
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    if int(seq) >= 1 << _SEQ_BITS:
        raise ValidationError(f"stream id {text} has a sequence beyond 2**20", field="offset")
    return int(ms) << _SEQ_BITS | int(seq)


def id_of(offset: int) -> str:
    """The stream id of an integer offset (the inverse of `offset_of`)."""
    return f"{offset >> _SEQ_BITS}-{offset & ((1 << _SEQ_BITS) - 1)}"


class RedisEventLog:
    """`EventLog` on Redis Streams."""

    name = "redis"

    def __init__(self, url: str, prefix: str = "mlsd:events:", timeout: float = 5.0) -> None:
        import redis

        self._redis = redis
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=max(timeout, _BLOCK_S + 2), socket_connect_timeout=timeout
        )
        self.prefix = prefix
        self._partitions: dict[str, int] = {}
        self._append: Any = self._client.register_script(_APPEND)

    def stream(self, topic: str, partition: int) -> str:
        """The Redis key of one partition's stream."""
        return f"{self.prefix}t:{topic}:{partition}"

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a client call; a lost connection is UnavailableError."""
        try:
            return fn(*args, **kwargs)
        except (self._redis.ConnectionError, self._redis.TimeoutError) as exc:
            raise UnavailableError(f"Redis event log unavailable: {exc}") from exc

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        check_name(topic, "topic")
        check_partitions(partitions)
        self.call(self._client.hsetnx, self.prefix + "topics", topic, partitions)
        have = self.partitions(topic)
        if have != partitions:
            raise ConflictError(
                f"topic {topic!r} exists with {have} partitions, not {partitions}", field="topic"
            )

    def partitions(self, topic: str) -> int:
        check_name(topic, "topic")
        if topic not in self._partitions:
            found = self.call(self._client.hget, self.prefix + "topics", topic)
            if found is None:
                raise unknown_topic(topic, self.name)
            self._partitions[topic] = int(found)
        return self._partitions[topic]

    def publish(self, topic: str, records: Iterable[Record]) -> int:
        count = self.partitions(topic)
        checked = [check_record(r) for r in records]
        stamp = now_ms()
        fields: dict[int, list[Any]] = {}
        for record in checked:
            ts = stamp if record.timestamp_ms is None else record.timestamp_ms
            args = fields.setdefault(partition_for(record.key, count), [])
            args += (record.key, bytes(record.value), ts)
        pipe = self._client.pipeline(transaction=False)
        for part, args in fields.items():
            for start in range(0, len(args), 3 * _APPEND_CHUNK):
                chunk = args[start : start + 3 * _APPEND_CHUNK]
                self._append(keys=[self.stream(topic, part)], args=chunk, client=pipe)
        if fields:
            self.call(pipe.execute)
        return len(checked)

    def consumer(
        self, topic: str, group: str, *, session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S
    ) -> RedisConsumer:
        count = self.partitions(topic)
        check_name(group, "group")
        session = check_session_timeout(session_timeout_s)
        for part in range(count):
            try:
                self.call(self._client.xgroup_create, self.stream(topic, part), group, "0", True)
            except self._redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        return RedisConsumer(self, topic, group, count, session)

    def event(self, topic: str, part: int, entry_id: bytes, fields: dict[bytes, bytes]) -> Event:
        """An `Event` from a stream entry (an entry without mlsd's fields reads as empty)."""
        offset = offset_of(entry_id)
        stamp = fields.get(b"t")
        return Event(
            topic,
            part,
            offset,
            fields.get(b"k", b"").decode(errors="replace"),
            fields.get(b"v", b""),
            int(stamp) if stamp is not None else offset >> _SEQ_BITS,
            receipt=entry_id,
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
        start = "-"
        if offset is not None:
            start = id_of(offset)
        elif since_ms is not None:
            start = f"{since_ms}-0"
        rows = self.call(self._client.xrange, self.stream(topic, partition), start, "+", limit)
        return [self.event(topic, partition, i, f) for i, f in rows]

    def delete_topic(self, topic: str) -> None:
        check_name(topic, "topic")
        found = self.call(self._client.hget, self.prefix + "topics", topic)
        if found is not None:
            keys = [self.stream(topic, p) for p in range(int(found))]
            self.call(self._client.delete, *keys)
            self.call(self._client.hdel, self.prefix + "topics", topic)
        self._partitions.pop(topic, None)

    def close(self) -> None:
        self._client.close()

    @property
    def client(self) -> Any:
        """The redis-py client (for the consumer)."""
        return self._client


class RedisConsumer:
    """A member of a Redis consumer group over every partition stream of a topic."""

    def __init__(
        self, log: RedisEventLog, topic: str, group: str, partitions: int, session_s: float
    ) -> None:
        self._log = log
        self.topic = topic
        self.group = group
        self._member = f"{group}-{uuid.uuid4().hex[:12]}"
        self._streams = [log.stream(topic, p) for p in range(partitions)]
        self._session_ms = int(session_s * 1000)
        self._next_claim = 0.0
        self._turn = 0

    @property
    def member(self) -> str:
        return self._member

    def _reclaim(self, budget: int) -> list[Event]:
        """Entries of dead members (idle past the session timeout); looked for at most
        every half session while none are found."""
        if time.monotonic() < self._next_claim:
            return []
        events: list[Event] = []
        for part, key in enumerate(self._streams):
            if len(events) >= budget:
                return events
            reply = self._log.call(
                self._log.client.xautoclaim,
                key,
                self.group,
                self._member,
                self._session_ms,
                "0-0",
                count=budget - len(events),
            )
            events += [self._log.event(self.topic, part, i, f) for i, f in reply[1] if f]
        if not events:
            self._next_claim = time.monotonic() + self._session_ms / 2000
        return events

    def poll(self, max_events: int = 256, timeout_s: float = 1.0) -> list[Event]:
        claimed = self._reclaim(max_events)
        if claimed:
            return claimed
        deadline = time.monotonic() + timeout_s
        keys = self._free_streams()
        if not keys:  # every partition's earlier entries are with another member
            time.sleep(max(0.0, min(deadline, self._next_claim) - time.monotonic()))
            return self._reclaim(max_events)
        # COUNT is per stream: ask each for its share so a batch never exceeds max_events
        # (an entry read but not returned would sit pending under this member)
        if max_events < len(keys):
            self._turn = (self._turn + max_events) % len(keys)
            keys = (keys[self._turn :] + keys[: self._turn])[:max_events]
        streams = dict.fromkeys(keys, ">")
        per_stream = max(1, max_events // len(keys))
        while True:
            block = max(0.0, min(_BLOCK_S, deadline - time.monotonic()))
            reply = self._log.call(
                self._log.client.xreadgroup,
                self.group,
                self._member,
                streams,
                count=per_stream,
                block=max(1, int(block * 1000)),
            )
            events: list[Event] = []
            for key, entries in reply or []:
                part = int(key.decode().rpartition(":")[2])
                events += [self._log.event(self.topic, part, i, f) for i, f in entries]
            if events or time.monotonic() >= deadline:
                return events

    def _free_streams(self) -> list[str]:
        """The partition streams no other member has entries pending on (one pipelined
        XPENDING each): a partition's entries go out in order, a dead member's coming back
        (`_reclaim`) before newer ones, as a partition moves in a Kafka group (read at
        once, they overtook them: a restarted stream processor met a customer's payment
        before the one it followed, 2026-12-03)."""
        pipe = self._log.client.pipeline(transaction=False)
        for key in self._streams:
            pipe.xpending(key, self.group)
        free = []
        for key, summary in zip(self._streams, self._log.call(pipe.execute), strict=True):
            others = [
                c for c in summary.get("consumers") or []
                if c["name"].decode() != self._member and int(c["pending"])
            ]  # fmt: skip
            if not others:
                free.append(key)
        return free

    def commit(self, events: Sequence[Event]) -> bool:
        if not events:
            return True
        pipe = self._log.client.pipeline(transaction=False)
        for part, batch in by_partition(events).items():
            pipe.xack(self._streams[part], self.group, *[e.receipt for e in batch])
        self._log.call(pipe.execute)
        return True

    def lag(self) -> int:
        """Per stream, the group's undelivered entries (`lag`) plus its pending ones."""
        return sum(self.lag_by_partition().values())

    def lag_by_partition(self) -> dict[str, int]:
        out = {}
        for part, key in enumerate(self._streams):
            out[str(part)] = 0
            for info in self._log.call(self._log.client.xinfo_groups, key):
                if info["name"].decode() == self.group:
                    out[str(part)] += int(info.get("lag") or 0) + int(info["pending"])
        return out

    def close(self) -> None:
        """Leave. Pending entries stay with this member until another takes them over
        after the session timeout (Redis has no hand-back that keeps them); a member
        with none pending is removed from the group."""
        for key in self._streams:
            for info in self._log.call(self._log.client.xinfo_consumers, key, self.group):
                if info["name"].decode() == self._member and int(info["pending"]) == 0:
                    self._log.call(
                        self._log.client.xgroup_delconsumer, key, self.group, self._member
                    )
