"""The skew lab, run quick: what each skew costs and which check catches it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlsd.lab.skew import SKEWS
from tests.unit.lab.conftest import QuickRun


@pytest.fixture(scope="module")
def outcomes(quick_report: QuickRun) -> dict[str, dict[str, Any]]:
    report = quick_report("skew")
    results = json.loads((report.parent / "results.json").read_text())["results"]
    return {o["skew"]: o for o in results["outcomes"]}


def _caught(outcome: dict[str, Any]) -> set[str]:
    return {check for check, fired in outcome["caught"].items() if fired is not None}


def test_every_skew_is_replayed_on_the_same_rows(outcomes: dict[str, dict[str, Any]]) -> None:
    assert list(outcomes) == list(SKEWS)
    assert len({o["rows"] for o in outcomes.values()}) == 1
    assert outcomes["none"]["rows"] > 500


def test_training_consistent_serving_loses_nothing_and_raises_no_alarm(
    outcomes: dict[str, dict[str, Any]],
) -> None:
    none = outcomes["none"]
    assert none["rows_off"] == 0.0, "served exactly the offline point-in-time features"
    assert none["lost"] == {"AUC": 0.0, "AP": 0.0, "CP@k": 0.0}
    assert none["rows_not_served"] == 0.0
    assert _caught(none) == set(), "no false alarm on the reference"


def test_the_customer_one_behind_is_seen_by_the_skew_report_not_by_parity(
    outcomes: dict[str, dict[str, Any]],
) -> None:
    for name in ("one behind", "stale 1 day"):
        skew = outcomes[name]
        assert skew["rows_off"] == 1.0, name  # every count window misses the current payment
        assert "skew report" in _caught(skew), name
        assert "parity" not in _caught(skew), name  # the store agrees with offline at its times


def test_the_amount_in_cents_costs_precision_and_only_drift_sees_it(
    outcomes: dict[str, dict[str, Any]],
) -> None:
    cents = outcomes["cents"]
    assert cents["lost"]["AP"] > 0.05
    assert "drift" in _caught(cents)
    # the request itself is in cents, and a float is a float: neither compares units
    assert not _caught(cents) & {"skew report", "schema", "parity"}


def test_an_early_ttl_serves_fill_values(outcomes: dict[str, dict[str, Any]]) -> None:
    ttl = outcomes["TTL 1 h"]
    assert ttl["rows_not_served"] > 0.5
    assert ttl["lost"]["AP"] > outcomes["one behind"]["lost"]["AP"]
    assert {"feature status", "skew report"} <= _caught(ttl)


def test_a_wrong_prefix_misses_every_lookup_and_parity_sees_it_first(
    outcomes: dict[str, dict[str, Any]],
) -> None:
    wrong = outcomes["wrong prefix"]
    assert wrong["rows_not_served"] == 1.0
    assert wrong["lost"]["AP"] > 0.1
    parity = wrong["caught"]["parity"]
    assert parity is not None
    assert parity["rows"] == 0, "before the first request"
    assert "never materialized" in parity["why"]
    assert "feature status" in _caught(wrong)
