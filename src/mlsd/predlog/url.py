"""The prediction log's URL: a PostgreSQL DSN with mlsd's own `?schema=` (and prefix, timeout)."""

from __future__ import annotations

from mlsd.backends import parse_url


def split_schema(url: str) -> tuple[str, str]:
    """A PostgreSQL URL without mlsd's own query parameters, and its `schema=` ('public')."""
    parsed = parse_url(url, "prediction_log")
    return parsed.dsn, parsed.schema or "public"
