"""Prediction log: every prediction appended, buffered, to Parquet (default) or PostgreSQL."""

from __future__ import annotations

from typing import cast

from mlsd.backends import Opening, open_backend, parse_url
from mlsd.predlog.base import BufferedLog, LogStats, PredictionLog
from mlsd.predlog.parquet import ParquetPredictionLog
from mlsd.predlog.record import COLUMNS, PredictionRecord, features_frame
from mlsd.predlog.summary import PredictionSummary, summarize
from mlsd.settings import Settings

__all__ = [
    "COLUMNS",
    "BufferedLog",
    "LogStats",
    "ParquetPredictionLog",
    "PredictionLog",
    "PredictionRecord",
    "PredictionSummary",
    "features_frame",
    "make_prediction_log",
    "split_schema",
    "summarize",
]


def split_schema(url: str) -> tuple[str, str]:
    """A PostgreSQL URL without mlsd's own query parameters, and its `schema=` ('public')."""
    parsed = parse_url(url, "prediction_log")
    return parsed.dsn, parsed.schema or "public"


def make_prediction_log(settings: Settings) -> PredictionLog:
    """The log `settings.prediction_log` names: '' Parquet in home, postgresql://...[?schema=]."""
    return cast(PredictionLog, open_backend("prediction_log", settings))


def _flush(settings: Settings) -> tuple[float, int]:
    return settings.prediction_log_flush_seconds, settings.prediction_log_flush_records


def parquet_log(o: Opening) -> PredictionLog:
    """The embedded log: Parquet files in `home/predictions`."""
    return ParquetPredictionLog(o.settings.path("predictions"), *_flush(o.settings))


def postgres_log(o: Opening) -> PredictionLog:
    """The log on PostgreSQL, table `predictions` in the URL's `?schema=` (default public)."""
    from mlsd.predlog.postgres import PostgresPredictionLog

    return PostgresPredictionLog(
        o.url.dsn,
        o.url.schema or "public",
        "predictions",
        *_flush(o.settings),
        connect_timeout_s=max(1, round(o.url.timeout(5.0))),
    )
