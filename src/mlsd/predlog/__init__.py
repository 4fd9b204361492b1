"""Prediction log: every prediction journaled, buffered, and stored in Parquet (default) or
PostgreSQL; `open_reader` reads it without writing."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlsd.errors import ConfigError
from mlsd.predlog.base import BufferedLog, LogStats, PredictionLog
from mlsd.predlog.parquet import ParquetPredictionLog, ParquetPredictionReader
from mlsd.predlog.reader import PredictionLogReader, open_reader
from mlsd.predlog.record import COLUMNS, PredictionRecord, features_frame
from mlsd.predlog.summary import PredictionSummary, summarize
from mlsd.predlog.url import split_schema
from mlsd.settings import Settings

__all__ = [
    "COLUMNS",
    "BufferedLog",
    "LogStats",
    "ParquetPredictionLog",
    "ParquetPredictionReader",
    "PredictionLog",
    "PredictionLogReader",
    "PredictionRecord",
    "PredictionSummary",
    "features_frame",
    "journal_folder",
    "make_prediction_log",
    "open_reader",
    "split_schema",
    "summarize",
]


def make_prediction_log(settings: Settings) -> PredictionLog:
    """The log `settings.prediction_log` names: '' Parquet in home, postgresql://...[?schema=].

    Opening it replays what a writer killed on the same log had journaled and not stored.
    """
    url = settings.prediction_log
    flush = (settings.prediction_log_flush_seconds, settings.prediction_log_flush_records)
    if not url:
        return ParquetPredictionLog(settings.path("predictions"), *flush)
    if url.startswith(("postgresql://", "postgres://")):
        from mlsd.predlog.postgres import PostgresPredictionLog

        dsn, schema = split_schema(url)
        return PostgresPredictionLog(
            dsn, schema, "predictions", *flush, journal=journal_folder(settings)
        )
    raise ConfigError(
        f"unsupported prediction log URL {url!r}: use '' or postgresql://", field="prediction_log"
    )


def journal_folder(settings: Settings) -> Path:
    """Where the log's journal lives: Parquet `home/predictions/.journal`, PostgreSQL
    `home/predlog-journal/<schema>-<hash of the URL>` (two logs never share a journal, or
    one's records would be replayed into the other)."""
    url = settings.prediction_log
    if not url:
        return settings.path("predictions", ".journal")
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return settings.path("predlog-journal", f"{split_schema(url)[1]}-{digest}")
