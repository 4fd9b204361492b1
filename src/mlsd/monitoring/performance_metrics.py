"""Prometheus gauges of delayed-label performance: a collector over the latest results.

`PerformanceCollector.update(results)` keeps, per (model, version, variant), the latest
`WindowPerformance`; `refresh()` recomputes them with the `compute` function it was given
(e.g. the last day of the prediction log, labels as of now). A scrape reads what is
kept, never the log. `mlsd serve --labels` refreshes one from a background thread
(`mlsd.monitoring.performance_live`).

Names (the Grafana dashboard reads them): `mlsd_performance_auc`, `mlsd_performance_ap`,
`mlsd_performance_estimated_auc`, `mlsd_performance_label_coverage`,
`mlsd_label_lag_seconds`, labels `model`, `version`, `variant`. A figure that does not
exist (no label landed, one class, no calibration) is absent, never NaN, and
`mlsd_performance_no_data 1` (label `what`: `labels` or `estimate`) says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mlsd.monitoring.performance import WindowPerformance

LABELS = ["model", "version", "variant"]


class PerformanceCollector(Collector):
    """The latest performance per served version and variant, as gauges."""

    def __init__(self, compute: Callable[[], Sequence[WindowPerformance]] | None = None) -> None:
        self.compute = compute
        self._lock = threading.Lock()
        self.latest: dict[tuple[str, int, str], WindowPerformance] = {}

    def update(self, results: Iterable[WindowPerformance]) -> None:
        """Keep each key's result with the latest window end."""
        with self._lock:
            for r in results:
                key = (r.model, r.version, r.variant)
                old = self.latest.get(key)
                if old is None or (r.end, r.as_of) >= (old.end, old.as_of):
                    self.latest[key] = r

    def replace(self, results: Iterable[WindowPerformance]) -> None:
        """Keep exactly `results` (one per key): what a moving window computed now, so a
        version no longer in the window drops out."""
        latest = {(r.model, r.version, r.variant): r for r in results}
        with self._lock:
            self.latest = latest

    def snapshot(self) -> dict[tuple[str, int, str], WindowPerformance]:
        """A copy of what is kept."""
        with self._lock:
            return dict(self.latest)

    def refresh(self) -> None:
        """Recompute with `compute` (nothing without one)."""
        if self.compute is not None:
            self.update(self.compute())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges (see the module doc)."""
        gauges = {
            name: GaugeMetricFamily(f"mlsd_{name}", text, labels=LABELS)
            for name, text in (
                ("performance_auc", "ROC AUC of the last window on its landed labels."),
                ("performance_ap", "Average precision of the last window on its landed labels."),
                ("performance_card_precision", "Card Precision@k of the last window."),
                ("performance_block_precision", "Share of blocked transactions that were fraud."),
                ("performance_fraud_blocked_eur", "Fraud euros blocked in the last window."),
                ("performance_estimated_auc", "Label-free (CBPE) AUC of the last window."),
                ("performance_estimate_error", "Estimated minus true AUC on the labelled rows."),
                ("performance_label_coverage", "Share of the last window's predictions labelled."),
                ("label_lag_seconds", "Median transaction-to-label time of the landed labels."),
                ("performance_window_end_timestamp_seconds", "End of the last window (Unix)."),
            )
        }
        no_data = GaugeMetricFamily(
            "mlsd_performance_no_data",
            "1 when the last window has no labelled figure (what=labels) or no label-free "
            "estimate (what=estimate); those gauges are then absent, never NaN.",
            labels=[*LABELS, "what"],
        )
        with self._lock:
            latest = dict(self.latest)
        for (model, version, variant), r in sorted(latest.items()):
            base = [model, str(version), variant]
            values = {
                "performance_auc": r.auc,
                "performance_ap": r.average_precision,
                "performance_card_precision": r.card_precision,
                "performance_block_precision": r.block_precision,
                "performance_fraud_blocked_eur": r.fraud_eur_blocked if r.n_labelled else None,
                "performance_estimated_auc": r.estimated_auc,
                "performance_estimate_error": r.estimate_error,
                "performance_label_coverage": r.label_coverage,
                "label_lag_seconds": r.label_lag_seconds,
                "performance_window_end_timestamp_seconds": r.end.timestamp(),
            }
            for name, value in values.items():
                if value is not None:
                    gauges[name].add_metric(base, float(value))
            no_data.add_metric([*base, "labels"], 0.0 if r.auc is not None else 1.0)
            no_data.add_metric([*base, "estimate"], 0.0 if r.estimated_auc is not None else 1.0)
        yield from gauges.values()
        yield no_data
