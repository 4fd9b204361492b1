"""A backend whose driver is not installed names the extra to install, not a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlsd.errors import ConfigError
from mlsd.features.store import FeatureStore
from mlsd.inference.cache import make_cache
from mlsd.predlog import make_prediction_log
from mlsd.registry import Registry
from mlsd.serving.jobs import make_job_queue
from mlsd.settings import Settings


def _without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make `import module` fail as if the driver were not installed."""
    for name in list(sys.modules):
        if name.startswith("mlsd.") and name.rsplit(".", 1)[-1] in {"redis", "postgres", "s3"}:
            monkeypatch.delitem(sys.modules, name)
        if name.startswith("mlsd.") and name.endswith(("online_redis", "registry_postgres")):
            monkeypatch.delitem(sys.modules, name)
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("online_store", "redis://127.0.0.1:6379/0"),
        ("cache", "redis://127.0.0.1:6379/0"),
        ("job_queue", "rediss://127.0.0.1:6379/0"),
    ],
)
def test_redis_without_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, url: str
) -> None:
    _without(monkeypatch, "redis")
    settings = Settings(home=tmp_path, **{field: url})
    opener = {"online_store": FeatureStore.open, "cache": make_cache, "job_queue": make_job_queue}
    with pytest.raises(ConfigError, match=r"install mlsd\[redis\]") as info:
        opener[field](settings)
    assert info.value.field == field


@pytest.mark.parametrize("field", ["feature_registry", "registry_db", "prediction_log"])
def test_postgres_without_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    _without(monkeypatch, "psycopg", "psycopg_pool")
    settings = Settings(home=tmp_path, **{field: "postgresql://u:secret@127.0.0.1:1/db"})
    opener = {
        "feature_registry": FeatureStore.open,
        "registry_db": Registry.open,
        "prediction_log": make_prediction_log,
    }
    with pytest.raises(ConfigError, match=r"install mlsd\[postgres\]") as info:
        opener[field](settings)
    assert info.value.field == field
    assert "secret" not in info.value.message


def test_s3_without_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "boto3", "botocore")
    with pytest.raises(ConfigError, match=r"install mlsd\[s3\]") as info:
        Registry.open(Settings(home=tmp_path, artifacts="s3://bucket/models"))
    assert info.value.field == "artifacts"
