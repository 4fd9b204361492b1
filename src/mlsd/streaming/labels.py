"""Delayed labels on a feedback topic, joined to the stream's decisions.

A fraud label becomes known days after the payment (the simulator's
`LABEL_AVAILABLE_AT`: a chargeback, an investigation). `publish_labels` puts each
transaction's label on the `labels` topic stamped with that time, in that order, keyed
by customer like the transactions:

    {"v": 1, "transaction_id": 7, "label": 1, "label_time": "...", "event_time": "..."}

`LabelConsumer` (`mlsd stream labels`) consumes it in its own group, joins each label to
the decision of the same transaction id (it reads the `decisions` topic from the start
into an index, then follows it), and writes the joined rows to the label table
(`mlsd.monitoring.label_table`, Parquet under `MLSD_HOME/labels`) before committing. A
label whose decision is not out yet is written without one and written again, joined,
when the decision comes; the table keeps one row per transaction id, so a redelivered
label only writes its row again. A label event that does not decode goes to
`labels-dead` with the reason.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from mlsd.data import schema
from mlsd.errors import NotFoundError, ValidationError
from mlsd.monitoring.label_table import LabelRow, LabelTable
from mlsd.streaming.codec import SCHEMA_VERSION, dead_letter_record
from mlsd.streaming.log import EventLog, Record

#: (score, decision, model, version, variant) of a decided transaction
Decided = tuple[float, str, str, int, str]


def label_records(frame: pd.DataFrame) -> list[Record]:
    """The label events of a dataset's transactions, in label-availability order."""
    frame = frame.sort_values([schema.LABEL_AVAILABLE_AT, schema.TRANSACTION_ID], kind="stable")
    out = []
    for tid, cid, fraud, at, when in zip(
        frame[schema.TRANSACTION_ID].tolist(), frame[schema.CUSTOMER_ID].tolist(),
        frame[schema.TX_FRAUD].tolist(), frame[schema.LABEL_AVAILABLE_AT].tolist(),
        frame[schema.TX_DATETIME].tolist(), strict=True,
    ):  # fmt: skip
        body = {
            "v": SCHEMA_VERSION, "transaction_id": int(tid), "label": int(fraud),
            "label_time": at.isoformat(), "event_time": when.isoformat(),
        }  # fmt: skip
        value = json.dumps(body, separators=(",", ":")).encode()
        out.append(Record(str(int(cid)), value, int(at.value // 1_000_000)))
    return out


def publish_labels(
    log: EventLog,
    frame: pd.DataFrame,
    topic: str = "labels",
    partitions: int = 4,
    until: datetime | None = None,
) -> int:
    """Publish the labels of `frame` known by `until` (all if None); how many."""
    if until is not None:
        frame = frame[frame[schema.LABEL_AVAILABLE_AT] <= pd.Timestamp(until)]
    log.create_topic(topic, partitions)
    records = label_records(frame)
    for i in range(0, len(records), 2048):
        log.publish(topic, records[i : i + 2048])
    return len(records)


def _time(body: dict[str, Any], name: str) -> datetime:
    raw = body.get(name)
    try:
        when = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{name} {raw!r} is not ISO-8601", field=name) from None
    if when.tzinfo is None:
        raise ValidationError(f"{name} {raw!r} has no time zone", field=name)
    return when.astimezone(UTC)


def decode_label(value: bytes) -> LabelRow:
    """The label in an event value; ValidationError naming what is wrong."""
    try:
        body = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"not JSON: {exc}", field="value") from None
    if not isinstance(body, dict):
        raise ValidationError("not a JSON object", field="value")
    if body.get("v") != SCHEMA_VERSION:
        raise ValidationError(f"schema version {body.get('v')} is not supported", field="v")
    tid = body.get("transaction_id")
    if isinstance(tid, bool) or not isinstance(tid, int) or tid < 0:
        raise ValidationError(
            f"transaction_id must be a non-negative integer, not {tid!r}", field="transaction_id"
        )
    label = body.get("label")
    if isinstance(label, bool) or label not in (0, 1):
        raise ValidationError(f"label must be 0 or 1, not {label!r}", field="label")
    return LabelRow(tid, int(label), _time(body, "label_time"), _time(body, "event_time"))


def _decided(value: bytes) -> tuple[int, Decided] | None:
    try:
        d = json.loads(value)
        return int(d["transaction_id"]), (
            float(d["score"]), str(d["decision"]), str(d["model"]), int(d["version"]),
            str(d["variant"]),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return None  # not a decision of this schema: nothing to join to


@dataclass
class LabelStats:
    """What a labels consumer did."""

    labels: int = 0
    joined: int = 0  # rows written with their decision (at once, or once it came)
    waiting: int = 0  # labels written whose decision is not out yet
    dead_lettered: int = 0
    decisions_seen: int = 0


class LabelConsumer:
    """Consumes the labels topic, joins decisions by transaction id, writes the table."""

    def __init__(
        self,
        events: EventLog,
        table: LabelTable,
        *,
        topic: str = "labels",
        decisions: str = "decisions",
        dead_letter: str = "labels-dead",
        group: str = "mlsd-labels",
        partitions: int = 4,
        session_timeout_s: float = 10.0,
    ) -> None:
        self.events, self.table = events, table
        self.topic, self.decisions, self.dead_letter = topic, decisions, dead_letter
        for name in (topic, decisions):
            try:
                events.partitions(name)
            except NotFoundError:
                events.create_topic(name, partitions)
        events.create_topic(dead_letter, events.partitions(topic))
        self.consumer = events.consumer(topic, group, session_timeout_s=session_timeout_s)
        self.stats = LabelStats()
        self._index: dict[int, Decided] = {}
        self._next = dict.fromkeys(range(events.partitions(decisions)), 0)
        known = table.read()
        unjoined = known[known["decision"].isna()]
        self._waiting: dict[int, LabelRow] = {
            tid: LabelRow(tid, label, at, when)
            for tid, label, at, when in zip(
                unjoined["TRANSACTION_ID"].tolist(), unjoined["label"].tolist(),
                unjoined["label_time"].dt.to_pydatetime().tolist(),
                unjoined["event_time"].dt.to_pydatetime().tolist(), strict=True,
            )
        }  # fmt: skip

    def _follow_decisions(self) -> list[LabelRow]:
        """Read the decisions published since the last call; the waiting labels they join."""
        ready: list[LabelRow] = []
        for partition, offset in self._next.items():
            while True:
                got = self.events.replay(self.decisions, partition, offset=offset, limit=5000)
                if not got:
                    break
                for event in got:
                    found = _decided(event.value)
                    if found is None:
                        continue
                    self._index[found[0]] = found[1]
                    waiting = self._waiting.pop(found[0], None)
                    if waiting is not None:
                        ready.append(self._join(waiting))
                offset = got[-1].offset + 1
                self.stats.decisions_seen += len(got)
            self._next[partition] = offset
        return ready

    def _join(self, row: LabelRow) -> LabelRow:
        decided = self._index.get(row.transaction_id)
        if decided is None:
            return row
        score, decision, model, version, variant = decided
        return replace(row, score=score, decision=decision, model=model, version=version,
                       variant=variant)  # fmt: skip

    def step(self, batch: int = 1024, timeout_s: float = 0.5) -> int:
        """Follow the decisions, consume one batch of labels, write, commit; events taken."""
        rows = self._follow_decisions()
        events = self.consumer.poll(batch, timeout_s)
        dead: list[Record] = []
        for event in events:
            try:
                label = decode_label(event.value)
            except ValidationError as exc:
                dead.append(dead_letter_record(event, f"{exc.field}: {exc.message}"))
                continue
            joined = self._join(label)
            if joined.decision is None:
                self._waiting[label.transaction_id] = label
            rows.append(joined)
        self.table.write(rows)  # durable before the commit: a crash re-delivers, never loses
        if dead:
            self.events.publish(self.dead_letter, dead)
        if events:
            self.consumer.commit(events)
        self.stats.labels += len(events) - len(dead)
        self.stats.joined += sum(r.decision is not None for r in rows)
        self.stats.waiting = len(self._waiting)
        self.stats.dead_lettered += len(dead)
        return len(events)

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        max_events: int | None = None,
        idle_exit_s: float | None = None,
    ) -> LabelStats:
        """Consume until `stop` is set, `max_events` labels were taken, or nothing came for
        `idle_exit_s` seconds."""
        stop = stop or threading.Event()
        idle_since = time.monotonic()
        while not stop.is_set() and (
            max_events is None or self.stats.labels + self.stats.dead_lettered < max_events
        ):
            if self.step():
                idle_since = time.monotonic()
            elif idle_exit_s is not None and time.monotonic() - idle_since >= idle_exit_s:
                break
        rows = self._follow_decisions()  # decisions that came while the last labels were read
        self.table.write(rows)
        self.stats.joined += len(rows)
        self.stats.waiting = len(self._waiting)
        return self.stats

    def close(self) -> None:
        """Leave the group."""
        self.consumer.close()
