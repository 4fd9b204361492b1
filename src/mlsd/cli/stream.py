"""`mlsd stream`: publish transactions to the event log, and the stream processor.

    mlsd stream publish DATASET [--start DAY --end DAY]   # replay days into `transactions`
    mlsd stream run [--model fraud@champion] [--batch 256] [--max-events N] [--idle-exit S]
                    [--no-window-features]                 # fresh window features by default
    mlsd stream publish-labels DATASET [--until TIME]     # delayed labels into `labels`
    mlsd stream labels [--max-events N] [--idle-exit S]   # join them to decisions: label table

The event log is `MLSD_EVENT_LOG` ('' = the embedded SQLite log in MLSD_HOME; redis://,
nats://, kafka://): see docs/streaming.md.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from mlsd.streaming.processor import StreamStats

app = typer.Typer(help="The event log and the stream processor (docs/streaming.md).")


@app.command("publish")
def publish(
    dataset: Path = typer.Argument(..., help="A dataset folder (mlsd simulate / mlsd import)."),
    start: str | None = typer.Option(None, "--start", help="First day, YYYY-MM-DD."),
    end: str | None = typer.Option(None, "--end", help="Last day, YYYY-MM-DD (inclusive)."),
    topic: str = typer.Option("transactions", "--topic", help="Input topic."),
    partitions: int = typer.Option(4, "--partitions", min=1, max=1024, help="If created."),
) -> None:
    """Publish a dataset's transactions in time order, keyed by customer."""
    from rich.progress import Progress

    from mlsd.data import schema
    from mlsd.data.io import read_transactions
    from mlsd.data.transaction import Transaction
    from mlsd.settings import get_settings
    from mlsd.streaming import open_event_log
    from mlsd.streaming.codec import transaction_record

    frame = read_transactions(dataset, start, end)
    log = open_event_log(get_settings())
    try:
        log.create_topic(topic, partitions)
        columns = [
            frame[c].tolist()
            for c in (
                schema.TRANSACTION_ID,
                schema.CUSTOMER_ID,
                schema.TERMINAL_ID,
                schema.TX_AMOUNT,
            )
        ]
        stamps = frame[schema.TX_DATETIME].dt.to_pydatetime().tolist()
        with Progress() as progress:
            task = progress.add_task(f"publishing to {topic}", total=len(frame))
            step = 1024
            for i in range(0, len(frame), step):
                records = [
                    transaction_record(Transaction(int(t), int(c), int(m), float(a), ts))
                    for t, c, m, a, ts in zip(
                        *(col[i : i + step] for col in columns), stamps[i : i + step], strict=True
                    )
                ]
                log.publish(topic, records)
                progress.advance(task, len(records))
    finally:
        log.close()
    typer.echo(f"published {len(frame)} transactions to {topic!r} ({log.name} event log)")


@app.command("run")
def run(
    model: str = typer.Option("fraud@champion", "--model", help="NAME@ALIAS or NAME/VERSION."),
    input_topic: str = typer.Option("transactions", "--input", help="Topic to consume."),
    output_topic: str = typer.Option("decisions", "--output", help="Topic of the decisions."),
    dead_letter: str = typer.Option("transactions-dead", "--dead-letter", help="Rejects' topic."),
    group: str = typer.Option("mlsd-stream", "--group", help="Consumer group."),
    batch: int = typer.Option(256, "--batch", min=1, max=100_000, help="Micro-batch size."),
    partitions: int = typer.Option(
        4, "--partitions", min=1, max=1024, help="Of the input topic, if it does not exist yet."
    ),
    session_timeout: float = typer.Option(
        10.0,
        "--session-timeout",
        min=0.1,
        max=3599,
        help="Seconds before a silent member's events go to another (Kafka: at least 6).",
    ),
    max_events: int | None = typer.Option(None, "--max-events", min=1, help="Stop after N."),
    idle_exit: float | None = typer.Option(
        None, "--idle-exit", min=0.1, help="Stop after this many seconds without an event."
    ),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", min=1, max=65535, help="Serve Prometheus /metrics on this port."
    ),
    window_features: bool = typer.Option(
        True,
        "--window-features/--no-window-features",
        help="Keep the model's window views (customer spending, terminal risk while its "
        "7-day delay covers) as per-key state, updated by each payment before it is scored "
        "and written to the online store: the features training saw. Rebuilt on start from "
        "the history and the topic's decided events. Off: read the online store as it is.",
    ),
) -> None:
    """Consume transactions, score them in micro-batches, publish decisions, then commit."""
    from mlsd.settings import get_settings
    from mlsd.streaming.processor import StreamConfig
    from mlsd.streaming.wiring import open_processor

    config = StreamConfig(
        input_topic=input_topic,
        output_topic=output_topic,
        dead_letter_topic=dead_letter,
        group=group,
        batch=batch,
        partitions=partitions,
        session_timeout_s=session_timeout,
    )
    if metrics_port is not None:
        from mlsd.cli.serve import check_port

        check_port("127.0.0.1", metrics_port)
    processor, close = open_processor(
        get_settings(), config, model, window_features=window_features
    )
    state = processor.window_features
    if state is not None:
        r = state.rebuilt
        history = ", ".join(f"{v} {n}" for v, n in r.history.items())
        typer.echo(
            f"window features: state rebuilt in {r.seconds:.1f}s from the history "
            f"({history} events) and {r.decided} decided events of {input_topic}"
        )
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, "127.0.0.1", registry=processor.metrics.registry)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stats = processor.run(stop, max_events=max_events, idle_exit_s=idle_exit)
    except KeyboardInterrupt:
        stats = processor.stats
    finally:
        close()
    typer.echo(describe_stats(stats))


def describe_stats(stats: StreamStats) -> str:
    """The run's figures, overall and by partition (no latency figure when nothing came)."""

    def ms(value: float | None) -> str:  # a replay's latency is the payments' age: days
        if value is None:
            return "-"
        if value < 10_000:
            return f"{value:,.0f} ms"
        if value < 7_200_000:
            return f"{value / 1000:,.1f} s"
        return f"{value / 86_400_000:,.1f} days"

    lines = [
        f"consumed {stats.consumed} events in {stats.seconds:.1f}s "
        f"({stats.events_per_s:,.0f}/s): {stats.scored} decisions, "
        f"{stats.dead_lettered} dead letters, {stats.batches} batches; "
        f"event time to decision p50 {ms(stats.decision_latency_ms(0.5))}, "
        f"p99 {ms(stats.decision_latency_ms(0.99))}; to commit p50 {ms(stats.latency_ms(0.5))}, "
        f"p99 {ms(stats.latency_ms(0.99))}"
    ]
    for partition, part in sorted(stats.partitions.items()):
        lines.append(f"  partition {partition}: {part.events} events, {part.events_per_s:,.0f}/s")
    return "\n".join(lines)


@app.command("publish-labels")
def publish_labels(
    dataset: Path = typer.Argument(..., help="A dataset folder (mlsd simulate / mlsd import)."),
    start: str | None = typer.Option(None, "--start", help="First day of payments, YYYY-MM-DD."),
    end: str | None = typer.Option(None, "--end", help="Last day of payments (inclusive)."),
    until: str | None = typer.Option(
        None, "--until", help="Only labels known by this ISO time (default: all)."
    ),
    topic: str = typer.Option("labels", "--topic", help="Feedback topic."),
    partitions: int = typer.Option(4, "--partitions", min=1, max=1024, help="If created."),
) -> None:
    """Publish each transaction's fraud label, stamped with the time it becomes known
    (LABEL_AVAILABLE_AT), in that order."""
    from mlsd.data.io import read_transactions
    from mlsd.settings import get_settings
    from mlsd.streaming import open_event_log
    from mlsd.streaming.labels import publish_labels as publish

    limit = _utc_time(until, "until") if until is not None else None
    frame = read_transactions(dataset, start, end)
    log = open_event_log(get_settings())
    try:
        n = publish(log, frame, topic, partitions, limit)
    finally:
        log.close()
    typer.echo(f"published {n} labels to {topic!r} ({log.name} event log)")


@app.command("labels")
def labels(
    topic: str = typer.Option("labels", "--topic", help="Feedback topic to consume."),
    decisions: str = typer.Option("decisions", "--decisions", help="Topic of the decisions."),
    group: str = typer.Option("mlsd-labels", "--group", help="Consumer group."),
    max_events: int | None = typer.Option(None, "--max-events", min=1, help="Stop after N."),
    idle_exit: float | None = typer.Option(
        None, "--idle-exit", min=0.1, help="Stop after this many seconds without a label."
    ),
) -> None:
    """Join delayed labels to the decisions by transaction id into the label table
    (MLSD_HOME/labels, one row per transaction, read by monitoring)."""
    from mlsd.monitoring.label_table import LabelTable
    from mlsd.settings import get_settings
    from mlsd.streaming import open_event_log
    from mlsd.streaming.labels import LabelConsumer

    settings = get_settings()
    log = open_event_log(settings)
    table = LabelTable(settings.path("labels"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        consumer = LabelConsumer(log, table, topic=topic, decisions=decisions, group=group)
        try:
            stats = consumer.run(stop, max_events=max_events, idle_exit_s=idle_exit)
        except KeyboardInterrupt:
            stats = consumer.stats
        finally:
            consumer.close()
    finally:
        log.close()
    typer.echo(
        f"{stats.labels} labels into {table.folder}: {stats.joined} rows joined to their "
        f"decision, {stats.waiting} waiting for one, {stats.dead_lettered} dead letters "
        f"({stats.decisions_seen} decisions read)"
    )


def _utc_time(value: str, name: str) -> datetime:
    from mlsd.errors import ValidationError

    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"--{name} {value!r} is not an ISO time", field=name) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def register(root: typer.Typer) -> None:
    """Add the `stream` group."""
    root.add_typer(app, name="stream")
