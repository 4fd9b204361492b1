"""The backend table: the URL parser, one scheme table per kind, key namespaces, errors."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlsd import backends
from mlsd.backends import KINDS, Backend, Kind, key_prefix, open_backend, parse_url
from mlsd.errors import ConfigError
from mlsd.features.store import FeatureStore
from mlsd.inference.cache import make_cache
from mlsd.settings import Settings


def test_doctests() -> None:
    assert doctest.testmod(backends).failed == 0


def test_redis_url_parts() -> None:
    url = parse_url("redis://:pw@cache.local:6380/2?timeout_ms=20&prefix=app:", "cache")
    assert (url.scheme, url.host, url.port, url.db) == ("redis", "cache.local", 6380, "2")
    assert (url.prefix, url.timeout(1.0), url.schema) == ("app:", 0.02, None)
    assert url.dsn == "redis://:pw@cache.local:6380/2"
    assert url.shown() == "redis://:***@cache.local:6380/2?timeout_ms=20&prefix=app:"


def test_postgres_url_keeps_driver_parameters_and_drops_mlsds() -> None:
    url = parse_url("postgres://u:secret@db:5432/test?sslmode=disable&schema=audit", "registry_db")
    assert (url.scheme, url.db, url.schema) == ("postgresql", "test", "audit")
    assert url.dsn == "postgres://u:secret@db:5432/test?sslmode=disable"
    assert url.params == {"sslmode": "disable"}
    assert url.timeout(10.0) == 10.0


def test_paths_of_file_and_sqlite_urls() -> None:
    assert parse_url("file:///srv/blobs", "artifacts").path == "/srv/blobs"
    assert parse_url("sqlite:////abs/r.db", "registry_db").path[1:] == "/abs/r.db"
    assert parse_url("sqlite:///rel/r.db", "registry_db").path[1:] == "rel/r.db"
    assert parse_url("s3://bucket/team/models", "artifacts").host == "bucket"
    assert parse_url("", "cache").embedded
    assert parse_url("  ", "cache").embedded


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("localhost:6379", "scheme://"),
        ("redis://h:99999/0", "bad port"),
        ("redis://h:port/0", "bad port"),
        ("redis://h/0?timeout_ms=0", "timeout_ms"),
        ("redis://h/0?timeout_ms=-5", "timeout_ms"),
        ("redis://h/0?timeout_ms=soon", "timeout_ms"),
        ("redis://h/0?timeout_ms=inf", "timeout_ms"),
        ("postgresql://u:secret@h/db?schema=a-b", "identifier"),
        ('postgresql://u:secret@h/db?schema=x";drop', "identifier"),
        ("postgresql://u:secret@h/db?schema=", "identifier"),
    ],
)
def test_bad_urls_name_the_setting(url: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as info:
        parse_url(url, "prediction_log")
    assert info.value.field == "prediction_log"
    assert "MLSD_PREDICTION_LOG" in info.value.message
    assert "secret" not in info.value.message


def test_every_kind_names_a_setting_and_importable_openers() -> None:
    import importlib

    fields = set(Settings.model_fields)
    for name, kind in KINDS.items():
        assert kind.setting == name
        assert kind.setting in fields
        assert "" in kind.schemes, f"{name} has no embedded default"
        for backend in kind.schemes.values():
            module, _, function = backend.target.partition(":")
            assert callable(getattr(importlib.import_module(module), function)), backend.target
            assert (backend.extra is None) == (not backend.drivers)


def test_redis_namespaces_are_disjoint_and_follow_the_setting() -> None:
    settings = Settings(redis_prefix="team-a:")
    spaces = {kind: key_prefix(settings, kind) for kind in ("online_store", "cache", "job_queue")}
    assert spaces == {
        "online_store": "team-a:fs:",
        "cache": "team-a:cache:",
        "job_queue": "team-a:jobs:",
    }
    for a in spaces.values():
        for b in spaces.values():
            assert a == b or not a.startswith(b)
    url = parse_url("redis://h/0?prefix=other:", "cache")
    assert key_prefix(settings, "cache", url) == "other:cache:"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_unknown_scheme_names_the_setting_and_the_accepted_ones(kind: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, **{kind: "mongodb://u:secret@h/x"})
    with pytest.raises(ConfigError) as info:
        open_backend(kind, settings)
    message = info.value.message
    assert info.value.field == kind
    assert f"MLSD_{kind.upper()}" in message
    assert "'' (embedded)" in message
    for scheme in KINDS[kind].schemes:
        assert scheme == "" or f"{scheme}://" in message
    assert "secret" not in message


def test_timeout_ms_reaches_the_driver_and_not_its_url(tmp_path: Path) -> None:
    cache = make_cache(Settings(cache="redis://127.0.0.1:1/0?timeout_ms=20"))
    store = FeatureStore.open(
        Settings(home=tmp_path, online_store="redis://127.0.0.1:1/3?timeout_ms=250")
    )
    try:
        kwargs = cache._client.connection_pool.connection_kwargs  # type: ignore[attr-defined]
        assert kwargs["socket_timeout"] == 0.02
        assert "timeout_ms" not in kwargs
        online = store.online._client.connection_pool.connection_kwargs  # type: ignore[attr-defined]
        assert (online["socket_timeout"], online["db"]) == (0.25, 3)
    finally:
        cache.close()
        store.close()


def test_only_a_missing_driver_becomes_the_install_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A ModuleNotFoundError of anything but the driver is a bug: it must propagate."""
    broken = Kind("cache", {"": Backend("mlsd.no_such_module:opener", "redis", ("redis",))})
    monkeypatch.setitem(KINDS, "cache", broken)  # type: ignore[index]
    with pytest.raises(ModuleNotFoundError, match=r"mlsd\.no_such_module"):
        open_backend("cache", Settings(home=tmp_path))


def test_cli_without_the_redis_extra_prints_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MLSD_HOME": str(tmp_path),
        "MLSD_ONLINE_STORE": "redis://127.0.0.1:6379/0",
    }
    code = "import sys; sys.modules['redis'] = None; from mlsd.cli.main import run; run()"
    done = subprocess.run(
        [sys.executable, "-c", code, "features", "apply"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    output = done.stdout + done.stderr
    assert "install mlsd[redis]" in output
    assert "Traceback" not in output


def test_embedded_backends_import_no_driver(tmp_path: Path) -> None:
    """Opening every embedded default loads neither redis, psycopg nor boto3."""
    code = """
import sys
from mlsd.backends import KINDS, open_backend
from mlsd.settings import Settings
settings = Settings(home=sys.argv[1])
for kind in KINDS:
    backend = open_backend(kind, settings)
    close = getattr(backend, "close", None)
    if close is not None:
        close()
print(sorted(m for m in ("redis", "psycopg", "psycopg_pool", "boto3") if m in sys.modules))
"""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLSD_")}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
