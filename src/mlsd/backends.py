"""Every backend chosen by URL: one parser, one table per kind, one function that opens.

A kind (online store, feature registry, ...) is one `Settings` field holding a URL.
Its table maps the URL's scheme to an opener, named by import path and loaded only
when used, so a driver (redis, psycopg, boto3) is needed only by who configures it.
The empty URL is the embedded default. mlsd reads its own query parameters and
strips them before the driver sees the URL:

- `?schema=name`: the PostgreSQL schema of the tables (created if missing);
- `?prefix=text`: the Redis key prefix (default `MLSD_REDIS_PREFIX`);
- `?timeout_ms=N`: the socket / connect timeout, instead of the caller's default.

Every Redis component keys under its own namespace, `{prefix}fs:` (online store),
`{prefix}cache:`, `{prefix}jobs:` and `{prefix}events:`, so clearing one never touches another.

>>> url = parse_url("redis://cache.local:6380/2?timeout_ms=20&prefix=app:", "cache")
>>> (url.scheme, url.host, url.port, url.db, url.prefix, url.timeout(1.0), url.dsn)
('redis', 'cache.local', 6380, '2', 'app:', 0.02, 'redis://cache.local:6380/2')
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mlsd.errors import ConfigError
from mlsd.settings import Settings

OWN_PARAMETERS = ("schema", "prefix", "timeout_ms")
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


@dataclass(frozen=True, slots=True)
class BackendURL:
    """A backend URL, parsed: the parts drivers need and mlsd's own parameters."""

    raw: str
    setting: str
    scheme: str = ""
    host: str | None = None
    port: int | None = None
    db: str = ""
    path: str = ""
    schema: str | None = None
    prefix: str | None = None
    timeout_s: float | None = None
    dsn: str = ""
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        """True for the empty URL: the embedded default."""
        return not self.raw

    def timeout(self, default: float) -> float:
        """`?timeout_ms=` in seconds, or the caller's default."""
        return default if self.timeout_s is None else self.timeout_s

    def shown(self) -> str:
        """The URL with its password hidden, for messages and logs."""
        return redact(self.raw)


def glob_escape(text: str) -> str:
    """`text` with Redis glob characters escaped, for `SCAN MATCH {prefix}*`."""
    return text.translate(_GLOB_SPECIAL)


def redact(url: str) -> str:
    """`url` with the password of its user info replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _fail(url: str, setting: str, why: str) -> ConfigError:
    return ConfigError(f"invalid MLSD_{setting.upper()} {redact(url)!r}: {why}", field=setting)


def parse_url(url: str, setting: str) -> BackendURL:
    """Parse the URL of `setting` (a `Settings` field name); ConfigError names the setting."""
    url = url.strip()
    if not url:
        return BackendURL(raw="", setting=setting)
    if "://" not in url:
        raise _fail(url, setting, "expected scheme://...")
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise _fail(url, setting, f"bad port ({exc})") from exc
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in OWN_PARAMETERS}
    rest = [(k, v) for k, v in query if k not in OWN_PARAMETERS]
    schema = own.get("schema")
    if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
        raise _fail(url, setting, f"schema {schema!r} is not a plain SQL identifier")
    timeout_s = None
    if "timeout_ms" in own:
        try:
            timeout_s = float(own["timeout_ms"]) / 1000.0
        except ValueError:
            timeout_s = math.nan
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            why = f"timeout_ms must be a positive number, not {own['timeout_ms']!r}"
            raise _fail(url, setting, why)
    scheme = parts.scheme.lower()
    return BackendURL(
        raw=url,
        setting=setting,
        scheme="postgresql" if scheme == "postgres" else scheme,
        host=parts.hostname,
        port=port,
        db=parts.path.lstrip("/"),
        path=parts.netloc + parts.path if scheme == "file" else parts.path,
        schema=schema,
        prefix=own.get("prefix"),
        timeout_s=timeout_s,
        dsn=urlunsplit(parts._replace(query=urlencode(rest))),
        params=dict(rest),
    )


@dataclass(frozen=True, slots=True)
class Opening:
    """What an opener receives: the parsed URL, the settings, its Redis key namespace."""

    url: BackendURL
    settings: Settings
    key_prefix: str


Opener = Callable[..., object]


@dataclass(frozen=True, slots=True)
class Backend:
    """One implementation: `module:function` taking an `Opening`, and the extra of its driver."""

    target: str
    extra: str | None = None
    drivers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of backend: its setting, its schemes ('' = embedded) and its key namespace."""

    setting: str
    schemes: Mapping[str, Backend]
    namespace: str = ""

    def accepted(self) -> str:
        """The accepted URL forms, for messages."""
        return ", ".join("'' (embedded)" if s == "" else f"{s}://" for s in self.schemes)


def _redis(target: str) -> dict[str, Backend]:
    impl = Backend(target, "redis", ("redis",))
    return {"redis": impl, "rediss": impl, "unix": impl}


_PG = ("psycopg", "psycopg_pool")

KINDS: Mapping[str, Kind] = {
    "online_store": Kind(
        "online_store",
        {
            "": Backend("mlsd.features.store:sqlite_online"),
            **_redis("mlsd.features.store:redis_online"),
        },
        namespace="fs:",
    ),
    "feature_registry": Kind(
        "feature_registry",
        {
            "": Backend("mlsd.features.store:sqlite_registry"),
            "postgresql": Backend("mlsd.features.store:postgres_registry", "postgres", _PG),
        },
    ),
    "registry_db": Kind(
        "registry_db",
        {
            "": Backend("mlsd.registry.registry:sqlite_metadata"),
            "sqlite": Backend("mlsd.registry.registry:sqlite_metadata"),
            "postgresql": Backend("mlsd.registry.registry:postgres_metadata", "postgres", _PG),
        },
    ),
    "artifacts": Kind(
        "artifacts",
        {
            "": Backend("mlsd.registry.registry:local_artifacts"),
            "file": Backend("mlsd.registry.registry:local_artifacts"),
            "s3": Backend("mlsd.registry.registry:s3_artifacts", "s3", ("boto3", "botocore")),
        },
    ),
    "cache": Kind(
        "cache",
        {
            "": Backend("mlsd.inference.cache:memory_cache"),
            **_redis("mlsd.inference.cache:redis_cache"),
        },
        namespace="cache:",
    ),
    "job_queue": Kind(
        "job_queue",
        {
            "": Backend("mlsd.serving.jobs:memory_queue"),
            **_redis("mlsd.serving.jobs:redis_queue"),
        },
        namespace="jobs:",
    ),
    "prediction_log": Kind(
        "prediction_log",
        {
            "": Backend("mlsd.predlog:parquet_log"),
            "postgresql": Backend("mlsd.predlog:postgres_log", "postgres", _PG),
        },
    ),
    "event_log": Kind(
        "event_log",
        {
            "": Backend("mlsd.streaming:sqlite_log"),
            "sqlite": Backend("mlsd.streaming:sqlite_log"),
            **_redis("mlsd.streaming:redis_log"),
            "nats": Backend("mlsd.streaming:nats_log", "nats", ("nats",)),
            "kafka": Backend("mlsd.streaming:kafka_log", "kafka", ("confluent_kafka",)),
        },
        namespace="events:",
    ),
}


def key_prefix(settings: Settings, kind: str, url: BackendURL | None = None) -> str:
    """The Redis key namespace of a component, e.g. `mlsd:fs:` for the online store."""
    root = settings.redis_prefix if url is None or url.prefix is None else url.prefix
    return root + KINDS[kind].namespace


def _missing_driver(exc: ModuleNotFoundError, backend: Backend) -> bool:
    return (exc.name or "").partition(".")[0] in backend.drivers


def open_backend(kind: str, settings: Settings, *, subspace: str = "", **options: Any) -> object:
    """Open the backend of `kind` that its setting names.

    `subspace` is appended to the key namespace (a scratch store beside the real one);
    `options` go to the opener (e.g. the caller's default timeout). An unknown scheme
    or a missing driver is a ConfigError naming the setting.
    """
    spec = KINDS[kind]
    url = parse_url(str(getattr(settings, spec.setting)), spec.setting)
    backend = spec.schemes.get(url.scheme)
    if backend is None:
        raise ConfigError(
            f"unsupported MLSD_{spec.setting.upper()} {url.shown()!r}: use {spec.accepted()}",
            field=spec.setting,
        )
    module_name, _, function = backend.target.partition(":")
    opening = Opening(url, settings, key_prefix(settings, kind, url) + subspace)
    try:
        opener: Opener = getattr(importlib.import_module(module_name), function)
        return opener(opening, **options)
    except ModuleNotFoundError as exc:
        if not _missing_driver(exc, backend):
            raise
        raise ConfigError(
            f"MLSD_{spec.setting.upper()}={url.scheme}://... needs the {exc.name} driver: "
            f"install mlsd[{backend.extra}] (pip install 'mlsd[{backend.extra}]')",
            field=spec.setting,
        ) from exc
