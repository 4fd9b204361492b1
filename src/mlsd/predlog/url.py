"""The prediction log's URL: a PostgreSQL DSN with an optional `schema=` parameter."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def split_schema(url: str) -> tuple[str, str]:
    """A PostgreSQL URL without its `schema=` query parameter, and that schema ('public')."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), "public")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema
