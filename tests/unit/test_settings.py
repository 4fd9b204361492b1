"""Settings come from MLSD_* variables; empty backend URLs mean the embedded defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsd.settings import Settings


def test_defaults_need_no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLSD_HOME", "MLSD_ONLINE_STORE", "MLSD_REGISTRY_DB", "MLSD_ARTIFACTS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.home == Path(".mlsd")
    assert settings.online_store == ""
    assert settings.registry_db == ""
    assert settings.artifacts == ""


def test_backends_are_chosen_by_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLSD_HOME", str(tmp_path))
    monkeypatch.setenv("MLSD_ONLINE_STORE", "redis://127.0.0.1:6379/0")
    settings = Settings()
    assert settings.online_store == "redis://127.0.0.1:6379/0"
    assert settings.path("features") == tmp_path / "features"


def test_nonsense_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_MAX_BODY_BYTES", "12")
    with pytest.raises(ValueError, match="max_body_bytes"):
        Settings()
