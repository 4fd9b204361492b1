"""A producer at a fixed rate, for the latency at half the processor's rate: its own
process (started with spawn), as a real producer would be, off the processor's GIL."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from mlsd.data.transaction import Transaction
from mlsd.settings import Settings
from mlsd.streaming import open_event_log
from mlsd.streaming.codec import transaction_record
from mlsd.streaming.log import now_ms


def paced_publisher(home: Path, url: str, rate: float, total: int, first_id: int) -> None:
    """Publish `total` transactions stamped now at `rate` per second: every 10 ms what is
    due (run in its own process, as a real producer would be, not on the processor's GIL)."""
    log = open_event_log(Settings(home=home, event_log=url))
    began, sent = time.perf_counter(), 0
    while sent < total:
        due = min(total, int((time.perf_counter() - began) * rate) + 1) - sent
        if due > 0:
            stamp = datetime.fromtimestamp(now_ms() / 1000, UTC)
            ids = range(first_id + sent, first_id + sent + due)
            txs = [Transaction(i, 1 + i % 5000, 1 + i % 2000, 5.0 + i % 300, stamp) for i in ids]
            log.publish("transactions", [transaction_record(tx) for tx in txs])
            sent += due
        time.sleep(0.01)
    log.close()
