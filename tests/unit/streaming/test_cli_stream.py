"""`mlsd stream publish | run`: a dataset into the event log, clear errors otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlsd.settings import Settings
from mlsd.streaming import open_event_log


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    from mlsd.cli.main import run

    monkeypatch.setattr(sys, "argv", ["mlsd", *argv])
    with pytest.raises(SystemExit) as info:
        run()
    return int(info.value.code or 0)


def test_publish_a_dataset_in_time_order_keyed_by_customer(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = home.parent / "dataset"
    argv = ["simulate", "--out", str(dataset), "--customers", "30", "--terminals", "40"]
    assert _run([*argv, "--days", "2"], monkeypatch) == 0
    assert _run(["stream", "publish", str(dataset), "--partitions", "2"], monkeypatch) == 0
    published = int(capsys.readouterr().out.split("published ")[1].split()[0])
    assert published > 0
    log = open_event_log(Settings(home=home))
    try:
        events = [e for p in range(2) for e in log.replay("transactions", p, limit=10**6)]
        assert len(events) == published
        for p in range(2):
            stamps = [e.timestamp_ms for e in log.replay("transactions", p, limit=10**6)]
            assert stamps == sorted(stamps), "published in time order"
    finally:
        log.close()


def test_errors_are_one_line_and_an_exit_code(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["stream", "run", "--idle-exit", "0.5"], monkeypatch) == 3
    assert "no alias 'champion'" in capsys.readouterr().err
    assert _run(["stream", "publish", str(home / "nowhere")], monkeypatch) != 0
    err = capsys.readouterr().err
    assert "error:" in err
    assert "Traceback" not in err
    monkeypatch.setenv("MLSD_EVENT_LOG", "amqp://127.0.0.1")
    from mlsd.settings import get_settings

    get_settings.cache_clear()
    assert _run(["stream", "run"], monkeypatch) == 2
    assert "MLSD_EVENT_LOG" in capsys.readouterr().err
    assert _run(["stream", "run", "--batch", "0"], monkeypatch) == 2
