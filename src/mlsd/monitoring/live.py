"""Live drift: a scoring observer binning served rows into windows, exported to Prometheus.

`DriftMonitor.observe` runs on the scoring path, so it only queues the batch's feature
matrix and scores (microseconds). A background thread drains the queue into one
`BinnedWindow` per (model, version, variant), closes a window once it holds
`window_rows` rows (or `window_s` seconds have passed with at least `min_rows`),
compares it with the version's reference profile and evaluates the alert rules. The rows
of shadows scored by the shadow scorer process are binned there, and their score detector
run there (`mlsd.monitoring.live_twin`): their counts arrive once per job and are added to
the same windows, with the same result.

As a Prometheus collector it exports the last closed window's drift per feature. A
version with no closed window yet exports `mlsd_drift_no_data 1` and no drift gauge
(never a NaN); one without a reference profile exports `mlsd_drift_profile_missing 1`.
Labels are model, version, variant and feature names: a small closed set, no customer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from mlsd.errors import MlsdError
from mlsd.inference.observers import ScoredBatch, TwinSpec
from mlsd.inference.spec import LoadedModel
from mlsd.monitoring.alerts import AlertEngine
from mlsd.monitoring.binning import BinnedWindow, WindowCounts
from mlsd.monitoring.drift import DriftReport, compare
from mlsd.priority import in_background
from mlsd.registry.profile import MissingProfileError, ReferenceProfile
from mlsd.stats.streaming import PageHinkley

log = logging.getLogger(__name__)

Key = tuple[str, int, str]
"""(model, version, variant)."""
ProfileLookup = Callable[[str, int], ReferenceProfile]


@dataclass
class _Open:
    window: BinnedWindow
    opened: float


@dataclass(frozen=True)
class DriftSummary:
    """The shadow process's drift work on one variant's shadows of a job: their rows' counts
    in the version's profile bins, the score detector's alarms and level after them (None:
    no detector), `mlsd.monitoring.live_twin`."""

    counts: WindowCounts
    alarms: int | None
    level: float | None


@dataclass(frozen=True)
class ClosedWindow:
    """A closed window as the dashboard draws it: its report and its scores' bin counts
    (in the profile's score bins; None when the profile has no score distribution)."""

    key: Key
    report: DriftReport
    score_counts: tuple[int, ...] | None


class DriftMonitor(Collector):
    """Observer + collector: tumbling drift windows per served version and variant.

    `history(key)` keeps the last `history_windows` closed windows of each (model, version,
    variant), oldest first: drift over time for the dashboard page (`mlsd.monitoring.dashboard`).
    """

    def __init__(
        self,
        profiles: ProfileLookup,
        *,
        window_rows: int = 5_000,
        window_s: float = 300.0,
        min_rows: int = 200,
        alerts: AlertEngine | None = None,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        score_alarm_rate: float | None = 1e-5,
        history_windows: int = 288,
        calibrations: Mapping[tuple[str, int], PageHinkley | None] | None = None,
    ) -> None:
        if window_rows < 1 or min_rows < 1 or window_s <= 0 or interval_s <= 0:
            raise ValueError("window_rows, min_rows, window_s and interval_s must be positive")
        if history_windows < 1:
            raise ValueError("history_windows must be positive")
        self.lookup = profiles
        self.window_rows, self.window_s, self.min_rows = window_rows, window_s, min_rows
        self.alerts = alerts
        self.interval_s = interval_s
        self.clock = clock
        self._queue: deque[tuple[Key, np.ndarray, np.ndarray, float]] = deque()
        self._profiles: dict[tuple[str, int], ReferenceProfile | None] = {}
        self._open: dict[Key, _Open] = {}
        self._lock = threading.Lock()  # guards the windows and reports the collector reads
        self._draining = threading.Lock()  # one drain at a time (the thread, or a caller)
        self.reports: dict[Key, DriftReport] = {}
        self.history_windows = history_windows
        self._history: dict[Key, deque[ClosedWindow]] = {}
        self.windows_closed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.score_alarm_rate = score_alarm_rate
        self._calibrated: dict[tuple[str, int], PageHinkley | None] = dict(calibrations or {})
        self._detectors: dict[Key, PageHinkley] = {}
        self.score_alarms: dict[Key, int] = {}
        #: The shadow scorer process's summaries (`observe_summary`), binned like the queue.
        self._summaries: deque[tuple[Key, DriftSummary, float]] = deque()
        #: The score detector's level of the keys whose detector runs in the shadow process.
        self._remote_levels: dict[Key, float] = {}

    # -- the scoring path ---------------------------------------------------------------------

    def observe(self, batch: ScoredBatch) -> None:
        """Queue one batch's features and scores (the binning happens off the request path)."""
        key = (batch.model.name, batch.model.version, batch.variant)
        self._queue.append((key, batch.values, batch.scores, self.clock()))

    def shadow_twin(self) -> TwinSpec:
        """The shadow scorer process bins the shadows it scores (`mlsd.monitoring.live_twin`),
        with the score detectors calibrated here so far (the same detectors, not made again)."""
        return "mlsd.monitoring.live_twin:DriftTwin", (self.score_alarm_rate, self.calibrations())

    def observe_summary(self, variant: str, model: LoadedModel, summary: Any) -> None:
        """Queue the twin's counts of a job's shadows (added to the window by the drain)."""
        if isinstance(summary, DriftSummary):
            self._summaries.append(((model.name, model.version, variant), summary, self.clock()))

    def calibrations(self) -> dict[tuple[str, int], PageHinkley | None]:
        """The score detectors' models calibrated so far, by version (fresh detectors)."""
        return dict(self._calibrated)

    def prepare(self, model: LoadedModel, _seconds: float = 0.0) -> None:
        """Fetch a freshly loaded version's profile and calibrate its score detector (a
        `ModelHost.on_load` listener): the calibration simulates a hundred reference
        streams, ~1.5 s of CPU, done at load rather than under the version's first traffic."""
        profile = self.profile(model.name, model.version)
        if profile is not None:
            self._calibration((model.name, model.version), profile)

    # -- the background side ------------------------------------------------------------------

    def profile(self, name: str, version: int) -> ReferenceProfile | None:
        """The version's profile, looked up once (None: it has none, or the lookup failed)."""
        key = (name, version)
        if key not in self._profiles:
            try:
                self._profiles[key] = self.lookup(name, version)
            except MissingProfileError:
                log.warning("%s/%s has no reference profile: no drift monitoring", name, version)
                self._profiles[key] = None
            except MlsdError as exc:
                log.error("cannot read the profile of %s/%s: %s", name, version, exc.message)
                return None  # not cached: retried at the next batch
        return self._profiles[key]

    def drain(self) -> list[DriftReport]:
        """Bin every queued batch; close the windows that are full or old. Returns closed ones."""
        with self._draining:
            return self._drain()

    def _drain(self) -> list[DriftReport]:
        # One add per (model, version, variant) for everything queued since the last drain:
        # binning costs tens of µs per call whatever its size, and a request is one row.
        grouped: dict[Key, tuple[list[np.ndarray], list[np.ndarray], float]] = {}
        while self._queue:
            key, values, scores, seen = self._queue.popleft()
            found = grouped.get(key)
            if found is None:
                grouped[key] = ([values], [scores], seen)
            else:
                found[0].append(values)
                found[1].append(scores)
        for key, (all_values, all_scores, seen) in grouped.items():
            profile = self.profile(key[0], key[1])
            if profile is None:
                continue
            width = len(profile.features)
            fits = [
                (v, sc) for v, sc in zip(all_values, all_scores, strict=True)
                if v.ndim == 2 and v.shape[1] == width
            ]  # fmt: skip
            if not fits:
                continue
            values = np.concatenate([v for v, _ in fits])
            scores = np.concatenate([sc for _, sc in fits])
            with self._lock:
                opened = self._open.get(key)
                if opened is None:
                    opened = self._open[key] = _Open(BinnedWindow(profile), seen)
            opened.window.add(values, scores)
            self.detect(key, profile, scores)
        while self._summaries:
            key, summary, seen = self._summaries.popleft()
            profile = self.profile(key[0], key[1])
            if profile is None:
                continue
            with self._lock:
                opened = self._open.get(key)
                if opened is None:
                    opened = self._open[key] = _Open(BinnedWindow(profile), seen)
                if summary.alarms is not None:
                    self.score_alarms[key] = self.score_alarms.get(key, 0) + summary.alarms
                if summary.level is not None:
                    self._remote_levels[key] = summary.level
            opened.window.merge(summary.counts)
        return self._close_due()

    def detect(self, key: Key, profile: ReferenceProfile, scores: np.ndarray) -> int | None:
        """Feed the scores to the version's Page-Hinkley detector, calibrated once on the
        profile's score quantiles at `score_alarm_rate` false alarms per score; its alarms
        (None: no detector)."""
        if self.score_alarm_rate is None or len(profile.score_quantiles) < 2:
            return None
        detector = self._detectors.get(key)
        if detector is None:
            model = self._calibration((key[0], key[1]), profile)
            if model is None:
                return None
            detector = self._detectors[key] = PageHinkley(
                model.mean, model.std, threshold=model.threshold, delta=model.delta
            )
            self.score_alarms.setdefault(key, 0)
        alarms = sum(detector.update(x).drift_detected for x in scores.tolist())
        if alarms:
            with self._lock:
                self.score_alarms[key] += alarms
        return alarms

    def level(self, key: Key) -> float | None:
        """The score detector's CUSUM over its threshold (None: no detector for `key`)."""
        detector = self._detectors.get(key)
        if detector is not None:
            return float(detector.get() / detector.threshold)
        return self._remote_levels.get(key)

    def _calibration(
        self, version: tuple[str, int], profile: ReferenceProfile
    ) -> PageHinkley | None:
        """The version's calibrated detector model, made once (None: nothing to detect)."""
        if self.score_alarm_rate is None or len(profile.score_quantiles) < 2:
            return None
        if version not in self._calibrated:
            try:
                self._calibrated[version] = PageHinkley.calibrate(
                    np.asarray(profile.score_quantiles), rate=self.score_alarm_rate
                )
            except ValueError as exc:  # a constant score: nothing to detect on
                log.warning("no score detector for %s/%s: %s", *version, exc)
                self._calibrated[version] = None
        return self._calibrated[version]

    def _close_due(self) -> list[DriftReport]:
        now = self.clock()
        closed = []
        for key, opened in list(self._open.items()):
            n = opened.window.n
            old = now - opened.opened >= self.window_s
            if n >= self.window_rows or (old and n >= self.min_rows):
                report = compare(
                    opened.window,
                    model=key[0],
                    version=key[1],
                    start=datetime.fromtimestamp(opened.opened, UTC),
                    end=datetime.fromtimestamp(now, UTC),
                )
                counts = opened.window.score_counts
                closed_window = ClosedWindow(
                    key, report, None if counts is None else tuple(int(c) for c in counts)
                )
                with self._lock:
                    self.reports[key] = report
                    del self._open[key]
                    kept = self._history.get(key)
                    if kept is None:
                        kept = self._history[key] = deque(maxlen=self.history_windows)
                    kept.append(closed_window)
                self.windows_closed += 1
                closed.append(report)
        if closed and self.alerts is not None:
            self.alerts.evaluate_reports(closed, datetime.fromtimestamp(now, UTC))
        return closed

    def history(self) -> dict[Key, list[ClosedWindow]]:
        """The last closed windows of every (model, version, variant), oldest first."""
        with self._lock:
            return {key: list(kept) for key, kept in self._history.items()}

    def open_rows(self) -> dict[Key, int]:
        """Rows in each window still open (not compared yet)."""
        with self._lock:
            return {key: opened.window.n for key, opened in self._open.items()}

    def profiles(self) -> dict[tuple[str, int], ReferenceProfile | None]:
        """The profiles looked up so far (None: that version has none)."""
        return dict(self._profiles)

    def start(self) -> None:
        """Drain in a daemon thread every `interval_s` until `close`."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=in_background(self._run), name="drift-monitor", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.drain()
            except (MlsdError, ValueError) as exc:  # a bad batch must not stop monitoring
                log.error("drift monitor: %s", exc)

    def close(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # -- Prometheus -----------------------------------------------------------------------------

    def _detector_metrics(self, labels: list[str]) -> Iterator[Any]:
        alarms = CounterMetricFamily(
            "mlsd_drift_score_alarms",
            "Alarms of the score stream's Page-Hinkley detector, calibrated to the stated "
            "false-alarm rate per score on the reference (label rate).",
            labels=[*labels, "rate"],
        )
        level = GaugeMetricFamily(
            "mlsd_drift_score_cusum_ratio",
            "The score detector's CUSUM over its threshold (an alarm at 1, then it restarts).",
            labels=labels,
        )
        with self._lock:
            counts = dict(self.score_alarms)
        rate = f"{self.score_alarm_rate:g}"
        for key, count in sorted(counts.items()):
            base = [key[0], str(key[1]), key[2]]
            alarms.add_metric([*base, rate], float(count))
            at = self.level(key)
            if at is not None:
                level.add_metric(base, at)
        yield alarms
        yield level

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges of the last closed window per version and variant (see module doc)."""
        labels = ["model", "version", "variant"]
        per_feature = {
            name: GaugeMetricFamily(f"mlsd_drift_{name}", text, labels=[*labels, "feature"])
            for name, text in (
                ("psi", "PSI of a feature in the last closed window against the reference."),
                ("js", "Jensen-Shannon divergence (bits) of a feature, last closed window."),
                ("ks", "KS distance of a numeric feature at the reference bin edges."),
                ("missing_rate", "Share of missing values of a feature, last closed window."),
            )
        }
        score = GaugeMetricFamily(
            "mlsd_drift_score_psi",
            "PSI of the score distribution, last closed window.",
            labels=labels,
        )
        joint = GaugeMetricFamily(
            "mlsd_drift_joint_psi",
            "PSI of the PCA reconstruction error (joint drift), last closed window.",
            labels=labels,
        )
        rows = GaugeMetricFamily(
            "mlsd_drift_window_rows", "Rows in the last closed drift window.", labels=labels
        )
        ended = GaugeMetricFamily(
            "mlsd_drift_window_end_timestamp_seconds",
            "When the last drift window closed (Unix time).",
            labels=labels,
        )
        no_data = GaugeMetricFamily(
            "mlsd_drift_no_data",
            "1 while a served version has no closed drift window yet (its drift gauges absent).",
            labels=labels,
        )
        missing = GaugeMetricFamily(
            "mlsd_drift_profile_missing",
            "1 for a served version without a reference profile (no drift monitoring).",
            labels=["model", "version"],
        )
        with self._lock:
            reports = dict(self.reports)
            pending = {k for k in self._open if k not in reports}
        seen = {(k[0], k[1]) for k in (*reports, *pending)}
        pending |= {
            (m, v, "")
            for (m, v), p in self._profiles.items()
            if p is not None and (m, v) not in seen
        }
        for (model, version, variant), report in sorted(reports.items()):
            base = [model, str(version), variant]
            for f in report.features:
                per_feature["psi"].add_metric([*base, f.name], f.psi)
                per_feature["js"].add_metric([*base, f.name], f.js)
                per_feature["missing_rate"].add_metric([*base, f.name], f.missing_window)
                if f.ks is not None:
                    per_feature["ks"].add_metric([*base, f.name], f.ks)
            if report.score is not None:
                score.add_metric(base, report.score.psi)
            if report.multivariate is not None:
                joint.add_metric(base, report.multivariate.psi)
            rows.add_metric(base, report.n_rows)
            if report.end is not None:
                ended.add_metric(base, report.end.timestamp())
        for model, version, variant in sorted(pending):
            no_data.add_metric([model, str(version), variant], 1.0)
        for (model, version), profile in sorted(self._profiles.items()):
            if profile is None:
                missing.add_metric([model, str(version)], 1.0)
        yield from (*per_feature.values(), score, joint, rows, ended, no_data, missing)
        if self.score_alarm_rate is not None:
            yield from self._detector_metrics(labels)
        if self.alerts is not None:
            firing = GaugeMetricFamily(
                "mlsd_alerts_firing", "Alert rules firing now, by rule and severity.",
                labels=["rule", "severity"],
            )  # fmt: skip
            counts = {(rule.name, rule.severity): 0 for rule in self.alerts.rules}
            for event in self.alerts.firing:
                counts[(event.rule, event.severity)] += 1
            for (rule_name, sev), count in sorted(counts.items()):
                firing.add_metric([rule_name, sev], float(count))
            yield firing


def registry_profiles(registry: Any) -> ProfileLookup:
    """A profile lookup on a `Registry` (by name and version)."""

    def lookup(name: str, version: int) -> ReferenceProfile:
        profile: ReferenceProfile = registry.reference_profile(registry.get(name, version))
        return profile

    return lookup
