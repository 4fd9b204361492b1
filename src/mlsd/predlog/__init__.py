"""Prediction log: every prediction journaled, buffered, and stored in Parquet (default) or
PostgreSQL; `open_reader` reads it without writing."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import cast

from mlsd.backends import Opening, open_backend
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
    return cast(PredictionLog, open_backend("prediction_log", settings))


def _flush(settings: Settings) -> tuple[float, int]:
    return settings.prediction_log_flush_seconds, settings.prediction_log_flush_records


def parquet_log(o: Opening) -> PredictionLog:
    """The embedded log: Parquet files in `home/predictions`."""
    return ParquetPredictionLog(
        o.settings.path("predictions"),
        *_flush(o.settings),
        journal=o.settings.prediction_log_journal,
        writer=o.settings.prediction_log_writer,
    )


def postgres_log(o: Opening) -> PredictionLog:
    """The log on PostgreSQL, table `predictions` in the URL's `?schema=` (default public)."""
    from mlsd.predlog.postgres import PostgresPredictionLog

    return PostgresPredictionLog(
        o.url.dsn,
        o.url.schema or "public",
        "predictions",
        *_flush(o.settings),
        connect_timeout_s=max(1, round(o.url.timeout(5.0))),
        journal=journal_folder(o.settings) if o.settings.prediction_log_journal else None,
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
