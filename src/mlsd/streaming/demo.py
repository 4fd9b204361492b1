"""The demo's streaming stage: the held-out days through the embedded event log and the
real stream processor (`mlsd stream run`'s), with figures read back from the log.

The transactions are published in waves (no card or terminal twice in a wave), each
wave's feature rows written just before it is published, as the demo's HTTP replay does,
so every payment is scored on the features of its own time. The online store is a copy
of the demo's, taken before the HTTP replay writes into it, so the two replays do not
see each other's rows. Events carry their publish time (as a live stream's would), so
the latency is publish → decision published. Three malformed events are sent with the
first wave to show the dead-letter path.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
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
#: Writes the feature rows of transactions [lo, hi) into the store it was made for.
Feed = Callable[[int, int], None]
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


def _waves(customers: list[int], terminals: list[int], most: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges in order, none holding a card or a terminal twice, at most `most`."""
    waves, lo = [], 0
    seen_c: set[int] = set()
    seen_t: set[int] = set()
    for i, (c, t) in enumerate(zip(customers, terminals, strict=True)):
        if c in seen_c or t in seen_t or i - lo >= most:
            waves.append((lo, i))
            lo, seen_c, seen_t = i, set(), set()
        seen_c.add(c)
        seen_t.add(t)
    if lo < len(customers):
        waves.append((lo, len(customers)))
    return waves


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
    feed_for: Callable[[FeatureStore], Feed],
    *,
    max_events: int = 10_000,
    batch: int = 256,
    partitions: int = 4,
) -> dict[str, Any]:
    """Stream the first `max_events` of `traffic` (time order) through the processor;
    `feed_for(store)` gives the function writing a wave's feature rows into `store`."""
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
        # the feed writes each wave's rows (as the HTTP replay needs): the window state
        # would compute the same values, so the stage keeps its measured figures without it
        processor, close = open_processor(
            fast, config, features=store, follow_alias=False, window_features=False
        )
        push = feed_for(store)
        waves = _waves([t.customer_id for t in txs], [t.terminal_id for t in txs], batch)
        published, busy = 0, 0.0
        cpu, started = time.process_time(), time.perf_counter()
        try:
            for lo, hi in waves:
                push(lo, hi)
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
