"""Benchmark the event log backends: publish and group-consume throughput, batches of 256.

    .venv/bin/python -m benchmarks.streaming [--events 50000] [--runs 3] [--backends ...]

Per backend (embedded SQLite, Redis Streams, NATS JetStream, Kafka on Tansu started
here), per run: a fresh topic of 4 partitions; publish `--events` events of ~200 bytes
in `publish` calls of 256 (each call returns once the log holds them durably as the
backend defines it); then one group member polls batches of up to 256 and commits
each one until it has them all. Reported: the median events/s over the runs, and
consume relative to publish. Consume time counts from the first event received, so
Kafka's group join (about half the session timeout) is left out and shown apart.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from mlsd.settings import Settings
from mlsd.streaming import EventLog, Record, open_event_log
from mlsd.streaming.tansu import start_tansu

BATCH = 256
PAYLOAD = b'{"tx_id": %d, "customer_id": 1234, "terminal_id": 5678, "amount": 57.25, ' + (
    b'"tx_datetime": "2026-04-01T12:00:00+00:00", "pad": "' + b"x" * 80 + b'"}'
)


def one_run(log: EventLog, events: int, session_s: float) -> tuple[float, float, float]:
    """(publish events/s, consume events/s, seconds to the first event) on a fresh topic."""
    topic = f"bench{uuid.uuid4().hex[:8]}"
    log.create_topic(topic, 4)
    records = [Record(f"c{i % 5000}", PAYLOAD % i) for i in range(events)]
    try:
        start = time.perf_counter()
        for i in range(0, events, BATCH):
            log.publish(topic, records[i : i + BATCH])
        publish = events / (time.perf_counter() - start)
        consumer = log.consumer(topic, "bench", session_timeout_s=session_s)
        joined = time.perf_counter()
        got = 0
        first = 0.0
        while got < events:
            batch = consumer.poll(BATCH, 1.0)
            if batch and not got:
                first = time.perf_counter()
            consumer.commit(batch)
            got += len(batch)
        consume = (events - 0) / (time.perf_counter() - first)
        consumer.close()
        return publish, consume, first - joined
    finally:
        log.delete_topic(topic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", nargs="*", default=["embedded", "redis", "nats", "kafka"])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    args = parser.parse_args()
    console = Console()
    table = Table(title=f"event log throughput, {args.events} events, batches of {BATCH}")
    for column in ("backend", "publish ev/s", "consume ev/s", "consume/publish", "first event s"):
        table.add_column(column, justify="right")
    broker = start_tansu() if "kafka" in args.backends else None
    run_id = uuid.uuid4().hex[:8]
    try:
        with tempfile.TemporaryDirectory() as tmp, Progress(console=console) as progress:
            urls = {
                "embedded": "",
                "redis": f"{args.redis}?prefix=bench{run_id}:",
                "nats": f"{args.nats}?prefix=bench{run_id}_",
                "kafka": f"kafka://{broker.bootstrap if broker else ''}?prefix=bench{run_id}_",
            }
            task = progress.add_task("runs", total=len(args.backends) * args.runs)
            for name in args.backends:
                log = open_event_log(Settings(home=Path(tmp), event_log=urls[name]))
                session = 6.0 if name == "kafka" else 10.0
                runs = []
                for _ in range(args.runs):
                    runs.append(one_run(log, args.events, session))
                    progress.advance(task)
                log.close()
                pub = statistics.median(r[0] for r in runs)
                con = statistics.median(r[1] for r in runs)
                first = statistics.median(r[2] for r in runs)
                table.add_row(
                    name, f"{pub:,.0f}", f"{con:,.0f}", f"{con / pub:.2f}", f"{first:.2f}"
                )
    finally:
        if broker is not None:
            broker.stop()
    console.print(table)


if __name__ == "__main__":
    main()
