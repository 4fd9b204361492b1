"""Prometheus metrics of a stream processor, in the registry it is given.

Counters of events by outcome and by partition (`rate()` of the latter is the events/s of
each partition), batch time (poll to decisions made), two latencies by partition:
event time to the decision published (end to end) and to its commit, and the group's lag
by partition (events not committed yet), read from the log at most every `lag_every_s`
since it costs a broker round trip. No label carries an entity: only the outcome and the
partition (NATS reports its lag under `partition="all"`: one consumer per topic).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: event time -> commit, seconds: from a live stream's milliseconds to a replay's hours
EVENT_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
)  # fmt: skip
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class StreamMetrics:
    """What `/metrics` shows of one processor."""

    def __init__(self, registry: CollectorRegistry | None = None, lag_every_s: float = 2.0):
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "mlsd_stream_events_total",
            "Events processed, by outcome (decided, dead_letter).",
            ["outcome"],
            registry=r,
        )
        self.batches = Counter(
            "mlsd_stream_batches_total", "Micro-batches processed and committed.", registry=r
        )
        self.lost_batches = Counter(
            "mlsd_stream_commits_lost_total",
            "Commits refused because the group had moved the events to another member.",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "mlsd_stream_batch_seconds",
            "Time of one micro-batch, poll to decisions made (published with the commit).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.partition_events = Counter(
            "mlsd_stream_partition_events_total",
            "Events processed and committed, by input partition (rate() is events/s).",
            ["partition"],
            registry=r,
        )
        self.decision_latency = Histogram(
            "mlsd_stream_decision_latency_seconds",
            "End to end: event time (the payment) to its decision published, by partition.",
            ["partition"],
            buckets=EVENT_LATENCY_BUCKETS,
            registry=r,
        )
        self.event_latency = Histogram(
            "mlsd_stream_event_latency_seconds",
            "Event time (the payment) to the commit of its decision, by partition.",
            ["partition"],
            buckets=EVENT_LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "mlsd_stream_lag_events",
            "Events of the input topic the group has not committed (as this member sees), "
            "by partition.",
            ["partition"],
            registry=r,
        )
        self.lag_every_s = lag_every_s
        self._lag_read = 0.0

    def lag_due(self) -> bool:
        """True when the lag should be read again (and the clock for it restarts)."""
        now = time.monotonic()
        if now - self._lag_read < self.lag_every_s:
            return False
        self._lag_read = now
        return True


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """`histogram.observe(v)` for each of `values` (a labelled child), counted per bucket
    with numpy: a batch's thousands of latencies cost one pass, not one call each.

    It adds to prometheus_client's own bucket and sum values (the same ones `observe`
    adds to); a client without them gets one `observe` per value.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values.tolist():
            histogram.observe(v)
        return
    if not len(values):
        return
    counts = np.bincount(np.searchsorted(np.asarray(bounds), values, side="left"),
                         minlength=len(bounds))  # fmt: skip
    for bucket, count in zip(buckets, counts.tolist(), strict=False):
        if count:
            bucket.inc(count)
    total.inc(float(values.sum()))
