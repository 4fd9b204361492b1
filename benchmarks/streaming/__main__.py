"""Benchmark the event log backends: publish and group-consume throughput, batches of 256.

    .venv/bin/python -m benchmarks.streaming [--events 50000] [--runs 3] [--backends ...]

Per backend (embedded SQLite, Redis Streams, NATS JetStream, Kafka on Tansu started
here), per run: a fresh topic of 4 partitions; publish `--events` events of ~200 bytes
in `publish` calls of 256 (each call returns once the log holds them durably as the
backend defines it); then one group member polls batches of up to 256 and commits
each one until it has them all. Reported: the median events/s over the runs, and
consume relative to publish. Consume time counts from the first event received, so
Kafka's group join (about half the session timeout) is left out and shown apart.

Then the stream processor end to end on each backend (`mlsd.streaming.processor`, a
15-tree LightGBM model on the handbook's 15 features, the embedded online store and
prediction log at their default settings): `--events` transactions published, then
consumed, decoded, scored in micro-batches of 256 through the scoring pipeline,
decisions published, the log made durable and the batches committed; events/s from
the first event, and its ratio to the raw consume rate of the same backend in the
same run, and the process's CPU µs per event over the same span (column "CPU µs/ev":
all its threads, so the prediction log's flusher counts); then again with window
features (`stream run --window-features`, the default: per-customer window state
updated before scoring, fresh rows written to the online store), the columns "+window
ev/s" and "+window CPU µs/ev" (`--no-window` skips them). The transactions spread over
5,000 customers and 2,000 terminals, one second apart.

Then the latency at half that rate: the processor on a fresh topic while another process
publishes transactions stamped with the wall clock at half the processor's median
events/s (`--latency-s` seconds of them, every 10 ms what is due), and the median and
p99 of event time -> decision published (the processor's `decision_ms`) over them.

`--window-world CARDS` adds a run on a simulated world with history (CARDS cards, 31 days,
the offline tables built and materialized up to the last day, whose payments are
published on the embedded log): the processor's events/s with and without window
features, and the state's rebuild time at start (its 30 days of history, 37 for the
terminal risk).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from benchmarks.machine import snapshot
from benchmarks.streaming.paced import paced_publisher
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from mlsd.data.transaction import Transaction
from mlsd.features.store import FeatureStore
from mlsd.registry import Registry
from mlsd.serving.testing import NOW, register_tiny_model, seed_feature_store, tiny_model_artifacts
from mlsd.settings import Settings
from mlsd.streaming import EventLog, Record, open_event_log
from mlsd.streaming.codec import transaction_record
from mlsd.streaming.processor import StreamConfig
from mlsd.streaming.tansu import start_tansu
from mlsd.streaming.wiring import open_processor

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
        consume = events / (time.perf_counter() - first)
        consumer.close()
        return publish, consume, first - joined
    finally:
        log.delete_topic(topic)


def scoring_home(home: Path) -> None:
    """A feature store with the handbook views and a registry with fraud@champion."""
    settings = Settings(home=home)
    store = FeatureStore.open(settings)
    views = seed_feature_store(store)
    store.close()
    registry = Registry.open(settings)
    register_tiny_model(registry, tiny_model_artifacts(1), views)
    registry.set_alias("fraud", "champion", 1, reason="benchmark", actor="benchmark")
    registry.close()


def processor_run(
    home: Path, url: str, events: int, session_s: float, window_features: bool = False
) -> tuple[float, float]:
    """End-to-end processor (events/s from its first event, CPU µs per event: the
    process's CPU time, every thread, over the same span) on the log `url` names."""
    settings = Settings(home=home, event_log=url)
    log = open_event_log(settings)
    log.create_topic("transactions", 4)
    txs = [
        Transaction(
            i, 1 + i % 5000, 1 + i % 2000, 5.0 + i % 300, NOW - timedelta(seconds=events - i)
        )
        for i in range(events)
    ]
    for i in range(0, events, BATCH):
        log.publish("transactions", [transaction_record(tx) for tx in txs[i : i + BATCH]])
    config = StreamConfig(batch=BATCH, session_timeout_s=session_s)
    processor, close = open_processor(
        settings, config, follow_alias=False, window_features=window_features
    )
    try:
        while not processor.step():  # the group join (Kafka) is not throughput
            pass
        start, cpu = time.perf_counter(), time.process_time()
        first = processor.stats.consumed
        processor.run(max_events=events)
        done = processor.stats.consumed - first
        rate = done / (time.perf_counter() - start)
        cpu_us = (time.process_time() - cpu) / done * 1e6
    finally:
        close()
        for topic in ("transactions", "decisions", "transactions-dead"):
            log.delete_topic(topic)
        log.close()
    return rate, cpu_us


def latency_run(
    home: Path, url: str, rate: float, seconds: float, session_s: float
) -> tuple[float, float]:
    """(p50, p99) ms of event time -> decision published, transactions coming at `rate`/s."""
    settings = Settings(home=home, event_log=url)
    log = open_event_log(settings)
    log.create_topic("transactions", 4)
    warm = [Transaction(i, 1 + i, 1 + i, 5.0, NOW) for i in range(BATCH)]
    log.publish("transactions", [transaction_record(tx) for tx in warm])
    config = StreamConfig(batch=BATCH, session_timeout_s=session_s)
    processor, close = open_processor(settings, config, follow_alias=False, window_features=False)
    total = int(rate * seconds)
    publisher = multiprocessing.get_context("spawn").Process(
        target=paced_publisher, args=(home, url, rate, total, BATCH)
    )
    try:
        got = 0
        while got < BATCH:  # joined (Kafka's join takes seconds) and warm
            got += processor.step()
        processor.commit()
        processor.stats.decision_ms.clear()
        publisher.start()
        processor.run(max_events=BATCH + total, idle_exit_s=10.0)
        publisher.join(timeout=30)
        if publisher.exitcode != 0 or processor.stats.consumed < BATCH + total:
            raise RuntimeError(f"the paced publisher failed (exit code {publisher.exitcode})")
        stats = processor.stats
        p50, p99 = stats.decision_latency_ms(0.5), stats.decision_latency_ms(0.99)
    finally:
        if publisher.is_alive():
            publisher.kill()
        close()
        for topic in ("transactions", "decisions", "transactions-dead"):
            log.delete_topic(topic)
        log.close()
    return p50 or 0.0, p99 or 0.0


def window_world(cards: int, runs: int, console: Console) -> None:
    """The processor with and without window features on a world with history."""
    import pandas as pd

    from mlsd.data import schema
    from mlsd.data.config import SimulatorConfig
    from mlsd.lab.replay_world import day_start, make_world
    from mlsd.streaming.batch import to_transactions

    day_index = 30
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = SimulatorConfig.scaled(cards, 2 * cards, n_days=day_index + 1, seed=7)
        world = make_world(work, config)
        settings = Settings(home=work / "home")
        registry = Registry.open(settings)
        register_tiny_model(registry, tiny_model_artifacts(1), world.store.view_versions())
        registry.set_alias("fraud", "champion", 1, reason="benchmark", actor="benchmark")
        registry.close()
        tx = world.transactions
        start = pd.Timestamp(world.day(day_index), tz="UTC")
        end = start + pd.Timedelta(days=1)
        day = tx[(tx[schema.TX_DATETIME] >= start) & (tx[schema.TX_DATETIME] < end)]
        txs = to_transactions(day.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID]))
        rates: dict[bool, list[float]] = {False: [], True: []}
        rebuilds: list[float] = []
        for k in range(runs):
            for window in (False, True):
                world.store.online.clear()
                world.store.materialize(end=day_start(world.day(day_index)))
                topic = f"w{k}{int(window)}"
                log = open_event_log(settings)
                log.create_topic(topic, 4)
                log.publish(topic, [transaction_record(t) for t in txs])
                log.close()
                out, dead = f"{topic}o", f"{topic}d"
                cfg = StreamConfig(topic, out, dead, group=topic, batch=BATCH)
                processor, close = open_processor(
                    settings, cfg, follow_alias=False, window_features=window
                )
                try:
                    began = time.perf_counter()
                    processor.run(max_events=len(txs))
                    rates[window].append(len(txs) / (time.perf_counter() - began))
                    if processor.window_features is not None:
                        rebuilds.append(processor.window_features.rebuilt.seconds)
                finally:
                    close()
        world.close()
    table = Table(title=f"window features on a {cards}-card world: {len(txs)} payments of its "
                        f"day 31, {len(tx) - len(txs)} of history")  # fmt: skip
    for column in ("processor ev/s", "+window ev/s", "ratio", "state rebuild s"):
        table.add_column(column, justify="right")
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    table.add_row(
        f"{off:,.0f}", f"{on:,.0f}", f"{on / off:.2f}", f"{statistics.median(rebuilds):.2f}"
    )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", nargs="*", default=["embedded", "redis", "nats", "kafka"])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--no-window", action="store_true", help="Skip the window features run.")
    parser.add_argument(
        "--latency-s", type=float, default=5.0,
        help="Seconds of the paced run at half the processor's rate (0: skip it).",
    )  # fmt: skip
    parser.add_argument(
        "--window-world", type=int, default=0, metavar="CARDS",
        help="Also run on a simulated world of CARDS cards with history.",
    )  # fmt: skip
    args = parser.parse_args()
    console = Console(width=160)
    console.print(snapshot().describe())  # to set the figures against another day's
    table = Table(title=f"event log throughput, {args.events} events, batches of {BATCH}")
    columns = ("backend", "publish ev/s", "consume ev/s", "consume/publish", "join s")
    latency = ("p50 ms @½", "p99 ms @½")
    processor = (
        "processor ev/s",
        "processor/consume",
        "CPU µs/ev",
        "+window ev/s",
        "+window CPU µs/ev",
    )
    for column in (*columns, *processor, *latency):
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
            per = (2 if args.no_window else 3) + (1 if args.latency_s > 0 else 0)
            task = progress.add_task("runs", total=len(args.backends) * args.runs * per)
            scoring_home(Path(tmp) / "scoring")
            for name in args.backends:
                log = open_event_log(Settings(home=Path(tmp), event_log=urls[name]))
                session = 6.0 if name == "kafka" else 10.0
                runs = []
                for _ in range(args.runs):
                    runs.append(one_run(log, args.events, session))
                    progress.advance(task)
                log.close()
                scored: list[tuple[float, float]] = []
                windowed: list[tuple[float, float]] = []
                for k in range(args.runs):
                    for window, out in ((False, scored), (True, windowed)):
                        if window and args.no_window:
                            continue
                        tag = f"{k}w" if window else f"{k}"
                        url = urls[name].replace(f"bench{run_id}", f"proc{run_id}{tag}")
                        if name == "embedded":
                            url = f"sqlite:///{Path(tmp) / f'processor{tag}.sqlite'}"
                        home = Path(tmp) / "scoring"
                        out.append(processor_run(home, url, args.events, session, window))
                        progress.advance(task)
                pub = statistics.median(r[0] for r in runs)
                con = statistics.median(r[1] for r in runs)
                first = statistics.median(r[2] for r in runs)
                proc = statistics.median(r[0] for r in scored)
                cells = (pub, con, con / pub, first, proc, proc / con)
                row = [f"{c:,.0f}" if c >= 100 else f"{c:.2f}" for c in cells]
                row.append(f"{statistics.median(r[1] for r in scored):.1f}")
                for q, fmt in ((0, "{:,.0f}"), (1, "{:.1f}")):
                    row.append(
                        fmt.format(statistics.median(r[q] for r in windowed)) if windowed else "-"
                    )
                paced: list[tuple[float, float]] = []
                for k in range(args.runs if args.latency_s > 0 else 0):
                    url = urls[name].replace(f"bench{run_id}", f"lat{run_id}{k}")
                    if name == "embedded":
                        url = f"sqlite:///{Path(tmp) / f'latency{k}.sqlite'}"
                    home = Path(tmp) / "scoring"
                    paced.append(latency_run(home, url, proc / 2, args.latency_s, session))
                    progress.advance(task)
                for q in (0, 1):
                    row.append(f"{statistics.median(p[q] for p in paced):,.0f}" if paced else "-")
                table.add_row(name, *row)
    finally:
        if broker is not None:
            broker.stop()
    console.print(table)
    if args.window_world:
        window_world(args.window_world, args.runs, console)


if __name__ == "__main__":
    main()
