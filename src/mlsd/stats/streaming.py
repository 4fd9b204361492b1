"""Streaming drift detectors with thresholds calibrated to a false-alarm rate, not defaults.

A detector's default threshold says nothing about how often it cries wolf on *your*
data. Each detector here is calibrated by simulation: streams are drawn from the
reference sample (bootstrap: the same distribution, no drift), the detector's statistic
is run over them, and the threshold is the one at which it fires `rate` times per event
(say once per 100,000 events). That makes alarms of different detectors comparable,
and the false-alarm cost a stated number.

Every detector speaks river's shape: `update(x)` returns self, `get()` reads the
statistic, `drift_detected` is a read-only flag for the last update. After an alarm the
statistic restarts, so a stream's alarms count false alarms at the calibrated rate.

- `PageHinkley`: two-sided CUSUM of the standardised values, anchored on the reference
  mean (a mean shift, up or down). Calibration is exact and vectorised: the CUSUM is
  `C_t - min C_s` of a cumulative sum (Lindley's recursion).
- `KSWIN`: the Kolmogorov-Smirnov distance between the last `window` values and the
  reference distribution, on the reference's bins, checked every `stride` events (any
  change of shape, not only of the mean).
- `ADWIN`: river's adaptive window (a change of mean at an unknown scale), its `delta`
  chosen by bisection so that it fires at the rate.

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> reference = rng.normal(size=20_000)
>>> ph = PageHinkley.calibrate(reference, rate=1e-4, rng=np.random.default_rng(0))
>>> round(ph.threshold, 2)
29.07
>>> stream = np.concatenate([rng.normal(size=2_000), rng.normal(0.5, 1.0, size=1_000)])
>>> [i for i, x in enumerate(stream) if ph.update(x).drift_detected][:3]  # shift at 2000
[2072, 2112, 2172]
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Protocol, Self

import numpy as np
from numpy.typing import NDArray

DEFAULT_RATE = 1e-5
"""One false alarm per 100,000 events."""


class Detector(Protocol):
    """The shape every streaming detector shares."""

    def update(self, x: float) -> Self:
        """Take one value; returns self."""
        ...

    def get(self) -> float:
        """The current statistic."""
        ...

    @property
    def drift_detected(self) -> bool:
        """Whether the last update raised an alarm."""
        ...


def _check_rate(rate: float) -> float:
    if not 0.0 < rate < 0.5:
        raise ValueError(f"a false-alarm rate must be in (0, 0.5) per event, not {rate}")
    return rate


def _sample(reference: NDArray[Any]) -> NDArray[np.float64]:
    x = np.asarray(reference, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size < 2:
        raise ValueError("calibration needs at least 2 finite reference values")
    return x


Records = tuple[NDArray[np.int64], NDArray[np.float64]]
"""A stream's running maximum where it rises: (event index, new maximum)."""


def records(path: NDArray[np.float64], times: NDArray[np.int64]) -> Records:
    """The points where `path`'s running maximum rises (all a first passage needs)."""
    running = np.maximum.accumulate(path)
    rises = np.flatnonzero(np.diff(running, prepend=-np.inf) > 0)
    return times[rises], running[rises]


def renewal_threshold(streams: list[Records], rate: float, horizon: int) -> float:
    """The threshold at which alarms come `rate` times per event, by renewal theory.

    Each stream holds the records of its statistic without restarts: until the first
    alarm, the same as the detector's. A detector restarts afresh after each alarm, so
    alarms form a renewal process and come at 1 / E[time to the first alarm] per event:
    the threshold is the one whose mean first-passage time over the simulated streams is
    1 / rate. A stream that never crosses counts `horizon` (a slight overestimate of the
    rate, so the threshold errs high: fewer false alarms, not more).
    """
    target = 1.0 / rate

    def mean_passage(level: float) -> float:
        total = 0.0
        for times, values in streams:
            first = int(np.searchsorted(values, level, side="right"))
            total += times[first] if first < len(times) else horizon
        return total / len(streams)

    low = min(float(v[0]) for _, v in streams)
    high = max(float(v[-1]) for _, v in streams)
    if mean_passage(high) < target:
        return high  # the streams were too short to see the rate: the safest threshold
    for _ in range(60):
        mid = 0.5 * (low + high)
        if mean_passage(mid) < target:
            low = mid
        else:
            high = mid
    return high


def _horizon(rate: float, horizon: int | None) -> int:
    return horizon if horizon is not None else math.ceil(4.0 / rate)


# -- Page-Hinkley -------------------------------------------------------------------------


class PageHinkley:
    """Two-sided CUSUM of (x - mean) / std, less `delta` per event; alarm above `threshold`."""

    def __init__(self, mean: float, std: float, *, threshold: float, delta: float = 0.1) -> None:
        if not std > 0 or not threshold > 0 or delta < 0:
            raise ValueError("PageHinkley needs std > 0, threshold > 0 and delta >= 0")
        self.mean, self.std, self.threshold, self.delta = mean, std, threshold, delta
        self.up = self.down = 0.0
        self.n = 0
        self._alarm = False

    def update(self, x: float) -> Self:
        """Add one value (a non-finite one is skipped)."""
        self._alarm = False
        if not math.isfinite(x):
            return self
        z = (x - self.mean) / self.std
        self.up = max(0.0, self.up + z - self.delta)
        self.down = max(0.0, self.down - z - self.delta)
        self.n += 1
        if max(self.up, self.down) > self.threshold:
            self._alarm = True
            self.up = self.down = 0.0
        return self

    def get(self) -> float:
        """The larger of the two CUSUMs."""
        return max(self.up, self.down)

    @property
    def drift_detected(self) -> bool:
        """True right after the update that crossed the threshold."""
        return self._alarm

    @classmethod
    def calibrate(
        cls,
        reference: NDArray[Any],
        *,
        rate: float = DEFAULT_RATE,
        delta: float = 0.1,
        horizon: int | None = None,
        streams: int = 100,
        rng: np.random.Generator | None = None,
    ) -> PageHinkley:
        """A detector whose threshold fires `rate` times per event on reference draws."""
        x = _sample(reference)
        rate = _check_rate(rate)
        rng = rng or np.random.default_rng(0)
        mean, std = float(x.mean()), float(x.std())
        if not std > 0:
            raise ValueError("a constant reference has no scale to detect a shift on")
        h = _horizon(rate, horizon)
        times = np.arange(1, h + 1, dtype=np.int64)
        found: list[Records] = []
        for start in range(0, streams, 8):  # 8 streams at a time: bounded memory
            b = min(8, streams - start)
            z = (rng.choice(x, size=(b, h)) - mean) / std
            top = np.zeros((b, h))
            for sign in (1.0, -1.0):  # CUSUM_t = C_t - min(0, C_1..C_t) (Lindley)
                c = np.cumsum(sign * z - delta, axis=1)
                np.maximum(top, c - np.minimum(np.minimum.accumulate(c, axis=1), 0.0), out=top)
            found.extend(records(row, times) for row in top)
        return cls(mean, std, threshold=renewal_threshold(found, rate, h), delta=delta)


# -- KSWIN --------------------------------------------------------------------------------


def _bins(edges: NDArray[np.float64], x: NDArray[Any]) -> NDArray[np.intp]:
    return np.searchsorted(edges, x, side="left")


class KSWIN:
    """KS distance of the last `window` values to the reference CDF, every `stride` events.

    The reference is its bins: `edges` (interior cut points) and the reference share in
    each of the len(edges) + 1 bins, as a stored profile has them.
    """

    def __init__(
        self,
        edges: NDArray[Any],
        shares: NDArray[Any],
        *,
        threshold: float,
        window: int = 500,
        stride: int = 50,
    ) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        shares = np.asarray(shares, dtype=np.float64)
        if shares.size != self.edges.size + 1 or not np.isclose(shares.sum(), 1.0):
            raise ValueError("KSWIN needs one share per bin (len(edges) + 1), summing to 1")
        if window < 10 or not 1 <= stride <= window or not 0 < threshold <= 1:
            raise ValueError("KSWIN needs window >= 10, 1 <= stride <= window, 0 < threshold <= 1")
        self.ref_cdf = np.cumsum(shares)
        self.threshold, self.window, self.stride = threshold, window, stride
        self._recent: deque[int] = deque()
        self._counts = np.zeros(shares.size, dtype=np.int64)
        self._since = 0
        self._d = 0.0
        self._alarm = False
        self.n = 0

    def update(self, x: float) -> Self:
        """Add one value (a non-finite one is skipped)."""
        self._alarm = False
        if not math.isfinite(x):
            return self
        b = int(np.searchsorted(self.edges, x, side="left"))
        self._recent.append(b)
        self._counts[b] += 1
        if len(self._recent) > self.window:
            self._counts[self._recent.popleft()] -= 1
        self.n += 1
        self._since += 1
        if len(self._recent) == self.window and self._since >= self.stride:
            self._since = 0
            cdf = np.cumsum(self._counts) / self.window
            self._d = float(np.abs(cdf - self.ref_cdf).max())
            if self._d > self.threshold:
                self._alarm = True
                self._recent.clear()
                self._counts[:] = 0
        return self

    def get(self) -> float:
        """The KS distance at the last check."""
        return self._d

    @property
    def drift_detected(self) -> bool:
        """True right after the check that crossed the threshold."""
        return self._alarm

    @classmethod
    def calibrate(
        cls,
        reference: NDArray[Any],
        *,
        rate: float = DEFAULT_RATE,
        n_bins: int = 10,
        window: int = 500,
        stride: int = 50,
        horizon: int | None = None,
        streams: int = 100,
        rng: np.random.Generator | None = None,
    ) -> KSWIN:
        """A detector on the reference's quantile bins, firing `rate` times per event."""
        x = _sample(reference)
        rate = _check_rate(rate)
        rng = rng or np.random.default_rng(0)
        edges = np.unique(np.quantile(x, np.arange(1, n_bins) / n_bins))
        edges = edges[edges < x.max()]
        bins = _bins(edges, x)
        shares = np.bincount(bins, minlength=edges.size + 1) / x.size
        ref_cdf = np.cumsum(shares)
        h = _horizon(rate, horizon)
        checks = np.arange(window, h + 1, stride)
        found: list[Records] = []
        for _ in range(streams):
            onehot = np.zeros((h + 1, edges.size + 1), dtype=np.int32)
            onehot[np.arange(1, h + 1), rng.choice(bins, size=h)] = 1
            running = np.cumsum(onehot, axis=0)
            counts = running[checks] - running[checks - window]
            d = np.abs(np.cumsum(counts, axis=1) / window - ref_cdf).max(axis=1)
            found.append(records(d, checks.astype(np.int64)))
        threshold = min(1.0, renewal_threshold(found, rate, h))
        return cls(edges, shares, threshold=threshold, window=window, stride=stride)


# -- ADWIN --------------------------------------------------------------------------------


def _river_adwin(delta: float, clock: int) -> Any:
    from river import drift

    return drift.ADWIN(delta=delta, clock=clock)  # type: ignore[no-untyped-call]


class ADWIN:
    """river's ADWIN (adaptive windowing) on standardised values, `delta` calibrated."""

    def __init__(self, mean: float, std: float, *, delta: float, clock: int = 32) -> None:
        if not std > 0 or not 0 < delta < 1:
            raise ValueError("ADWIN needs std > 0 and 0 < delta < 1")
        self.mean, self.std, self.delta, self.clock = mean, std, delta, clock
        self._adwin = _river_adwin(delta, clock)
        self.n = 0

    def update(self, x: float) -> Self:
        """Add one value (a non-finite one is skipped)."""
        if math.isfinite(x):
            self._adwin.update((x - self.mean) / self.std)
            self.n += 1
        return self

    def get(self) -> float:
        """The mean of the current adaptive window, in reference standard deviations."""
        return float(self._adwin.estimation)

    @property
    def drift_detected(self) -> bool:
        """True right after the update at which ADWIN cut its window."""
        return bool(self._adwin.drift_detected)

    @classmethod
    def calibrate(
        cls,
        reference: NDArray[Any],
        *,
        rate: float = DEFAULT_RATE,
        events: int | None = None,
        clock: int = 32,
        steps: int = 10,
        rng: np.random.Generator | None = None,
    ) -> ADWIN:
        """The largest `delta` (most sensitive) whose alarms on reference draws stay at or
        below `rate` per event, found by bisection on log(delta).

        `events` reference draws are run per candidate (default 20 / rate: about 20 false
        alarms at the answer, so the estimate is within roughly +-45 % at 95 %).
        """
        x = _sample(reference)
        rate = _check_rate(rate)
        rng = rng or np.random.default_rng(0)
        n = events or int(20 / rate)
        mean, std = float(x.mean()), float(x.std())
        if not std > 0:
            raise ValueError("a constant reference has no scale to detect a shift on")
        stream = ((rng.choice(x, size=n) - mean) / std).tolist()

        def alarms(delta: float) -> int:
            detector = _river_adwin(delta, clock)
            count = 0
            for v in stream:
                detector.update(v)
                count += detector.drift_detected
            return count

        low, high = math.log(1e-12), math.log(0.5)  # log(delta): alarms grow with delta
        for _ in range(steps):
            mid = 0.5 * (low + high)
            if alarms(math.exp(mid)) / n <= rate:
                low = mid
            else:
                high = mid
        return cls(mean, std, delta=math.exp(low), clock=clock)


def first_alarm(detector: Detector, stream: NDArray[Any], start: int = 0) -> int | None:
    """Index of the first alarm at or after `start` (the stream is fed from 0), or None."""
    for i, x in enumerate(np.asarray(stream, dtype=np.float64).tolist()):
        if detector.update(x).drift_detected and i >= start:
            return i
    return None


def count_alarms(detector: Detector, stream: NDArray[Any]) -> int:
    """How many alarms a stream raises (false alarms, on a stream without drift)."""
    return sum(detector.update(x).drift_detected for x in np.asarray(stream).tolist())
