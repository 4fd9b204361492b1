"""A few figures from a prediction log read: volume, versions, fraud share, degraded share."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class PredictionSummary:
    """What the log says about a stretch of traffic."""

    predictions: int
    by_version: dict[str, int]
    fraud_share: float
    degraded_share: float
    latency_p50_ms: float
    latency_p99_ms: float
    first: str | None
    last: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def summarize(frame: pd.DataFrame, fraud_decision: str = "fraud") -> PredictionSummary:
    """Summarise a frame from `PredictionLog.read`.

    >>> from datetime import UTC, datetime
    >>> frame = pd.DataFrame({
    ...     "ts": pd.to_datetime([datetime(2026, 1, 1, tzinfo=UTC)] * 4),
    ...     "model": ["fraud"] * 4, "version": ["1", "1", "2", "2"],
    ...     "decision": ["fraud", "legit", "legit", "legit"],
    ...     "degraded": [False, False, False, True], "latency_ms": [1.0, 2.0, 3.0, 4.0]})
    >>> s = summarize(frame)
    >>> s.predictions, s.by_version, s.fraud_share, s.degraded_share
    (4, {'fraud/1': 2, 'fraud/2': 2}, 0.25, 0.25)
    """
    if frame.empty:
        return PredictionSummary(0, {}, 0.0, 0.0, 0.0, 0.0, None, None)
    keys = frame["model"].astype(str) + "/" + frame["version"].astype(str)
    latency = frame["latency_ms"].astype(float)
    return PredictionSummary(
        predictions=len(frame),
        by_version={str(k): int(v) for k, v in keys.value_counts().sort_index().items()},
        fraud_share=float((frame["decision"] == fraud_decision).mean()),
        degraded_share=float(frame["degraded"].astype(bool).mean()),
        latency_p50_ms=float(latency.quantile(0.5)),
        latency_p99_ms=float(latency.quantile(0.99)),
        first=frame["ts"].min().isoformat(),
        last=frame["ts"].max().isoformat(),
    )
