"""kill -9 of the Kafka broker itself: Tansu on S3 storage (moto's server) keeps the
events and the group's committed offsets; after its restart the group resumes with
exactly the events it had not committed."""

from __future__ import annotations

import time

import pytest

from mlsd.streaming import Record
from mlsd.streaming.log_kafka import KafkaEventLog
from mlsd.streaming.tansu import s3_environment, start_tansu

pytestmark = [pytest.mark.kafka, pytest.mark.s3, pytest.mark.slow]


def test_a_durable_broker_killed_and_restarted_loses_and_repeats_nothing(
    s3_endpoint: str, run_id: str
) -> None:
    import boto3

    bucket = f"tansu-{run_id}"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    s3.create_bucket(Bucket=bucket)
    storage, env = f"s3://{bucket}/", s3_environment(s3_endpoint)
    broker = start_tansu(storage=storage, env=env)
    try:
        log = KafkaEventLog(broker.bootstrap)
        log.create_topic("tx", 2)
        log.publish("tx", [Record(f"k{i}", str(i).encode()) for i in range(100)])
        member = log.consumer("tx", "g", session_timeout_s=6.0)
        done: list[int] = []
        deadline = time.monotonic() + 30
        while len(done) < 60:
            assert time.monotonic() < deadline, f"{len(done)} of 60 committed"
            batch = member.poll(60 - len(done), 0.5)
            assert member.commit(batch)
            done += [int(e.value) for e in batch]
        member.close()
        log.close()
        broker.process.kill()  # SIGKILL: no clean shutdown
        broker.process.wait(timeout=10)

        broker = start_tansu(broker.port, storage=storage, env=env)  # same port, same data
        log = KafkaEventLog(broker.bootstrap)
        assert sorted(int(e.value) for p in range(2) for e in log.replay("tx", p)) == list(
            range(100)
        )
        member = log.consumer("tx", "g", session_timeout_s=6.0)
        rest: list[int] = []
        deadline = time.monotonic() + 30
        while len(rest) < 40:
            assert time.monotonic() < deadline, f"{len(rest)} of the 40 uncommitted came back"
            rest += [int(e.value) for e in member.poll(100, 0.5)]
        assert sorted(rest) == sorted(set(range(100)) - set(done)), "committed events came back"
        member.close()
        log.close()
    finally:
        broker.stop()
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)
