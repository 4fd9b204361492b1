"""The stream processor: transactions in, micro-batches through THE scoring pipeline,
decisions out; at-least-once delivery with effects keyed by transaction id.

One loop, one batch in flight (that is the back-pressure: the log holds what is not
polled yet), columnar per batch: no step builds per-event Python objects beyond the
transactions and records the pipeline and the log take. Per batch:

1. poll up to `batch` events of the input topic in the consumer group;
2. decode them into columns (`mlsd.streaming.codec.decode_batch`); an event that does
   not decode, or whose scoring raises on its own, goes to the dead-letter topic with the
   reason, once, and the rest of the batch is scored;
3. with window features on (`mlsd.streaming.window_features`), advance the window state
   by the batch in event-time order, keep the fresh features for the online store, and
   fill the model inputs as one matrix (`mlsd.streaming.assembly`);
4. score the rest in one `ScoringRequest(entry="stream")`: the same routing, cache,
   model and observers as every other entry point; the prediction log records each row
   under `tx-{transaction_id}`; the decisions are encoded for the batch at once;
5. every `commit_batches` batches: write their fresh features to the online store (one
   write: HTTP serving sees them when their decisions go out), then publish their
   decisions (keyed by customer, carrying the transaction id) and dead letters, one call
   each;
6. wait until the prediction log holds those batches durably (`wait_durable`);
7. only then commit them on the log.

A crash anywhere before 7 re-delivers the batches to the next member: the decisions and
log records it produces carry the same transaction ids, so a reader keeping one per id
sees every input exactly once. A store outage (UnavailableError) is not a poison: the
batch is not committed and comes back.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mlsd.errors import MlsdError, NotFoundError, UnavailableError, ValidationError
from mlsd.inference.log_observer import PredictionLogObserver
from mlsd.inference.observers import ScoringRequest
from mlsd.inference.pipeline import RowBuilder, ScoringPipeline
from mlsd.predlog import PredictionLog
from mlsd.predlog.record import PredictionRecord
from mlsd.streaming.assembly import BatchLayout, batch_layout
from mlsd.streaming.codec import (
    DecodedBatch,
    dead_letter_record,
    decision_records,
    decode_batch,
)
from mlsd.streaming.log import Event, EventLog, Record, now_ms
from mlsd.streaming.metrics import StreamMetrics, observe_many
from mlsd.streaming.window_features import WindowFeatures

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamConfig:
    """Topics, group and batching of one processor."""

    input_topic: str = "transactions"
    output_topic: str = "decisions"
    dead_letter_topic: str = "transactions-dead"
    group: str = "mlsd-stream"
    model: str | None = None  # the pipeline's endpoint; None: its default
    batch: int = 256
    partitions: int = 4  # of the input topic, if the processor creates it
    poll_timeout_s: float = 0.5
    session_timeout_s: float = 10.0
    durable_timeout_s: float = 30.0
    #: processed batches committed together (one durable wait of the prediction log)
    commit_batches: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= 100_000:
            raise ValidationError(f"batch must be in [1, 100000], not {self.batch}", field="batch")
        if not 1 <= self.commit_batches <= 1000:
            raise ValidationError(
                f"commit_batches must be in [1, 1000], not {self.commit_batches}",
                field="commit_batches",
            )


@dataclass
class PartitionStats:
    """What one input partition gave: events committed, and when the first and last came."""

    events: int = 0
    first_s: float = 0.0  # monotonic time of its first committed batch
    last_s: float = 0.0

    @property
    def events_per_s(self) -> float:
        """Committed events per second between its first and last commit (0 if one)."""
        span = self.last_s - self.first_s
        return self.events / span if span > 0 else 0.0


@dataclass
class StreamStats:
    """What a processor did: counts, and latencies from event time (ms) to the decision
    published (end to end) and to the batch committed."""

    consumed: int = 0  # events processed and committed
    scored: int = 0
    dead_lettered: int = 0
    batches: int = 0
    not_held: int = 0  # batches the group had moved on before their commit (come back)
    seconds: float = 0.0
    #: the latest 100,000 latencies (a long run keeps the histogram, not every figure)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000), repr=False)
    decision_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000), repr=False)
    partitions: dict[int, PartitionStats] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        """Consumed events per second of running."""
        return self.consumed / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, q: float) -> float | None:
        """The q-quantile of event time → batch committed, in ms (None if no event)."""
        return float(np.quantile(self.latencies_ms, q)) if self.latencies_ms else None

    def decision_latency_ms(self, q: float) -> float | None:
        """The q-quantile of event time → decision published, in ms (None if none)."""
        return float(np.quantile(self.decision_ms, q)) if self.decision_ms else None


class _TrackingSink:
    """The prediction log, remembering the sequence number of the last append."""

    def __init__(self, predictions: PredictionLog) -> None:
        self.predictions = predictions
        self.last_seq = 0

    def append(self, records: Sequence[PredictionRecord]) -> int:
        self.last_seq = self.predictions.append(records)
        return self.last_seq


class StreamProcessor:
    """Consumes transactions, scores them through the pipeline, publishes decisions."""

    def __init__(
        self,
        events: EventLog,
        pipeline: ScoringPipeline,
        predictions: PredictionLog,
        config: StreamConfig | None = None,
        metrics: StreamMetrics | None = None,
        window_features: WindowFeatures | None = None,
    ) -> None:
        self.events = events
        #: The window state updated before scoring (None: features read from the store).
        self.window_features = window_features
        self.metrics = metrics or StreamMetrics()
        self.pipeline = pipeline
        self.config = config or StreamConfig()
        self._sink = _TrackingSink(predictions)
        pipeline.add_observer(PredictionLogObserver(self._sink), critical=True)
        try:
            partitions = events.partitions(self.config.input_topic)
        except NotFoundError:  # nothing published yet: the processor waits on an empty topic
            partitions = self.config.partitions
            events.create_topic(self.config.input_topic, partitions)
        for topic in (self.config.output_topic, self.config.dead_letter_topic):
            events.create_topic(topic, partitions)
        self.consumer = events.consumer(
            self.config.input_topic,
            self.config.group,
            session_timeout_s=self.config.session_timeout_s,
        )
        self.stats = StreamStats()
        self._uncommitted: list[list[Event]] = []
        #: per processed batch: its decisions, dead letters and decided events (published
        #: with the commit)
        self._outbox: list[tuple[list[Record], list[Record], list[Event]]] = []
        self._layout: tuple[tuple[str, ...], BatchLayout | None] | None = None

    def step(self) -> int:
        """Process one micro-batch; the number of events it consumed (0: none came).

        Processed batches are committed together once `commit_batches` of them wait (or
        when a poll comes back empty): their decisions and dead letters published in one
        call each, then one durable wait of the prediction log for all of them. A crash
        re-delivers at most that many, decided again under the same ids.
        """
        batch = self.consumer.poll(self.config.batch, self.config.poll_timeout_s)
        if not batch:
            self.commit()
            return 0
        started = time.perf_counter()
        decoded = decode_batch(batch)
        dead = list(decoded.dead)
        if self.window_features is not None:
            # a store outage raises: the batch comes back
            self.window_features.prepare(decoded.columns, defer_write=True)
        index = np.arange(len(decoded.transactions))
        decisions = self._score(decoded, index, dead)
        self._outbox.append((decisions, dead, decoded.events))
        self._uncommitted.append(batch)
        self.stats.scored += len(decisions)
        self.stats.dead_lettered += len(dead)
        self.metrics.events.labels("decided").inc(len(decisions))
        self.metrics.events.labels("dead_letter").inc(len(dead))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        if len(self._uncommitted) >= self.config.commit_batches:
            self.commit()
        return len(batch)

    def _rows(self, decoded: DecodedBatch, index: np.ndarray) -> RowBuilder | None:
        """The builder of the model inputs of `decoded`'s transactions at `index`, as one
        matrix, for the signatures the window state and the request's own transforms cover
        (None without window features: the assembler reads the online store)."""
        state = self.window_features
        if state is None:
            return None

        def build(names: tuple[str, ...]) -> np.ndarray | None:
            if self._layout is None or self._layout[0] != names:
                self._layout = (names, batch_layout(names, state.features))
            layout = self._layout[1]
            if layout is None:
                return None
            return layout.fill(decoded.columns.take(index), state.rows[index])

        return build

    def _publish_outbox(self) -> None:
        """Publish the decisions and dead letters of the batches waiting for their commit."""
        decisions = [r for d, _, _ in self._outbox for r in d]
        dead = [r for _, d, _ in self._outbox for r in d]
        if decisions:
            self.events.publish(self.config.output_topic, decisions)
            self._published([e for d, _, events in self._outbox if d for e in events])
        if dead:
            self.events.publish(self.config.dead_letter_topic, dead)
        self._outbox = []

    def _published(self, events: list[Event]) -> None:
        """End-to-end latency of each decision just published: its event's time to now."""
        self._latencies(events, self.metrics.decision_latency, self.stats.decision_ms)

    @staticmethod
    def _latencies(events: Sequence[Event], histogram: Any, into: deque[float]) -> np.ndarray:
        """Each event's time to now (ms) into `into`, and by partition into `histogram`
        (seconds); the events' partitions."""
        done = now_ms()
        stamps = np.fromiter((e.timestamp_ms for e in events), np.int64, len(events))
        parts = np.fromiter((e.partition for e in events), np.int64, len(events))
        ms = (done - stamps).astype(np.float64)
        into.extend(ms.tolist())
        for partition in np.unique(parts).tolist():
            observe_many(histogram.labels(str(partition)), ms[parts == partition] / 1000.0)
        return parts

    def commit(self) -> None:
        """Publish the processed batches' decisions and dead letters, then commit the
        batches once the prediction log holds their records."""
        if not self._uncommitted:
            return
        if self.window_features is not None:
            self.window_features.write_deferred()  # an outage raises: not committed
        # wake the log's flusher now (a zero wait): its Parquet write and fsync overlap
        # the publishes below instead of following them
        self._sink.predictions.wait_durable(self._sink.last_seq, 0.0)
        self._publish_outbox()
        if not self._sink.predictions.wait_durable(
            self._sink.last_seq, self.config.durable_timeout_s
        ):
            raise UnavailableError(
                f"the prediction log did not store the batch in {self.config.durable_timeout_s}s"
                " (not committed: it will be delivered again)"
            )
        events = [e for batch in self._uncommitted for e in batch]
        if not self.consumer.commit(events):
            self.stats.not_held += 1
            self.metrics.lost_batches.inc()
        clock = time.monotonic()
        parts = self._latencies(events, self.metrics.event_latency, self.stats.latencies_ms)
        for partition, count in zip(*np.unique(parts, return_counts=True), strict=True):
            self.metrics.partition_events.labels(str(partition)).inc(int(count))
            part = self.stats.partitions.get(int(partition))
            if part is None:
                part = self.stats.partitions[int(partition)] = PartitionStats(first_s=clock)
            part.events += int(count)
            part.last_s = clock
        self.metrics.batches.inc(len(self._uncommitted))
        if self.metrics.lag_due():
            self.read_lag()
        self.stats.consumed += len(events)
        self.stats.batches += len(self._uncommitted)
        self._uncommitted = []

    def read_lag(self) -> dict[str, int]:
        """Read the group's lag by partition from the log into the gauge; the figures."""
        lags = self.consumer.lag_by_partition()
        for partition, lag in lags.items():
            self.metrics.lag.labels(partition).set(lag)
        return lags

    def _score(self, decoded: DecodedBatch, index: np.ndarray, dead: list[Record]) -> list[Record]:
        """Decisions for the transactions of `decoded` at `index`; a batch that raises is
        split until the poison is alone."""
        if not len(index):
            return []
        txs = [decoded.transactions[i] for i in index.tolist()]
        request = ScoringRequest(
            request_id=f"stream-{uuid.uuid4().hex[:12]}",
            entry="stream",
            transactions=txs,
            model=self.config.model,
            row_ids=[f"tx-{tx.transaction_id}" for tx in txs],
        )
        try:
            scored = self.pipeline.score_sync(request, rows=self._rows(decoded, index))
        except UnavailableError:
            raise  # the store or the model is down: retry the batch, do not blame the events
        except (MlsdError, ValueError, TypeError, ArithmeticError) as exc:
            if len(txs) == 1:
                reason = f"scoring failed: {type(exc).__name__}: {exc}"
                dead.append(dead_letter_record(decoded.events[int(index[0])], reason))
                return []
            half = len(index) // 2
            return self._score(decoded, index[:half], dead) + self._score(
                decoded, index[half:], dead
            )
        model = scored.model
        return decision_records(
            decoded.columns.take(index), scored.scores.tolist(), scored.decisions,
            model.name, model.version,
            scored.variant, datetime.now(UTC).isoformat(), self.consumer.member,
        )  # fmt: skip

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        max_events: int | None = None,
        idle_exit_s: float | None = None,
    ) -> StreamStats:
        """Process until `stop` is set, `max_events` were consumed, or nothing came for
        `idle_exit_s` seconds; the stats."""
        stop = stop or threading.Event()
        started = time.perf_counter()
        idle_since = time.monotonic()
        # What lives before the loop (the model, the stores, the window state, the caller's
        # objects) is left out of the cycle collector while it runs: its full collections
        # then walk only what the loop made. On the embedded benchmark they had cost 5-20 CPU
        # µs an event (a full pass over ~160,000 objects, ~0.1 s, every few thousand events),
        # the young generations ~2 more. Unfrozen at the end: cycles made before are
        # collected as usual again.
        gc.freeze()
        try:
            while not stop.is_set():
                if max_events is not None and self.stats.consumed >= max_events:
                    break
                if max_events is not None and self._pending() >= max_events:
                    self.commit()
                    continue
                if self.step():
                    idle_since = time.monotonic()
                elif idle_exit_s is not None and time.monotonic() - idle_since >= idle_exit_s:
                    break
            self.commit()
            self.read_lag()  # the gauge ends on what is left, whenever it was last read
        finally:
            gc.unfreeze()
            self.stats.seconds += time.perf_counter() - started
        return self.stats

    def _pending(self) -> int:
        return self.stats.consumed + sum(len(b) for b in self._uncommitted)

    def close(self) -> None:
        """Leave the group; what is processed and not committed goes to another member
        (call `commit()` first to keep it)."""
        self.consumer.close()
