"""All mlsd settings in one object, read from `MLSD_*` environment variables.

Every backend is chosen by URL (`mlsd.backends` holds the scheme tables and the
URL parser). The embedded defaults need no server: they live in the data folder
(`MLSD_HOME`, default `./.mlsd`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """mlsd configuration. Empty backend URLs mean the embedded default."""

    model_config = SettingsConfigDict(env_prefix="MLSD_", extra="ignore")

    home: Path = Field(default=Path(".mlsd"), description="data folder of every embedded store")
    online_store: str = Field(default="", description="'' (SQLite in home) or redis://host:port/db")
    feature_registry: str = Field(
        default="", description="'' (SQLite in home) or postgresql://...[?schema=name]"
    )
    registry_db: str = Field(
        default="", description="'' (SQLite in home), sqlite:///path or postgresql://...[?schema=]"
    )
    artifacts: str = Field(default="", description="'' (folder in home) or s3://bucket/prefix")
    s3_endpoint_url: str = Field(default="", description="S3-compatible endpoint, e.g. MinIO")
    cache: str = Field(default="", description="'' (in-process) or redis://host:port/db")
    job_queue: str = Field(default="", description="'' (in-process) or redis://host:port/db")
    job_max_file_rows: int = Field(
        default=1_000_000, ge=1, description="rows a Parquet job file may hold (checked at "
        "submit and again when the job opens it)",
    )  # fmt: skip
    prediction_log: str = Field(
        default="", description="'' (Parquet in home) or postgresql://...[?schema=name]"
    )
    event_log: str = Field(
        default="",
        description="'' (SQLite in home), sqlite:///path, redis://, nats:// or kafka://host:port",
    )
    admin_token: str = Field(default="", description="bearer token for admin endpoints")
    api_key: str = Field(default="", description="scoring key; empty means open")
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    redis_prefix: str = Field(
        default="mlsd:",
        description="prefix of every Redis key: {prefix}fs: online store, cache:, jobs:",
    )
    cache_ttl_seconds: float = Field(default=300.0, gt=0, description="prediction cache TTL")
    cache_freshness_seconds: float | None = Field(
        default=None,
        ge=0,
        description="prediction cache feature-freshness bound: a cached score is not served "
        "once its features have an event this many seconds newer (unset: off)",
    )
    cache_max_entries: int = Field(
        default=100_000, ge=1, description="prediction cache size (entries), in process or on Redis"
    )
    duckdb_memory_limit: str = Field(
        default="1500MB",
        pattern=r"^[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB memory cap of feature builds, e.g. 1500MB or 3GB",
    )
    duckdb_threads: int | None = Field(
        default=None, ge=1, description="DuckDB threads of feature builds (default: all cores)"
    )
    prediction_log_flush_seconds: float = Field(default=1.0, gt=0, description="flush timer")
    prediction_log_flush_records: int = Field(default=5_000, ge=1, description="flush at size")
    prediction_log_journal: bool = Field(
        default=True,
        description="journal every answered prediction before the answer leaves (a kill -9 "
        "loses none); off trades that for ~10-25 % more requests/s (docs/predlog.md)",
    )
    prediction_log_writer: Literal["process", "thread"] = Field(
        default="thread",
        description="who encodes and writes the Parquet log's batches: the flusher thread, "
        "or a child process (off the server's GIL, but ~8 % more CPU per request: on 2 "
        "cores it cost /v1/score 12 % of its max rate and did not lower its p99; a stream "
        "processor gains ~14 % events/s; docs/predlog.md); PostgreSQL and journal off "
        "always use the thread",
    )
    seed: int = 42

    @field_validator("home")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    def path(self, *parts: str) -> Path:
        """A path inside the data folder."""
        return self.home.joinpath(*parts)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
