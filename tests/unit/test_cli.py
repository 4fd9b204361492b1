"""The `mlsd` entry point: help, version, and errors turned into exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsd import __version__
from mlsd.cli.main import app
from mlsd.errors import ConfigError
from mlsd.settings import get_settings


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("simulate", "demo"):
        assert command in result.output


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_unknown_command_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlsd.cli.main", "no-such-command"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run `mlsd` in-process through `run()`, which maps errors to exit codes."""
    from mlsd.cli.main import run

    monkeypatch.setattr(sys, "argv", ["mlsd", *argv])
    with pytest.raises(SystemExit) as info:
        run()
    return int(info.value.code or 0)


def test_an_empty_home_is_a_message_not_an_empty_table(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["registry", "list"], monkeypatch) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "no models registered yet" in err
    assert "mlsd train --promote" in err
    assert _run(["registry", "history", "nobody"], monkeypatch) == 3
    assert "no model named 'nobody'" in " ".join(capsys.readouterr().err.split())
    assert _run(["registry", "list", "nobody"], monkeypatch) == 3


def test_a_missing_driver_names_its_extra(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_redis(name: str, *args: object, **kwargs: object) -> object:
        if name == "redis" or name.startswith("redis."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setenv("MLSD_ONLINE_STORE", "redis://127.0.0.1:6379/15")
    monkeypatch.setattr(builtins, "__import__", no_redis)
    get_settings.cache_clear()
    code = _run(["features", "get", "--customer", "1", "--terminal", "1", "--amount", "1",
                 "--at", "2018-04-01T00:00:00Z"], monkeypatch)  # fmt: skip
    assert code == ConfigError.exit_code  # the backend table names the extra to install
    err = capsys.readouterr().err
    assert "mlsd[redis]" in err
    assert "Traceback" not in err


def test_a_bad_setting_is_a_config_error(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLSD_MAX_BODY_BYTES", "lots")
    get_settings.cache_clear()
    assert _run(["registry", "list"], monkeypatch) == 2
    assert "MLSD_MAX_BODY_BYTES" in capsys.readouterr().err
    get_settings.cache_clear()


def test_features_on_an_empty_home_say_what_to_run(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["features", "materialize"], ["features", "parity"]):
        assert _run(command, monkeypatch) == 3
        err = capsys.readouterr().err
        assert "mlsd features apply" in err
        assert len(err.strip().splitlines()) == 1  # one line, however narrow the terminal
