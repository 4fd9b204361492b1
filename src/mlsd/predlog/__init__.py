"""Prediction log: every prediction appended, buffered, to Parquet (default) or PostgreSQL."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mlsd.errors import ConfigError
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
    """A PostgreSQL URL without its `schema=` query parameter, and that schema ('public')."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), "public")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def make_prediction_log(settings: Settings) -> PredictionLog:
    """The log `settings.prediction_log` names: '' Parquet in home, postgresql://...[?schema=]."""
    url = settings.prediction_log
    flush = (settings.prediction_log_flush_seconds, settings.prediction_log_flush_records)
    if not url:
        return ParquetPredictionLog(settings.path("predictions"), *flush)
    if url.startswith(("postgresql://", "postgres://")):
        from mlsd.predlog.postgres import PostgresPredictionLog

        dsn, schema = split_schema(url)
        return PostgresPredictionLog(dsn, schema, "predictions", *flush)
    raise ConfigError(
        f"unsupported prediction log URL {url!r}: use '' or postgresql://", field="prediction_log"
    )
