"""A consumer process for the kill -9 test: at-least-once in, idempotent out.

Reads the group `proc` on topic `input` of the event log MLSD_EVENT_LOG names and,
per batch: writes one output row per event keyed by its event id (INSERT OR IGNORE,
so a redelivered event changes nothing), appends every delivery to `deliveries`,
commits that SQLite transaction (fsync), and only then commits the batch on the log.
`--pace-ms` slows each batch so a test can kill it mid-stream.

    python worker.py OUTPUT.sqlite [--pace-ms N] [--session-s S]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import time

from mlsd.settings import Settings
from mlsd.streaming import open_event_log


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output")
    parser.add_argument("--pace-ms", type=float, default=0.0)
    parser.add_argument("--session-s", type=float, default=1.0)
    args = parser.parse_args()
    out = sqlite3.connect(args.output, isolation_level=None)
    out.execute("PRAGMA journal_mode=WAL")
    out.execute("PRAGMA synchronous=FULL")
    out.execute("CREATE TABLE IF NOT EXISTS output (event_id TEXT PRIMARY KEY, doubled INTEGER)")
    out.execute("CREATE TABLE IF NOT EXISTS deliveries (event_id TEXT, pid INTEGER)")
    log = open_event_log(Settings())
    consumer = log.consumer("input", "proc", session_timeout_s=args.session_s)
    pid = os.getpid()
    while True:
        batch = consumer.poll(50, 0.5)
        if not batch:
            continue
        rows = [(e.value.decode(), 2 * int(e.value)) for e in batch]
        out.execute("BEGIN")
        out.executemany("INSERT OR IGNORE INTO output VALUES (?, ?)", rows)
        out.executemany("INSERT INTO deliveries VALUES (?, ?)", [(r[0], pid) for r in rows])
        out.execute("COMMIT")  # the effects are durable: now the log may forget the batch
        consumer.commit(batch)
        if args.pace_ms:
            time.sleep(args.pace_ms / 1000)


if __name__ == "__main__":
    main()
