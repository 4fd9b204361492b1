"""Delayed-label performance of a running server, refreshed in the background.

`PerformanceMonitor` recomputes, every `every_s` seconds on its own daemon thread (never
on the request path), the performance of the last `window` of the server's prediction
log with the labels landed by now (`performance_windows` with one window [now − window,
now), labels as of now). The results go to a `PerformanceCollector` (the
`mlsd_performance_*` gauges) and to `figures()`, the JSON-able mapping the dashboard's
"Performance as labels land" panel draws.

Nothing stops the thread: a window without predictions is the `no_predictions` state, a
version the registry does not know keeps its labelled figures with the estimate state
`unknown_version`, and any other failure (the log's store down, a label part unreadable)
is the `error` state with its message, logged once per distinct message. Figures are
finite numbers or None, never NaN.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from mlsd.errors import MlsdError, NotFoundError, ValidationError
from mlsd.monitoring.performance import (
    LabelSource,
    Reference,
    ReferenceSource,
    WindowPerformance,
    flatten,
    performance_windows,
)
from mlsd.monitoring.performance_metrics import PerformanceCollector
from mlsd.monitoring.window import LogReader, NoDataError
from mlsd.priority import in_background

log = logging.getLogger(__name__)

#: The figures of each (model, version, variant) that `figures()` hands the dashboard.
FIGURES = (
    "n_predictions", "n_labelled", "label_coverage", "frauds", "state", "auc",
    "average_precision", "card_precision", "top_k", "blocks", "block_precision", "recall",
    "fraud_eur", "fraud_eur_blocked", "label_lag_seconds", "estimate_state",
    "estimated_auc", "estimate_error",
)  # fmt: skip


class _Tolerant:
    """A reference source where an unknown version is a state, not an exception (logged
    once): its labelled figures still count, its estimate is `unknown_version`."""

    def __init__(self, inner: ReferenceSource) -> None:
        self.inner = inner
        self._unknown: set[tuple[str, int]] = set()

    def reference(self, model: str, version: int) -> Reference:
        try:
            return self.inner.reference(model, version)
        except NotFoundError as exc:
            if (model, version) not in self._unknown:
                log.warning("performance of %s/%d without a reference: %s", model, version,
                            exc.message)  # fmt: skip
                self._unknown.add((model, version))
            return Reference(None, None, {}, "unknown_version")


class LazyLabels:
    """A label source opened on first use (on the monitor's thread: a dataset's labels
    are read there, not while the server starts)."""

    def __init__(self, open_source: Callable[[], LabelSource]) -> None:
        self.open_source = open_source
        self._source: LabelSource | None = None

    def labels(self, transaction_ids: np.ndarray) -> pd.DataFrame:
        """The opened source's rows."""
        if self._source is None:
            self._source = self.open_source()
        return self._source.labels(transaction_ids)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class PerformanceMonitor:
    """The last `window`'s performance, labels as of now, every `every_s` seconds."""

    def __init__(
        self,
        references: ReferenceSource,
        reader: LogReader,
        labels: LabelSource,
        *,
        window: timedelta = timedelta(days=1),
        every_s: float = 60.0,
        top_k: int = 100,
        source: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if window <= timedelta(0):
            raise ValidationError(
                "the performance window must last more than 0 s", field="performance_window"
            )
        if every_s <= 0:
            raise ValidationError(
                "the performance refresh period must be more than 0 s",
                field="performance_every",
            )
        self.references = _Tolerant(references)
        self.reader = reader
        self.labels = labels
        self.window = window
        self.every_s = every_s
        self.top_k = top_k
        self.source = source
        self.clock = clock
        self.collector = PerformanceCollector(self._compute)
        self.state = "starting"
        self.message: str | None = None
        self.refreshed_at: datetime | None = None
        self.span: tuple[datetime, datetime] | None = None
        self.refreshes = 0
        self._logged: str | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _compute(self) -> list[WindowPerformance]:
        now = self.clock()
        start = now - self.window
        self.span = (start, now)
        windows = performance_windows(
            self.references, self.reader, self.labels, start, now, self.window,
            as_of=now, top_k=self.top_k,
        )  # fmt: skip
        return flatten(windows)

    def _fail(self, state: str, message: str, *, error: BaseException | None = None) -> None:
        self.state, self.message = state, message
        if message != self._logged:  # once per reason, not once per refresh
            if error is None:
                log.info("performance monitor: %s", message)
            else:
                log.error("performance monitor: %s", message, exc_info=error)
            self._logged = message

    def refresh(self) -> str:
        """Recompute now (the thread calls this; a test may too); the state it left."""
        with self._refresh_lock:
            try:
                results = self._compute()
            except NoDataError as exc:
                self.collector.replace([])
                self._fail("no_predictions", exc.message)
            except MlsdError as exc:  # the log's store down, say: the last figures stay
                self._fail("error", exc.message)
            except Exception as exc:  # noqa: BLE001 - a bug must not kill the thread: say it
                self._fail("error", f"{type(exc).__name__}: {exc}", error=exc)
            else:
                self.collector.replace(results)
                self.state, self.message, self._logged = "ok", None, None
            self.refreshed_at = self.clock()
            self.refreshes += 1
            return self.state

    def figures(self) -> dict[str, Any]:
        """What the dashboard's performance panel draws (JSON-able, no NaN)."""
        latest = self.collector.snapshot()
        versions = []
        for (model, version, variant), r in sorted(latest.items()):
            row: dict[str, Any] = {"model": model, "version": version, "variant": variant}
            for name in FIGURES:
                row[name] = _finite(getattr(r, name))
            row["notes"] = list(r.notes)
            versions.append(row)
        span = self.span
        return {
            "state": self.state,
            "message": self.message,
            "labels": self.source,
            "window_s": self.window.total_seconds(),
            "refresh_s": self.every_s,
            "from": span[0].isoformat() if span else None,
            "to": span[1].isoformat() if span else None,
            "refreshed_at": self.refreshed_at.isoformat() if self.refreshed_at else None,
            "versions": versions,
        }

    def provider(self) -> Callable[[], Mapping[str, Any] | None]:
        """The dashboard's `PerformanceProvider`."""
        return self.figures

    def start(self) -> None:
        """Refresh now, then every `every_s` seconds, on a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=in_background(self._run), name="mlsd-performance", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        self.refresh()  # at once, even when closed right after the start
        while not self._stop.wait(self.every_s):
            self.refresh()

    def close(self) -> None:
        """Stop the thread (a refresh under way finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            self._thread = None
