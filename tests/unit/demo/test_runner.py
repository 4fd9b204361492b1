"""`mlsd demo` end to end on embedded defaults: every stage runs and leaves its files, the
replayed traffic is served fresh features, and the printed figures are the log's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlsd.data import schema
from mlsd.data.io import read_transactions
from mlsd.demo.runner import DATASET, REPLAY, REPORT, demo_settings
from mlsd.features.handbook import CUSTOMER_VIEW, TERMINAL_VIEW
from mlsd.features.pipeline import compute_view_frame
from mlsd.predlog import make_prediction_log
from mlsd.settings import Settings


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One small demo run shared by the tests below: (MLSD_HOME, the finished process)."""
    home = tmp_path_factory.mktemp("demo-home")
    return home, _demo(home, "--small", "--for", "4", timeout=280)


@pytest.mark.slow
def test_demo_runs_every_stage_stops_by_itself_in_its_own_folder(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    home, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    stages = (
        "simulate",
        "features",
        "train, register",
        "alias history",
        "stream processor (embedded event log, figures read back from the log)",
        "replay the held-out days",
        "serving (measured by the demo's client)",
        "prediction log",
        "what the fraud team reads",
        "cards flagged per day",
        "rollouts: a shadow, a canary to promotion, a bad canary rolled back",
        "monitoring: amounts shifted in live traffic, the drift alert fires",
    )
    for stage in stages:
        assert stage in out
    assert "parity (online vs offline) │ 100.0%" in out
    demo = home / "demo"
    assert str(demo.resolve()) in out.replace("\n", "")  # it says where it works
    for folder in ("datasets", "features", "registry", "predictions", "reports"):
        assert (demo / folder).is_dir(), folder
        assert not (home / folder).exists(), f"the demo wrote {folder}/ into the user's home"
    assert list((demo / "reports").glob("*.png"))
    assert "Traceback" not in proc.stderr
    assert "{" not in out, "a raw dict was printed"
    assert "…" not in out, "a table cell was cut off at 80 columns"
    canaries = json.loads((demo / "reports" / "demo-replay.json").read_text())["rollouts"]
    outcomes = [(c["outcome"], c["failed requests"]) for c in canaries["canaries"]]
    assert outcomes == [("promoted", 0), ("rolled_back", 0)], canaries


@pytest.mark.slow
def test_the_drift_stage_fires_on_the_shifted_window_only(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    """The second window (amounts x3) fires the feature rule on TX_AMOUNT and the score
    rule, which the first (traffic as sent) did not; the server's dashboard held them.
    (The small world's first window may fire on a terminal count: the demo says so.)"""
    home, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    drift = json.loads((home / "demo" / "reports" / "demo-replay.json").read_text())["drift"]
    before, after = drift["before"], drift["after"]
    assert before["rows"] == after["rows"] >= 200
    assert before["psi"]["TX_AMOUNT"] < 0.1
    assert before["score_psi"] < 0.1
    assert after["psi"]["TX_AMOUNT"] > 0.25
    assert after["score_psi"] > 0.1
    first = {(e["rule"], e["feature"]) for e in drift["firing_before"]}
    fired = {(e["rule"], e["feature"]) for e in drift["firing"]}
    assert ("feature-drift-major", "TX_AMOUNT") not in first
    assert ("score-drift", "") not in first
    assert {("feature-drift-major", "TX_AMOUNT"), ("score-drift", "")} <= fired, fired
    assert {f for _, f in fired - first} <= {"TX_AMOUNT", ""}, "only the shifted amount is new"
    assert "ALERT feature-drift-major (critical) firing for TX_AMOUNT" in proc.stdout


@pytest.mark.slow
def test_the_stream_stage_reports_what_the_log_holds(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    """Every streamed transaction decided once on the decisions topic, the malformed
    events dead-lettered, nothing left to consume; each prediction logged as `stream`."""
    home, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    settings = demo_settings(Settings(home=home))
    stream = json.loads(settings.path(REPORT).read_text())["serving"]["stream"]
    n = stream["transactions"]
    assert n > 100
    assert stream["events"] == n + stream["malformed_sent"] == stream["consumed"]
    assert stream["decisions_published"] == n
    assert stream["dead_letters"] == stream["malformed_sent"] == 3
    assert stream["lag_left"] == 0
    assert sum(stream["per_partition"].values()) == stream["events"]
    assert 0 < stream["e2e_p50_ms"] <= stream["e2e_p99_ms"]
    plog = make_prediction_log(settings)
    try:
        frame = plog.read()
    finally:
        plog.close()
    streamed = frame[frame["endpoint"] == "stream"]
    assert streamed["transaction_id"].nunique() == n
    assert f"{stream['decisions_published']:,} ({stream['decided_fraud']:,} fraud)" in proc.stdout


@pytest.mark.slow
def test_replayed_traffic_was_served_every_stored_feature_fresh(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    """From the log: the served stored features are the batch pipeline's own values for
    each transaction (its customer and terminal windows as of its time)."""
    home, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    settings = demo_settings(Settings(home=home))
    log = _scored(settings)
    assert len(log) > 20
    union = tmp_path / "both"
    (union / schema.TRANSACTIONS_DIR).mkdir(parents=True)
    for folder in (settings.path(DATASET), settings.path(REPLAY)):
        for day in (folder / schema.TRANSACTIONS_DIR).glob("*.parquet"):
            (union / schema.TRANSACTIONS_DIR / day.name).symlink_to(day)
    expected = log[["transaction_id"]]
    for view in (CUSTOMER_VIEW, TERMINAL_VIEW):
        frame = compute_view_frame(union, view).df()
        cols = [schema.TRANSACTION_ID, *view.features]
        expected = expected.merge(
            frame[cols], left_on="transaction_id", right_on=schema.TRANSACTION_ID, how="left"
        ).drop(columns=schema.TRANSACTION_ID)
    stored = [*CUSTOMER_VIEW.features, *TERMINAL_VIEW.features]
    served = pd.DataFrame([dict(f) for f in log["features"]])[stored].to_numpy(dtype=np.float64)
    truth = expected[stored].to_numpy(dtype=np.float64)
    same = np.isclose(served, truth.astype(np.float32), rtol=1e-6, atol=1e-6).all(axis=1)
    assert same.mean() >= 0.99, f"only {same.mean():.2%} served every stored feature fresh"
    report = json.loads(settings.path(REPORT).read_text())
    serving = report["serving"]
    assert serving["all_present"] >= 0.99 * (serving["requests"] - serving["failed"])
    assert serving["future"] == serving["expired"] == serving["missing"] == 0
    assert serving["degraded"] == 0


@pytest.mark.slow
def test_reported_fraud_and_decision_figures_are_the_logs(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    home, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    settings = demo_settings(Settings(home=home))
    report = json.loads(settings.path(REPORT).read_text())
    log = _scored(settings)
    labels = read_transactions(settings.path(REPLAY))
    joined = log.merge(labels, left_on="transaction_id", right_on=schema.TRANSACTION_ID)
    assert len(joined) == len(log), "every scored transaction is a replayed one"
    fraud = joined[schema.TX_FRAUD].to_numpy() == 1
    flag = joined["score"].to_numpy() >= joined["threshold"].to_numpy()
    assert (flag == (joined["decision"] == "fraud").to_numpy()).all()
    amount = joined[schema.TX_AMOUNT].to_numpy()
    got = report["outcomes"]
    tp, fp, fn = int((flag & fraud).sum()), int((flag & ~fraud).sum()), int((~flag & fraud).sum())
    serving = report["serving"]
    assert got["scored"] == len(joined)
    # a request the client gave up on (5 s timeout) may still have been scored and logged
    assert serving["requests"] - serving["failed"] <= got["scored"] <= serving["requests"]
    assert (got["caught"], got["false_alarms"], got["missed"]) == (tp, fp, fn)
    assert got["true_fraud_rate"] == pytest.approx(fraud.mean())
    assert got["flagged_rate"] == pytest.approx(flag.mean())
    if serving["failed"] == 0:
        assert serving["flagged_share"] == pytest.approx(flag.mean(), abs=1e-4)
    assert got["precision"] == (pytest.approx(tp / (tp + fp)) if tp + fp else None)
    assert got["recall"] == (pytest.approx(tp / (tp + fn)) if tp + fn else None)
    assert got["caught_eur"] == pytest.approx(amount[flag & fraud].sum(), abs=0.01)
    assert got["missed_eur"] == pytest.approx(amount[~flag & fraud].sum(), abs=0.01)
    day = joined[schema.TX_DATETIME].dt.strftime("%Y-%m-%d")
    flagged_cards = joined[flag].groupby(day[flag])[schema.CUSTOMER_ID].nunique()
    assert {d["day"]: d["cards_flagged"] for d in got["days"]} == {
        d: int(flagged_cards.get(d, 0)) for d in sorted(day.unique())
    }
    assert got["alert_budget"] == 100
    for figure in (f"{got['scored']:,}", f"{tp:,} frauds, {fp:,} false alarms"):
        assert figure in proc.stdout


def test_demo_refuses_a_nonsense_duration(home: Path) -> None:
    proc = _demo(home, "--for", "0", timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert not (home / "demo").exists()


def _scored(settings: Settings) -> pd.DataFrame:
    """The `/v1/score` rows of the demo's prediction log."""
    plog = make_prediction_log(settings)
    try:
        frame = plog.read()
    finally:
        plog.close()
    return frame[frame["endpoint"] == "score"].reset_index(drop=True)


def _demo(home: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`mlsd demo ARGS` in a fresh process on the data folder `home`, piped, 80 columns."""
    env: dict[str, Any] = {**os.environ, "MLSD_HOME": str(home), "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "mlsd.cli.main", "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


@pytest.mark.slow
def test_a_rerun_after_another_dataset_in_the_same_home_serves_a_correct_store(
    tmp_path: Path,
) -> None:
    """The trap of the README's session: another dataset materialized into the store the
    demo serves from (its watermark past the demo's data) must not leave the replay scoring
    on missing or foreign features."""
    home = tmp_path / "home"
    own = demo_settings(Settings(home=home)).home  # where the demo keeps its state
    env: dict[str, Any] = {**os.environ, "MLSD_HOME": str(own), "COLUMNS": "80"}
    other = tmp_path / "other"
    for command in (
        ["simulate", "--out", str(other), "--customers", "60", "--terminals", "90",
         "--days", "40", "--seed", "99", "--start-date", "2018-05-01"],
        ["features", "apply"],
        ["features", "build", str(other)],
        ["features", "materialize"],
    ):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "mlsd.cli.main", *command],
            capture_output=True, text=True, timeout=120, check=False, env=env,
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    proc = _demo(home, "--small", "--for", "3", timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(demo_settings(Settings(home=home)).path(REPORT).read_text())
    serving = report["serving"]
    assert serving["requests"] > 20
    assert serving["all_present"] >= 0.99 * (serving["requests"] - serving["failed"])
    assert serving["future"] == serving["expired"] == serving["missing"] == 0
