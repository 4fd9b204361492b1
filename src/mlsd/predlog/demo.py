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

    Reads through `open_reader`: no flusher, no compactor, no journal replay, no file written.
    """
    from mlsd.predlog.reader import open_reader

    reader = open_reader(settings)
    try:
        frame = reader.read(start=since)
    finally:
        reader.close()
    return summarize(frame).to_dict()
