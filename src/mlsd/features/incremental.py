"""The incremental specification of window views: what a stream processor computes per event.

This is the reference the stream processor is held to, in plain Python and numpy, exact
rather than fast. State, per entity key: the events whose time may still fall in a window,
sorted by event time (arrival order among equal times).

- `update(event)`: insert the event (its key, event time and the columns the view reads),
  then **expire** the key's events at or before `t_max - span`, where `t_max` is the
  latest event time seen for the key and `span = max(delay + window)` over the view's
  aggregations: no later window can reach them, since a window of an event at t' >= t_max
  starts after `t' - delay - window`. An event older than its key's horizon (arriving
  more than `span` behind `t_max`) can no longer be placed and is dropped, counted in
  `late_dropped`.
- `get(key, at)`: every feature of the view for an event of `key` at `at` (at or after
  the key's latest event: the past before the horizon is expired), from the events seen
  so far: each aggregation over the events with time in `(at - delay - window, at - delay]`,
  then each derived feature over the aggregates and the columns of the key's latest event
  at or before `at` (the current event).

Fed in event-time order, ties in their tie-break order, with `get` right after each
`update`, it gives each event the batch pipeline's value (`pipeline.view_sql`): an
undelayed window counts the current event and not the ones sharing its time that come
after it (they have not arrived). A processor may keep tiles (per-minute partial sums, say)
instead of events for count, sum, mean and std, as long as its windows are the same
half-open intervals; min, max, last and distinct counts need the events (or a sketch, which
then is an approximation this reference does not make).

    >>> from datetime import timedelta
    >>> from mlsd.features.aggregations import Aggregation
    >>> from mlsd.features.definitions import Entity, FeatureView
    >>> view = FeatureView("spend", Entity("customer", "CUSTOMER_ID"), "window", ("N",),
    ...     timedelta(days=1), aggregations=(Aggregation("N", "count", None, timedelta(hours=1)),))
    >>> state = WindowState(view)
    >>> hour = 3_600_000_000
    >>> state.update({"CUSTOMER_ID": 7, "TX_DATETIME": 0}).get(7, 0)
    {'N': 1.0}
    >>> state.update({"CUSTOMER_ID": 7, "TX_DATETIME": hour}).get(7, hour)  # (0, 1 h]
    {'N': 1.0}
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from mlsd.errors import ValidationError
from mlsd.features.aggregations import window_value
from mlsd.features.definitions import FeatureView


def event_us(value: Any) -> int:
    """An event time as µs since the epoch: an int, an aware datetime or a Timestamp."""
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, datetime | pd.Timestamp):
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is None:
            raise ValidationError("event time is naive; give a UTC-aware time", field="time")
        return int(stamp.value // 1000)
    raise ValidationError(f"event time {value!r} is not a time", field="time")


class WindowState:
    """The per-key event state of one window view; `update(event)` / `get(key, at)`."""

    def __init__(self, view: FeatureView) -> None:
        if not view.streamable or view.entity is None:
            raise ValidationError(
                f"view {view.name!r} ({view.kind}) is not streamable: only window views are",
                field="kind",
            )
        self.view = view
        self.key = view.entity.join_key
        self.time = view.event_source.timestamp_field
        aggs = {a.name for a in view.aggregations}
        self.columns = sorted(
            {a.column for a in view.aggregations if a.column}
            | {x for d in view.derived for x in d.args if x not in aggs}
        )
        self.span = max(a.delay_us + a.window_us for a in view.aggregations)
        self._times: dict[int, list[int]] = {}
        self._rows: dict[int, list[tuple[Any, ...]]] = {}
        self._latest: dict[int, int] = {}
        self.late_dropped = 0

    def update(self, event: Mapping[str, Any]) -> WindowState:
        """Add one event (a mapping with the key, the time and the view's columns)."""
        for col in (self.key, self.time, *self.columns):
            if col not in event:
                raise ValidationError(f"event lacks column {col!r}", field=col)
        key, t = int(event[self.key]), event_us(event[self.time])
        times = self._times.setdefault(key, [])
        rows = self._rows.setdefault(key, [])
        latest = max(self._latest.get(key, t), t)
        if t <= latest - self.span:
            self.late_dropped += 1
            return self
        at = bisect.bisect_right(times, t)  # after the events sharing its time: arrival order
        times.insert(at, t)
        rows.insert(at, tuple(event[c] for c in self.columns))
        self._latest[key] = latest
        cut = bisect.bisect_right(times, latest - self.span)  # expire: no window reaches them
        if cut:
            del times[:cut], rows[:cut]
        return self

    def held(self, key: int) -> int:
        """How many events the state keeps for a key (bounded by the span, by design)."""
        return len(self._times.get(int(key), ()))

    def get(self, key: int, at: Any) -> dict[str, float]:
        """The view's features for an event of `key` at `at`, from the events seen so far."""
        t = event_us(at)
        times = self._times.get(int(key), [])
        rows = self._rows.get(int(key), [])
        index = {c: i for i, c in enumerate(self.columns)}
        values: dict[str, float | None] = {}
        for agg in self.view.aggregations:
            lo = bisect.bisect_right(times, t - agg.delay_us - agg.window_us)
            hi = bisect.bisect_right(times, t - agg.delay_us)
            col = index.get(agg.column or "", -1)
            window = np.asarray([r[col] for r in rows[lo:hi]] if col >= 0 else np.zeros(hi - lo))
            values[agg.name] = window_value(agg.function, window)
        current = bisect.bisect_right(times, t) - 1
        for d in self.view.derived:
            args = {
                x: values[x]
                if x in values
                else (None if current < 0 else float(rows[current][index[x]]))
                for x in d.args
            }
            values[d.name] = d.value(args)
        out: dict[str, float] = {}
        for f in self.view.features:
            v = values[f]
            out[f] = np.nan if v is None else float(v)
        return out
