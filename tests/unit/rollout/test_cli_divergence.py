"""`mlsd rollout divergence` and `mlsd rollout ab` on a stored log: figures, alert, bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlsd.cli.main import run
from mlsd.predlog import PredictionRecord, make_prediction_log
from mlsd.settings import Settings

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def _record(i: int, variant: str, decision: str, tx: int | None = None) -> PredictionRecord:
    features = {"TX_AMOUNT": 10.0 + i, "CUSTOMER_ID_NB_TX_30DAY_WINDOW": float(i % 3),
                "TERMINAL_ID_RISK_7DAY_WINDOW": 0.0}  # fmt: skip
    score = 0.9 if decision == "fraud" else 0.1
    return PredictionRecord(
        f"r{i}", T0 + timedelta(seconds=i), "fraud", "2" if "shadow" in variant else "1",
        features, score, decision, 0.5, 1.0, variant=variant, transaction_id=tx,
        customer_id=i % 7, terminal_id=1, tx_time=T0,
    )  # fmt: skip


def _store(home: Path, records: list[PredictionRecord]) -> None:
    plog = make_prediction_log(Settings(home=home))
    plog.append(records)
    plog.close()


def _cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr("sys.argv", ["mlsd", "rollout", *args])
    try:
        run()
    except SystemExit as exited:
        return int(exited.code or 0)
    return 0


def test_a_dangerous_shadow_is_reported_with_its_alert(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    champion = [_record(i, "champion", "fraud" if i % 10 == 0 else "legit") for i in range(300)]
    shadow = [_record(i, "s1:shadow", "legit") for i in range(300)]  # approves every block
    _store(home, champion + shadow)
    assert _cli(monkeypatch, "divergence", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["pairs"], report["champion_blocks"], report["challenger_approves"]) == (
        300, 30, 30,
    )  # fmt: skip
    assert report["alert"]["event"] == "rollout.dangerous_divergence"
    assert report["alert"]["blocks"] <= 10
    assert _cli(monkeypatch, "divergence", "--rollout", "s1") == 0
    out = capsys.readouterr().out
    assert "DANGEROUS DIVERGENCE" in out
    assert "amount_band" in out


def test_bad_input_exits_non_zero_naming_it(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _store(home, [_record(i, "champion", "legit") for i in range(5)])
    assert _cli(monkeypatch, "divergence") == 3
    assert "no shadow records" in capsys.readouterr().err
    assert _cli(monkeypatch, "divergence", "--max-rate", "1.5") == 2
    assert "max_rate" in capsys.readouterr().err
    assert _cli(monkeypatch, "ab", "ab1", "--labels", str(home / "nowhere")) == 3
    assert "not a dataset folder" in capsys.readouterr().err


def test_ab_arms_against_the_labels_of_a_dataset(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlsd.data.config import SimulatorConfig
    from mlsd.data.io import write_dataset
    from mlsd.data.simulator import simulate

    dataset = simulate(SimulatorConfig(n_customers=30, n_terminals=30, n_days=5))
    folder = write_dataset(dataset, tmp_path / "ds")
    tx = dataset.transactions
    fraud = tx["TX_FRAUD"].to_numpy()
    records = [
        _record(i, "ab1:champion" if i % 2 else "ab1:challenger",
                "fraud" if fraud[i] or i % 2 == 0 else "legit", int(tid))
        for i, tid in enumerate(tx["TRANSACTION_ID"].iloc[:200])
    ]  # fmt: skip
    _store(home, records)
    args = ["ab", "ab1", "--labels", str(folder), "--tau", "0.5", "--json"]  # a huge effect
    assert _cli(monkeypatch, *args) == 0
    found = json.loads(capsys.readouterr().out)
    arms = {a["variant"]: a for a in found["arms"]}
    assert set(arms) == {"ab1:champion", "ab1:challenger"}
    assert arms["ab1:challenger"]["false_positive_rate"]["estimate"] == 1.0  # blocks everything
    assert found["comparison"]["false_positive_rate_p"] < 0.05
    assert _cli(monkeypatch, "ab", "ab1", "--labels", str(folder)) == 0
    assert "always-valid p" in capsys.readouterr().out


def test_ab_plan_prints_both_horizons_and_refuses_nonsense(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["plan", "--baseline", "0.2", "--mde", "0.1", "--per-hour", "10", "--runs", "50"]
    assert _cli(monkeypatch, *args, "--json") == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["fixed_n_per_arm"] == 294
    assert plan["fixed_hours"] == pytest.approx(29.4)
    assert _cli(monkeypatch, *args) == 0
    assert "mSPRT" in capsys.readouterr().out
    assert _cli(monkeypatch, "plan", "--baseline", "0", "--mde", "0.1", "--per-hour", "9") == 2
    assert "baseline" in capsys.readouterr().err
