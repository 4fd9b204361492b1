"""Reading the prediction log without writing it: for the CLI, the demo, summaries, tests.

A writer (`make_prediction_log`) starts a flusher thread, a compactor and a journal, and
replays what a dead writer left: a reader does none of that. It sees what is stored,
which trails the serving process by up to its flush interval.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

import pandas as pd

from mlsd.errors import ConfigError
from mlsd.settings import Settings


@runtime_checkable
class PredictionLogReader(Protocol):
    """Read-only access to a prediction log's stored records."""

    def read(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Stored records with start <= ts < end, oldest first."""
        ...

    def close(self) -> None:
        """Release what the reader holds."""
        ...


def open_reader(settings: Settings) -> PredictionLogReader:
    """A reader of the log `settings.prediction_log` names ('' Parquet in home,
    postgresql://...[?schema=]); it starts no thread and writes nothing."""
    from mlsd.predlog.url import split_schema

    url = settings.prediction_log
    if not url:
        from mlsd.predlog.parquet import ParquetPredictionReader

        return ParquetPredictionReader(settings.path("predictions"))
    if url.startswith(("postgresql://", "postgres://")):
        from mlsd.predlog.postgres import PostgresPredictionReader

        dsn, schema = split_schema(url)
        return PostgresPredictionReader(dsn, schema, "predictions")
    raise ConfigError(
        f"unsupported prediction log URL {url!r}: use '' or postgresql://", field="prediction_log"
    )
