"""The demo's streaming stage: the held-out days through the embedded event log and the
real stream processor (`mlsd stream run`'s), with figures read back from the log.

The processor keeps the model's window features itself (`mlsd stream run`'s default,
`mlsd.streaming.window_features`): its per-key state, rebuilt at start from the history
up to the online store's watermark, is updated with each payment before the payment is
scored, so every payment is scored on the features of its own time, itself included, as
training saw it; the fresh rows go to the online store. Events are published in batches
of `batch`, several payments of one card in a batch included. The online store is a copy
of the demo's, taken before the HTTP replay writes into it, so the two replays do not
see each other's rows. Events carry their publish time (as a live stream's would), so
the latency is publish → decision published. Three malformed events are sent with the
first wave to show the dead-letter path.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pandas as pd

from mlsd.errors import NotFoundError
from mlsd.features.offline import OfflineStore
from mlsd.features.online import SqliteOnlineStore
from mlsd.features.store import FeatureStore, open_registry
from mlsd.settings import Settings
from mlsd.streaming import open_event_log
from mlsd.streaming.batch import to_transactions
from mlsd.streaming.codec import encode_transaction
from mlsd.streaming.log import EventLog, Record
from mlsd.streaming.processor import StreamConfig
from mlsd.streaming.wiring import open_processor

INPUT, OUTPUT, DEAD = "demo-transactions", "demo-decisions", "demo-transactions-dead"
BAD = (
    Record("0", b"{not json"),
    Record("0", json.dumps({"v": 2, "transaction_id": 1}).encode()),
    Record("0", json.dumps({"v": 1, "transaction_id": 2, "customer_id": 1, "terminal_id": 1,
                            "amount": -3.0, "timestamp": "2018-04-01T00:00:00+00:00"}).encode()),
)  # fmt: skip


def _copy_online(settings: Settings, to: Path) -> SqliteOnlineStore:
    """A copy of the demo's embedded online store (SQLite's backup: consistent)."""
    to.unlink(missing_ok=True)
    source = sqlite3.connect(settings.path("features", "online.sqlite"))
    target = sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    return SqliteOnlineStore(to)


def _count(log: EventLog, topic: str, field: str | None = None) -> tuple[int, int]:
    """(events of `topic`, those whose `field` is "fraud")."""
    total = flagged = 0
    for partition in range(log.partitions(topic)):
        offset = 0
        while got := log.replay(topic, partition, offset=offset, limit=5000):
            total += len(got)
            if field is not None:
                flagged += sum(json.loads(e.value).get(field) == "fraud" for e in got)
            offset = got[-1].offset + 1
    return total, flagged


def demo_step(
    settings: Settings,
    traffic: pd.DataFrame,
    *,
    max_events: int = 10_000,
    batch: int = 256,
    partitions: int = 4,
) -> dict[str, Any]:
    """Stream the first `max_events` of `traffic` (time order) through the processor, its
    window features on."""
    rows = traffic.iloc[:max_events]
    txs = to_transactions(rows)
    scratch = settings.path("events", "demo-online.sqlite")
    scratch.parent.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(settings, open_registry(settings), _copy_online(settings, scratch),
                         OfflineStore(settings.path("features", "offline")))  # fmt: skip
    log = open_event_log(settings)
    fast = settings.model_copy(update={"prediction_log_flush_seconds": 0.05})
    try:
        for topic in (INPUT, OUTPUT, DEAD):  # a rerun's figures are its own
            try:
                log.delete_topic(topic)
            except NotFoundError:
                continue
        log.create_topic(INPUT, partitions)
        config = StreamConfig(INPUT, OUTPUT, DEAD, group="demo", batch=batch,
                              partitions=partitions, poll_timeout_s=0.05)  # fmt: skip
        began = time.perf_counter()
        processor, close = open_processor(fast, config, features=store, follow_alias=False)
        opened_s = time.perf_counter() - began
        state = processor.window_features
        rebuilt = state.rebuilt if state is not None else None
        waves = [(lo, min(lo + batch, len(txs))) for lo in range(0, len(txs), batch)]
        published, busy = 0, 0.0
        cpu, started = time.process_time(), time.perf_counter()
        try:
            for lo, hi in waves:
                records = [Record(str(tx.customer_id), encode_transaction(tx)) for tx in txs[lo:hi]]
                log.publish(INPUT, [*records, *(BAD if lo == 0 else ())])
                published += len(records) + (len(BAD) if lo == 0 else 0)
                while processor.stats.scored + processor.stats.dead_lettered < published:
                    began = time.perf_counter()
                    processor.step()
                    busy += time.perf_counter() - began
            began = time.perf_counter()
            processor.commit()
            busy += time.perf_counter() - began
            lags = processor.read_lag()
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            stats = processor.stats
        finally:
            close()
        decisions, frauds = _count(log, OUTPUT, "decision")
        dead, _ = _count(log, DEAD)
    finally:
        log.close()
        store.close()
        for leftover in scratch.parent.glob(f"{scratch.name}*"):
            leftover.unlink()
    return {
        "events": published,
        "transactions": len(txs),
        "malformed_sent": len(BAD),
        "waves": len(waves),
        "window_features": state is not None,
        "history_events": sum(rebuilt.history.values()) if rebuilt is not None else 0,
        "rebuild_s": rebuilt.seconds if rebuilt is not None else 0.0,
        "open_s": opened_s,
        "partitions": partitions,
        "seconds": wall,
        "processor_seconds": busy,
        "events_per_s": published / wall if wall > 0 else 0.0,
        "processor_events_per_s": stats.consumed / busy if busy > 0 else 0.0,
        "cpu_s_per_million": cpu / published * 1e6 if published else 0.0,
        "e2e_p50_ms": stats.decision_latency_ms(0.5),
        "e2e_p99_ms": stats.decision_latency_ms(0.99),
        "consumed": stats.consumed,
        "decisions_published": decisions,
        "decided_fraud": frauds,
        "dead_letters": dead,
        "lag_left": sum(lags.values()),
        "per_partition": {str(p): s.events for p, s in sorted(stats.partitions.items())},
        "log": log.name,
    }
