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


def test_labels_published_then_joined_into_the_label_table(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No decision on the topic yet: every label is written, waiting for its decision."""
    from mlsd.data.io import read_transactions
    from mlsd.monitoring.label_table import LabelTable

    dataset = home.parent / "dataset"
    argv = ["simulate", "--out", str(dataset), "--customers", "20", "--terminals", "30"]
    assert _run([*argv, "--days", "2"], monkeypatch) == 0
    frame = read_transactions(dataset)
    until = frame["LABEL_AVAILABLE_AT"].sort_values().iloc[len(frame) // 2]
    assert _run(["stream", "publish-labels", str(dataset), "--until", until.isoformat()],
                monkeypatch) == 0  # fmt: skip
    published = int(capsys.readouterr().out.split("published ")[1].split()[0])
    assert published == int((frame["LABEL_AVAILABLE_AT"] <= until).sum())
    assert _run(["stream", "labels", "--idle-exit", "0.5"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert f"{published} labels into" in out
    assert f"0 rows joined to their decision, {published} waiting" in out
    table = LabelTable(home / "labels").read()
    assert len(table) == published
    assert table["decision"].isna().all()
    assert _run(["stream", "publish-labels", str(dataset), "--until", "yesterday"],
                monkeypatch) == 2  # fmt: skip
    assert "--until" in capsys.readouterr().err


def test_score_batch_refuses_a_dataset_its_features_were_not_built_from(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = home.parent / "dataset"
    argv = ["simulate", "--out", str(dataset), "--customers", "10", "--terminals", "10"]
    assert _run([*argv, "--days", "1"], monkeypatch) == 0
    assert _run(["features", "apply"], monkeypatch) == 0
    assert _run(["score-batch", str(dataset)], monkeypatch) == 4
    err = capsys.readouterr().err
    assert "mlsd features build" in err
    assert "Traceback" not in err
    assert _run(["score-batch", str(home / "nowhere")], monkeypatch) == 3
