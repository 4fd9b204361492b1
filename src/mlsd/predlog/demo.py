"""The demo's look at the serving components: what the prediction log recorded, an async job.

`mlsd demo` calls `demo_step(settings)` after sending traffic to the service (the
service must have flushed its log: it does on a timer, every second by default).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlsd.predlog.summary import summarize
from mlsd.settings import Settings


def demo_step(settings: Settings, since: datetime | None = None) -> dict[str, Any]:
    """Figures from the configured prediction log since `since` (everything when None).

    Opens the log read-only in spirit: it appends nothing, and closing it writes nothing.
    """
    from mlsd.predlog import make_prediction_log

    plog = make_prediction_log(settings)
    try:
        frame = plog.read(start=since)
    finally:
        plog.close()
    return summarize(frame).to_dict()
