"""The silent-degradation lab's quick run: what its monitors must and must not see."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlsd.lab.degradation_world import CHANGE_DAY
from mlsd.lab.silent_degradation import MONITORS, SCENARIOS
from tests.unit.lab.conftest import QuickRun


@pytest.fixture(scope="module")
def results(quick_report: QuickRun) -> dict[str, Any]:
    report = quick_report("silent-degradation")
    payload: dict[str, Any] = json.loads((report.parent / "results.json").read_text())
    return payload


def _row(results: dict[str, Any], scenario: str, monitor: str) -> dict[str, Any]:
    return next(
        r for r in results["table"] if r["scenario"] == scenario and r["monitor"] == monitor
    )


def test_every_scenario_and_monitor_is_reported(results: dict[str, Any]) -> None:
    assert {(r["scenario"], r["monitor"]) for r in results["table"]} == {
        (s, m) for s in SCENARIOS for m in MONITORS
    }


def test_input_drift_catches_the_amount_shift_within_days(results: dict[str, Any]) -> None:
    row = _row(results, "amount_shift", "input drift")
    assert row["fired"] == "yes"
    assert row["delay (days)"] <= 3
    assert row["false alarms (quiet days)"].startswith("0/")
    days = results["results"]["timelines"][0]["days"]
    after = [d for d in days if d["day"] >= CHANGE_DAY + 3]
    assert all("AMOUNT" in d["input_feature"] for d in after), "an amount feature moved most"


def test_concept_drift_escapes_cbpe_and_shows_in_the_labels(results: dict[str, Any]) -> None:
    """The compromise-rate change: scores barely move, so the estimate does not; the labels
    do, and never before the 7 days they take to land."""
    assert _row(results, "compromise_rate", "CBPE estimate")["fired"] == "no"
    assert _row(results, "compromise_rate", "input drift")["fired"] == "no"
    labels = _row(results, "compromise_rate", "delayed labels")
    assert labels["fired"] == "yes"
    assert labels["delay (days)"] >= 7
    errors = results["results"]["estimate_error"]["compromise_rate"]
    assert errors["after"] - errors["before"] > 0.05, "CBPE overestimates once frauds change"
    timeline = next(
        t for t in results["results"]["timelines"] if t["scenario"] == "compromise_rate"
    )
    before = [d["true_auc"] for d in timeline["days"] if d["day"] < CHANGE_DAY]
    after = [d["true_auc"] for d in timeline["days"] if d["day"] >= CHANGE_DAY + 2]
    assert sum(after) / len(after) < sum(before) / len(before) - 0.05


def test_labels_alone_see_card_testing_and_never_early(results: dict[str, Any]) -> None:
    assert _row(results, "card_testing", "CBPE estimate")["fired"] == "no"
    assert _row(results, "card_testing", "delayed labels")["fired"] == "yes"
    for scenario, found in results["results"]["alarms"].items():
        for hours, day in found["delayed labels"]:
            assert hours >= 24 * (day + 1 + 7) - 24 * 0.5, (scenario, hours, day)
