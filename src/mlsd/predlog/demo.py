"""The demo's look at the serving components: what the prediction log recorded.

`mlsd demo` calls `replay_step(settings, since, labels)` after replaying traffic to the
service (the service must have flushed its log: it does on a clean stop, and on a
timer, every second by default).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from mlsd.predlog.summary import Outcomes, PredictionSummary, labelled, outcomes, summarize
from mlsd.settings import Settings


def read_log(settings: Settings, since: datetime | None = None) -> pd.DataFrame:
    """The configured prediction log since `since` (everything when None).

    Reads through `open_reader`: no flusher, no compactor, no journal replay, no file written.
    """
    from mlsd.predlog.reader import open_reader

    reader = open_reader(settings)
    try:
        return reader.read(start=since)
    finally:
        reader.close()


def demo_step(settings: Settings, since: datetime | None = None) -> dict[str, Any]:
    """Figures from the configured prediction log since `since` (everything when None)."""
    return summarize(read_log(settings, since)).to_dict()


def replay_step(
    settings: Settings,
    labels: pd.DataFrame,
    since: datetime | None = None,
    alert_budget: int = 100,
) -> tuple[PredictionSummary, Outcomes, pd.DataFrame]:
    """The log since `since` against the true `labels` of the replayed transactions:
    its summary, the fraud team's figures, and the joined rows (one per transaction)."""
    frame = read_log(settings, since)
    return summarize(frame), outcomes(frame, labels, alert_budget), labelled(frame, labels)
