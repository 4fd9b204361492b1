"""One suite for every event log backend: embedded SQLite, Redis Streams, NATS, Kafka.

Each test states a property of the `EventLog` contract (mlsd.streaming.log) and
checks it on real servers; nothing here knows which backend it runs on except the
shortest session timeout that backend accepts.
"""

from __future__ import annotations

import time

import pytest

from mlsd.errors import ConflictError, NotFoundError, ValidationError
from mlsd.streaming import Event, EventLog, Record, partition_for
from mlsd.streaming.log import Consumer, now_ms
from tests.integration.streaming.conftest import Harness


def records(n: int, start: int = 0, keys: int = 20) -> list[Record]:
    """`n` records over `keys` keys; the value is the record's global number."""
    return [Record(f"k{i % keys}", str(i).encode()) for i in range(start, start + n)]


def numbers(events: list[Event]) -> list[int]:
    return [int(e.value) for e in events]


def test_is_an_event_log(harness: Harness) -> None:
    assert isinstance(harness.log, EventLog)
    topic = harness.topic(2)
    assert harness.log.partitions(topic) == 2
    harness.log.create_topic(topic, 2)  # idempotent
    assert isinstance(harness.consumer(topic), Consumer)


def test_order_per_partition_resume_from_the_commit_and_close_hands_back(harness: Harness) -> None:
    topic = harness.topic(3)
    assert harness.log.publish(topic, records(150)) == 150
    first = harness.consumer(topic)
    got = harness.drain(first, lambda g: len(g) >= 150)  # commits every batch
    assert sorted(numbers(got)) == list(range(150))
    for event in got:
        assert event.partition == partition_for(event.key, 3)
        assert event.topic == topic
    for part in range(3):
        offsets = [e.offset for e in got if e.partition == part]
        assert offsets == sorted(offsets)
        assert len(set(offsets)) == len(offsets)
    for key in {e.key for e in got}:
        assert numbers([e for e in got if e.key == key]) == sorted(
            numbers([e for e in got if e.key == key])
        )
    harness.log.publish(topic, records(30, start=150))
    held: list[Event] = []
    deadline = time.monotonic() + 30
    while not held:  # polled and never committed: close hands them to the group
        assert time.monotonic() < deadline, "the new events never came"
        held = first.poll(10, 0.2)
    first.close()

    harness.log.publish(topic, records(30, start=180))
    second = harness.consumer(topic)
    resumed = harness.drain(second, lambda g: set(range(150, 210)) <= set(numbers(g)))
    assert set(numbers(held)) <= set(numbers(resumed))
    assert sorted(numbers(resumed)) == list(range(150, 210)), "committed events came back"


def test_members_split_the_events_and_a_dead_members_go_to_the_living(
    harness: Harness,
) -> None:
    topic = harness.topic(4)
    a, b = harness.consumer(topic), harness.consumer(topic)
    seen: dict[str, list[int]] = {"a": [], "b": []}
    published = 0
    deadline = time.monotonic() + 40
    # keep the stream flowing until both members have had events: a Kafka member
    # gets partitions only once the group's rebalance ends
    while not (seen["a"] and seen["b"]):
        assert time.monotonic() < deadline, f"one member never got events: {seen}"
        harness.log.publish(topic, records(20, start=published))
        published += 20
        for name, member in (("a", a), ("b", b)):
            batch = member.poll(10, 0.2)
            assert member.commit(batch)
            seen[name] += numbers(batch)
    while len(seen["a"]) + len(seen["b"]) < published:  # both poll: nobody looks dead
        assert time.monotonic() < deadline, f"events missing: {published} published, {seen}"
        for name, member in (("a", a), ("b", b)):
            batch = member.poll(100, 0.2)
            assert member.commit(batch)
            seen[name] += numbers(batch)
    assert not set(seen["a"]) & set(seen["b"]), "an event went to both members"
    assert sorted(seen["a"] + seen["b"]) == list(range(published))

    # a takes a batch and dies holding it (stops polling, never commits)
    held: list[Event] = []
    while not held:
        assert time.monotonic() < deadline + 20, "a got no event to hold"
        harness.log.publish(topic, records(40, start=published))
        published += 40
        held = a.poll(10, 0.5)
    taken = harness.drain(
        b,
        lambda g: set(numbers(held)) <= set(numbers(g)),
        timeout_s=harness.session_s * 3 + 20,
    )
    assert set(numbers(held)) <= set(numbers(taken))


#: Backends known to break the property below, and why (not fixed yet: issue 13's note).
KNOWN_OUT_OF_ORDER = {
    "nats": "a JetStream pull consumer serves new messages at once and redelivers a dead "
    "member's after their ack wait: they come back after newer ones",
    "kafka": "on Tansu, a member joining while a dead one is still in the group got no "
    "partition within the test's wait (48 s, 2026-12-03)",
}


def test_a_dead_members_events_come_back_before_the_newer_ones_of_their_partition(
    harness: Harness, request: pytest.FixtureRequest
) -> None:
    """Per partition, events go out in order, to the next member too: what a member held
    when it died comes back first, never overtaken by newer events of its keys (a
    restarted stream processor met a customer's payment before the one it followed:
    its window features missed it, 2026-12-03)."""
    if harness.backend in KNOWN_OUT_OF_ORDER:
        request.applymarker(pytest.mark.xfail(reason=KNOWN_OUT_OF_ORDER[harness.backend],
                                              strict=harness.backend == "nats"))  # fmt: skip
    topic = harness.topic(1)
    harness.log.publish(topic, records(30, keys=3))
    group = f"ordered-{topic}"  # its own (a Kafka group spans topics: a dead member in "g"
    a = harness.consumer(topic, group)  # stalls the next tests' rebalances)
    held: list[Event] = []
    deadline = time.monotonic() + 40
    while not held:  # a takes a batch and dies holding it (stops polling, never commits)
        assert time.monotonic() < deadline, "a got no event to hold"
        held = a.poll(10, 0.5)
    harness.log.publish(topic, records(30, start=30, keys=3))
    b = harness.consumer(topic, group)
    taken = harness.drain(
        b, lambda g: set(range(60)) <= set(numbers(g)), timeout_s=harness.session_s * 3 + 30
    )
    assert numbers(taken) == list(range(60)), "delivered out of the partition's order"


def test_replay_from_an_offset_and_from_a_time(harness: Harness) -> None:
    log = harness.log
    topic = harness.topic(2)
    log.publish(topic, records(40, keys=8))
    before = now_ms()
    while now_ms() <= before:  # the next publish is stamped strictly later
        time.sleep(0.001)
    since = now_ms()
    log.publish(topic, records(30, start=40, keys=8))
    for part in range(2):
        everything = log.replay(topic, part)
        assert everything, "keys k0..k7 fill both partitions"
        assert all(e.partition == part for e in everything)
        assert numbers(everything) == sorted(numbers(everything))
        wanted = [n for n in range(70) if partition_for(f"k{n % 8}", 2) == part]
        assert numbers(everything) == wanted
        middle = everything[len(everything) // 2]
        assert log.replay(topic, part, offset=middle.offset) == everything[len(everything) // 2 :]
        assert (
            log.replay(topic, part, offset=middle.offset, limit=3)
            == everything[len(everything) // 2 : len(everything) // 2 + 3]
        )
        late = log.replay(topic, part, since_ms=since)
        assert numbers(late) == [n for n in wanted if n >= 40]
        assert log.replay(topic, part, offset=everything[-1].offset + 1) == []
    assert log.replay(topic, 0, since_ms=now_ms() + 60_000) == []


def test_bad_input_is_a_clear_error(harness: Harness) -> None:
    log = harness.log
    with pytest.raises(NotFoundError, match="'missing' does not exist") as info:
        log.publish("missing", records(1))
    assert info.value.field == "topic"
    with pytest.raises(NotFoundError):
        log.consumer("missing", "g")
    with pytest.raises(NotFoundError):
        log.replay("missing", 0)
    with pytest.raises(ValidationError, match="letters, digits") as info:
        log.create_topic("bad topic!", 1)
    assert info.value.field == "topic"
    with pytest.raises(ValidationError, match="positive integer"):
        log.create_topic("ok", 0)
    topic = harness.topic(2)
    with pytest.raises(ConflictError, match="exists with 2 partitions"):
        log.create_topic(topic, 3)
    bad = [Record("k", b"fine"), Record("k", {"not": "bytes"})]  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="value must be bytes") as info:
        log.publish(topic, bad)
    assert info.value.field == "value"
    with pytest.raises(ValidationError, match="expected a Record"):
        log.publish(topic, [("k", b"v")])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="key must be str"):
        log.publish(topic, [Record(7, b"v")])  # type: ignore[arg-type]
    assert log.replay(topic, 0) == [], "a bad batch sends nothing"
    assert log.replay(topic, 1) == []
    with pytest.raises(ValidationError, match="out of range"):
        log.replay(topic, 2)
    with pytest.raises(ValidationError, match="not both"):
        log.replay(topic, 0, offset=0, since_ms=0)
    with pytest.raises(ValidationError, match="group"):
        log.consumer(topic, "no spaces")
    with pytest.raises(ValidationError, match="session_timeout_s"):
        log.consumer(topic, "g", session_timeout_s=0)


def _eventually(read: object, want: object, timeout_s: float = 15.0) -> None:
    """`read()` reaches `want` before the deadline (acks and fetches land asynchronously)."""
    deadline = time.monotonic() + timeout_s
    got = read()  # type: ignore[operator]
    while got != want:
        assert time.monotonic() < deadline, f"lag is {got}, not {want}"
        time.sleep(0.05)
        got = read()  # type: ignore[operator]


def test_lag_counts_what_the_group_has_not_committed(harness: Harness) -> None:
    topic = harness.topic(2)
    harness.log.publish(topic, records(30, keys=6))
    member = harness.consumer(topic)
    got: list[Event] = []
    deadline = time.monotonic() + 30
    while len(got) < 30:  # polled, not committed
        assert time.monotonic() < deadline, f"{len(got)} of 30 polled"
        got += member.poll(100, 0.2)
    _eventually(member.lag, 30)
    assert member.commit(got[:10])  # per partition, up to the last event given
    committed_through = {
        p: max(e.offset for e in got[:10] if e.partition == p)
        for p in {e.partition for e in got[:10]}
    }
    left = sum(1 for e in got if e.offset > committed_through.get(e.partition, -1))
    _eventually(member.lag, left)
    by_partition = {
        str(p): sum(1 for e in got if e.partition == p and e.offset > committed_through.get(p, -1))
        for p in range(2)
    }
    if harness.backend == "nats":  # one durable consumer per topic: one figure
        by_partition = {"all": left}
    _eventually(member.lag_by_partition, by_partition)  # type: ignore[arg-type]
    assert member.commit(got)
    _eventually(member.lag, 0)
    harness.log.publish(topic, records(5, start=30, keys=6))
    _eventually(member.lag, 5)
