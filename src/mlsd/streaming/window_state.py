"""`FastWindowState`: the per-key window state of one view, advanced a whole batch at a time.

The readable spec is `mlsd.features.incremental.WindowState`: per event, in order, insert
it into its key's sorted events (after those sharing its time), expire what no window can
reach any more (at or before the key's latest time minus the span), drop it instead if it
is that late already; a read at `t` aggregates each window (t - delay - window, t - delay].
This class gives the same floats bit for bit (`tests/unit/streaming/test_window_features.py`
holds it to the reference), but `advance` does a batch of events, each inserted and then
read, in a few numpy calls over the whole batch rather than a Python loop per event:

- every touched key's events and the batch's new ones are merged into one array sorted by
  (key, time, old before new, batch order): one `searchsorted` places the new ones;
- each read's window bounds are `searchsorted` counts on that array, corrected for the
  batch's later events at the same time (not inserted yet when the earlier one reads) and
  for what the key's latest time at that read expires;
- sums and means are numpy's own pairwise summation (`pairwise_sums`), replayed over all
  windows at once so they round exactly as `window_value`'s `x.sum()` does; functions
  without an exact vector form (std, min, max, count_distinct) call `window_value` per
  window, as the reference does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mlsd.errors import ValidationError
from mlsd.features.aggregations import STD_EPS, window_value
from mlsd.features.definitions import FeatureView
from mlsd.features.incremental import WindowState, event_us

#: A key's latest time before it has any event (its expiry bound reaches nothing).
_NO_LATEST = -(2**62)
#: Event times beyond this many µs from the epoch (±36,000 years) are refused.
_TIME_LIMIT = 2**60
#: numpy's pairwise summation: blocks of 8 accumulators up to this many values.
_PAIRWISE_BLOCK = 128
_EMPTY_TIMES = np.zeros(0, dtype=np.int64)


def _ratio(v: list[np.ndarray], d: float) -> np.ndarray:
    return np.where(np.isnan(v[1]) | (v[1] == 0), d, v[0] / v[1])


def _zscore(v: list[np.ndarray], d: float) -> np.ndarray:
    # Python's max(1.0, nan) is 1.0: fmax, not maximum
    tiny = np.isnan(v[2]) | (v[2] <= STD_EPS * np.fmax(1.0, np.abs(v[1])))
    return np.where(tiny, d, (v[0] - v[1]) / v[2])


#: `Derived.value` over whole columns (NaN for a missing value): the same IEEE operations
#: on the same float64 values, so the same floats.
_DERIVED: dict[str, Callable[[list[np.ndarray], float], np.ndarray]] = {
    "ratio": _ratio,
    "zscore": _zscore,
    "diff": lambda v, d: v[0] - v[1],
    "product": lambda v, d: v[0] * v[1],
}


def pairwise_sums(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """`np.add.reduce(x[lo[i]:hi[i]])` for every window i, the same floats bit for bit.

    numpy sums a contiguous float64 array of n values in order when n < 8; up to 128 in 8
    interleaved accumulators combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)), then the rest
    in order; longer ones split in halves (multiples of 8). Short windows (the common case)
    are replayed here over all windows at once; longer ones call numpy itself.
    """
    n = hi - lo
    out = np.zeros(len(n), dtype=np.float64)
    if len(x) == 0 or len(n) == 0:
        return out
    last = len(x) - 1
    small = np.flatnonzero((n > 0) & (n < 8))
    if len(small):
        s_lo, s_n = lo[small], n[small]
        acc = np.zeros(len(small), dtype=np.float64)
        for j in range(int(s_n.max())):
            take = j < s_n
            acc = np.where(take, acc + x[np.minimum(s_lo + j, last)], acc)
        out[small] = acc
    mid = np.flatnonzero((n >= 8) & (n <= _PAIRWISE_BLOCK))
    if len(mid):
        m_lo, m_n = lo[mid], n[mid]
        lane = np.arange(8)
        blocks = m_n // 8
        acc8 = x[m_lo[:, None] + lane]
        for b in range(1, int(blocks.max())):
            take = (b < blocks)[:, None]
            acc8 = np.where(take, acc8 + x[np.minimum(m_lo[:, None] + 8 * b + lane, last)], acc8)
        r = ((acc8[:, 0] + acc8[:, 1]) + (acc8[:, 2] + acc8[:, 3])) + (
            (acc8[:, 4] + acc8[:, 5]) + (acc8[:, 6] + acc8[:, 7])
        )
        start = m_lo + 8 * blocks
        for j in range(7):
            take = start + j < m_lo + m_n
            r = np.where(take, r + x[np.minimum(start + j, last)], r)
        out[mid] = r
    for i in np.flatnonzero(n > _PAIRWISE_BLOCK).tolist():
        out[i] = np.add.reduce(x[int(lo[i]) : int(hi[i])])
    return out


def _group_ranges(
    groups: int, sizes: np.ndarray, old_t: np.ndarray, new_g: np.ndarray, new_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each group's first and last time over its old events (`sizes` of them per group, in
    group order, each group's sorted) and its new ones (`new_g` sorted, each group's times
    sorted): the ends of sorted runs, no `ufunc.at`. Int64 max / min for a group with none."""
    lo = np.full(groups, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(groups, np.iinfo(np.int64).min, dtype=np.int64)
    has = sizes > 0
    if has.any():
        ends = np.cumsum(sizes)
        lo[has] = old_t[(ends - sizes)[has]]
        hi[has] = old_t[ends[has] - 1]
    if len(new_g):
        first = np.searchsorted(new_g, np.arange(groups), side="left")
        last = np.searchsorted(new_g, np.arange(groups), side="right")
        mine = last > first
        lo[mine] = np.minimum(lo[mine], new_t[first[mine]])
        hi[mine] = np.maximum(hi[mine], new_t[last[mine] - 1])
    return lo, hi


class FastWindowState:
    """`WindowState`'s semantics, a batch at a time: per key, the events as an int64 time
    array and a float64 row array (the view's columns), and the key's latest time."""

    def __init__(self, view: FeatureView) -> None:
        ref = WindowState(view)  # the reference's checks, key, columns and span
        self.view, self.key, self.time = view, ref.key, ref.time
        self.columns, self.span = ref.columns, ref.span
        index = {c: i for i, c in enumerate(self.columns)}
        #: (name, function, reach µs, delay µs, column index or -1) per aggregation
        self._aggs = [
            (
                a.name,
                a.function,
                a.delay_us + a.window_us,
                a.delay_us,
                index.get(a.column or "", -1),
            )
            for a in view.aggregations
        ]
        self._derived = [(d, [(x, index.get(x, -1)) for x in d.args]) for d in view.derived]
        self._out = {f: j for j, f in enumerate(view.features)}
        self._times: dict[int, np.ndarray] = {}
        self._rows: dict[int, np.ndarray] = {}
        self._latest: dict[int, int] = {}
        self._empty = np.zeros((0, len(self.columns)), dtype=np.float64)
        self.late_dropped = 0

    # -- one event (the reference's verbs) ---------------------------------------------------

    def update(self, event: Mapping[str, Any]) -> FastWindowState:
        """Add one event (a mapping with the key, the time and the view's columns)."""
        for col in (self.key, self.time, *self.columns):
            if col not in event:
                raise ValidationError(f"event lacks column {col!r}", field=col)
        row = np.array([[float(event[c]) for c in self.columns]], dtype=np.float64)
        keys = np.array([int(event[self.key])], dtype=np.int64)
        times = np.array([event_us(event[self.time])], dtype=np.int64)
        self.advance(keys, times, row.reshape(1, len(self.columns)))
        return self

    def get(self, key: int, at: Any) -> dict[str, float]:
        """The view's features for an event of `key` at `at`, from the events seen so far."""
        keys = np.array([int(key)], dtype=np.int64)
        times = np.array([event_us(at)], dtype=np.int64)
        row = self.advance(keys, times, np.zeros((1, len(self.columns))), np.zeros(1, bool))
        return {f: float(v) for f, v in zip(self.view.features, row[0].tolist(), strict=True)}

    def held(self, key: int) -> int:
        """How many events the state keeps for a key."""
        return len(self._times.get(int(key), _EMPTY_TIMES))

    def load(self, keys: np.ndarray, times: np.ndarray, rows: np.ndarray) -> None:
        """`update` with each event of a history sorted by time (ties in their order), in
        bulk, into keys the state does not hold yet: in time order nothing is late, and
        what the updates would keep is each key's events after its latest minus the span."""
        if len(keys) == 0:
            return
        if any(int(k) in self._times for k in np.unique(keys)):
            raise ValidationError("load() is for keys the state does not hold yet", field="key")
        order = np.argsort(keys, kind="stable")  # each key's events stay in time order
        keys, times, rows = keys[order], times[order], rows[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        ends = np.r_[starts[1:], len(keys)]
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            mine = times[lo:hi]
            latest = int(mine[-1])
            keep = lo + int(np.searchsorted(mine, latest - self.span, side="right"))
            key = int(keys[lo])
            self._times[key] = np.ascontiguousarray(times[keep:hi], dtype=np.int64)
            self._rows[key] = np.ascontiguousarray(rows[keep:hi], dtype=np.float64)
            self._latest[key] = latest

    # -- a batch -----------------------------------------------------------------------------

    def advance(
        self,
        keys: np.ndarray,
        times: np.ndarray,
        rows: np.ndarray,
        insert: np.ndarray | None = None,
    ) -> np.ndarray:
        """Each event in turn (times non-decreasing): into its key's state where `insert`
        (default all), then its features at its own time, from what the state holds then.

        `keys`, `times` (µs) int64 of n events, `rows` (n, columns) float64; returns the
        (n, features) float64 values in `view.features` order, NaN where a value is None.
        """
        n = len(keys)
        out = np.full((n, len(self.view.features)), np.nan)
        if n == 0:
            return out
        keys = np.asarray(keys, dtype=np.int64)
        times = np.asarray(times, dtype=np.int64)
        rows = np.asarray(rows, dtype=np.float64).reshape(n, len(self.columns))
        want = np.ones(n, dtype=bool) if insert is None else np.asarray(insert, dtype=bool)
        if n > 1 and bool((times[1:] < times[:-1]).any()):
            raise ValidationError("a batch's events must come in time order", field="time")
        if bool((np.abs(times) > _TIME_LIMIT).any()):
            raise ValidationError("event time out of range", field="time")
        span = self.span
        ukeys, group = np.unique(keys, return_inverse=True)
        key_list = ukeys.tolist()
        old_times = [self._times.get(k, _EMPTY_TIMES) for k in key_list]
        old_rows = [self._rows.get(k, self._empty) for k in key_list]
        latest0 = np.array([self._latest.get(k, _NO_LATEST) for k in key_list], dtype=np.int64)
        sizes = np.fromiter(map(len, old_times), dtype=np.int64, count=len(key_list))
        old_t = np.concatenate(old_times)
        old_r = np.concatenate(old_rows)
        old_g = np.repeat(np.arange(len(key_list)), sizes)
        # late events are dropped, not inserted (a key's own batch events come in order:
        # only what the state held before can make one late)
        ins = want & (times > latest0[group] - span)
        self.late_dropped += int((want & ~ins).sum())
        new = np.flatnonzero(ins)
        new = new[np.argsort(group[new], kind="stable")]  # by (key, batch order) = (key, time)
        new_g, new_t = group[new], times[new]
        # the merged events, sorted by (key, time, old first, batch order): a composite key
        # of the key's group and the time, clipped to the group's range
        g_min, g_max = _group_ranges(len(key_list), sizes, old_t, new_g, new_t)
        unused = g_min > g_max
        g_min[unused] = 0
        g_max[unused] = 0
        width = int((g_max - g_min).max()) + 3
        if width * len(key_list) >= 2**62:  # keys' times too far apart for one composite
            half = n // 2
            w_lo = None if insert is None else want[:half]
            w_hi = None if insert is None else want[half:]
            first = self.advance(keys[:half], times[:half], rows[:half], w_lo)
            return np.concatenate(
                (first, self.advance(keys[half:], times[half:], rows[half:], w_hi))
            )

        def composite(g: np.ndarray, t: np.ndarray) -> np.ndarray:
            lo = g_min[g]
            out: np.ndarray = g * width + (np.clip(t, lo - 1, g_max[g] + 1) - lo + 1)
            return out

        old_c = composite(old_g, old_t)
        at = np.searchsorted(old_c, composite(new_g, new_t), side="right") + np.arange(len(new))
        total = len(old_t) + len(new)
        is_new = np.zeros(total, dtype=bool)
        is_new[at] = True
        merged_t = np.empty(total, dtype=np.int64)
        merged_g = np.empty(total, dtype=np.int64)
        merged_r = np.empty((total, len(self.columns)), dtype=np.float64)
        merged_t[at], merged_g[at], merged_r[at] = new_t, new_g, rows[new]
        merged_t[~is_new], merged_g[~is_new], merged_r[~is_new] = old_t, old_g, old_r
        merged_c = composite(merged_g, merged_t)
        # per read: what its key's events inserted so far are (batch order <= its own)
        rank = np.arange(n)
        new_rank = new_g * (n + 1) + new
        upto = np.searchsorted(new_rank, group * (n + 1) + rank, side="right")
        latest = latest0[group]
        if len(new):
            last = np.maximum(upto - 1, 0)
            mine = (upto > 0) & (new_g[last] == group)
            latest = np.where(mine, np.maximum(latest, new_t[last]), latest)
        expired = np.searchsorted(merged_c, composite(group, latest - span), side="right")
        now_c = composite(group, times)
        current = np.searchsorted(old_c, now_c, side="right") + upto  # through itself
        self._read(out, times, group, merged_c, merged_r, composite, expired, current)
        self._store(key_list, latest0, new_g, new_t, merged_t, merged_r, merged_g)
        return out

    def _read(
        self,
        out: np.ndarray,
        times: np.ndarray,
        group: np.ndarray,
        merged_c: np.ndarray,
        merged_r: np.ndarray,
        composite: Any,
        expired: np.ndarray,
        current: np.ndarray,
    ) -> None:
        """Each read's aggregations and derived features into `out`."""
        values: dict[str, np.ndarray] = {}
        for name, function, reach, delay, col in self._aggs:
            lo = np.maximum(
                np.searchsorted(merged_c, composite(group, times - reach), side="right"), expired
            )
            if delay == 0:
                hi = current
            else:
                hi = np.searchsorted(merged_c, composite(group, times - delay), side="right")
            hi = np.maximum(hi, lo)
            count = hi - lo
            if function == "count":
                got = count.astype(np.float64)
            elif function in ("sum", "mean"):
                column = merged_r[:, col] if col >= 0 else np.zeros(len(merged_r))
                sums = pairwise_sums(np.ascontiguousarray(column), lo, hi)
                got = sums if function == "sum" else sums / np.maximum(count, 1)
                got = np.where(count > 0, got, np.nan)
            elif function == "last" and col >= 0:
                got = np.where(count > 0, merged_r[np.maximum(hi - 1, 0), col], np.nan)
            else:  # window_value on each window, as the reference
                got = np.empty(len(lo), dtype=np.float64)
                for i, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
                    window = merged_r[a:b, col] if col >= 0 else np.zeros(b - a)
                    v = window_value(function, window)
                    got[i] = np.nan if v is None else v
            values[name] = got
        if self._derived:
            present = current > expired
            here = np.maximum(current - 1, 0)
            for d, args in self._derived:
                columns = []
                for x, i in args:
                    if x in values:
                        columns.append(values[x])
                    else:
                        own = merged_r[here, i] if len(merged_r) else np.full(len(here), np.nan)
                        columns.append(np.where(present, own, np.nan))
                vector = _DERIVED.get(d.operation)
                if vector is not None:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        got = vector(columns, float(d.default))
                else:  # an operation without a vector form: the reference's, row by row
                    names = [x for x, _ in args]
                    rows = zip(*(c.tolist() for c in columns), strict=True)
                    got = np.array(
                        [d.value(dict(zip(names, vs, strict=True))) for vs in rows],
                        dtype=np.float64,
                    )
                values[d.name] = got
        for f, j in self._out.items():
            out[:, j] = values[f]

    def _store(
        self,
        key_list: list[int],
        latest0: np.ndarray,
        new_g: np.ndarray,
        new_t: np.ndarray,
        merged_t: np.ndarray,
        merged_r: np.ndarray,
        merged_g: np.ndarray,
    ) -> None:
        """The touched keys' events after the batch: the merged ones each key's latest keeps."""
        if not len(new_g):
            return  # nothing inserted: nothing changes (what is held was cut already)
        none = np.zeros(len(key_list), dtype=np.int64)
        final = np.maximum(latest0, _group_ranges(len(key_list), none, new_t[:0], new_g, new_t)[1])
        keep = merged_t > final[merged_g] - self.span
        touched = np.zeros(len(key_list), dtype=bool)
        touched[new_g] = True
        kept_g = merged_g[keep]
        kept_t, kept_r = merged_t[keep], merged_r[keep]
        bounds = np.searchsorted(kept_g, np.arange(len(key_list) + 1), side="left").tolist()
        for g in np.flatnonzero(touched).tolist():
            key, a, b = key_list[g], bounds[g], bounds[g + 1]
            self._times[key] = kept_t[a:b]
            self._rows[key] = kept_r[a:b]
            self._latest[key] = int(final[g])
