"""One event log per backend for the conformance suite: embedded, Redis, NATS, Kafka.

Each test gets a fresh namespace (a temporary folder, a Redis key prefix, a NATS
stream / Kafka topic prefix) and every topic it made is deleted afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlsd.settings import Settings
from mlsd.streaming import Event, EventLog, open_event_log
from mlsd.streaming.log import Consumer

BACKENDS = [
    "embedded",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("nats", marks=pytest.mark.nats),
    pytest.param("kafka", marks=pytest.mark.kafka),
]
#: the shortest session each backend takes: Kafka brokers refuse less than 6 s
SESSION_S = {"embedded": 1.0, "redis": 1.0, "nats": 1.0, "kafka": 6.0}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def log_settings(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, run_id: str
) -> Settings:
    """Settings whose `event_log` is `backend`, in a namespace of this test alone."""
    url = ""
    if backend == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        url = f"{request.getfixturevalue('redis_url')}?prefix={prefix}"
    elif backend == "nats":
        url = f"{request.getfixturevalue('nats_url')}?prefix=t{run_id}_"
    elif backend == "kafka":
        url = f"kafka://{request.getfixturevalue('kafka_bootstrap')}?prefix=t{run_id}_"
    return Settings(home=tmp_path / "home", event_log=url)


class Harness:
    """The log under test, the topics and consumers a test made (removed at the end)."""

    def __init__(self, log: EventLog, backend: str) -> None:
        self.log = log
        self.backend = backend
        self.session_s = SESSION_S[backend]
        self.topics: list[str] = []
        self.consumers: list[Consumer] = []
        self._n = 0

    def topic(self, partitions: int = 1) -> str:
        self._n += 1
        name = f"topic{self._n}"
        self.log.create_topic(name, partitions)
        self.topics.append(name)
        return name

    def consumer(self, topic: str, group: str = "g") -> Consumer:
        consumer = self.log.consumer(topic, group, session_timeout_s=self.session_s)
        self.consumers.append(consumer)
        return consumer

    def drain(
        self, consumer: Consumer, want: Callable[[list[Event]], bool], timeout_s: float = 30.0
    ) -> list[Event]:
        """Poll `consumer` (committing each batch) until `want(got)`, or fail at the deadline."""
        got: list[Event] = []
        deadline = time.monotonic() + timeout_s
        while not want(got):
            if time.monotonic() > deadline:
                pytest.fail(f"{self.backend}: condition not reached in {timeout_s}s ({len(got)})")
            batch = consumer.poll(100, 0.2)
            consumer.commit(batch)
            got += batch
        return got


@pytest.fixture
def harness(log_settings: Settings, backend: str) -> Iterator[Harness]:
    log = open_event_log(log_settings)
    made = Harness(log, backend)
    yield made
    for consumer in made.consumers:
        consumer.close()
    for topic in made.topics:
        log.delete_topic(topic)
    log.close()
