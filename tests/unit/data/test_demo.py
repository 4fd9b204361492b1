"""The demo step: a small dataset with a handbook-like fraud rate, optionally with drift."""

from __future__ import annotations

from pathlib import Path

from mlsd.data import io, schema
from mlsd.data.demo import demo_step


def test_demo_step(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    summary = demo_step(out, n_customers=200, n_terminals=400, n_days=30)
    assert summary.transactions == io.read_manifest(out)["rows"]["transactions"]
    assert 0.001 < summary.fraud_rate < 0.03
    assert summary.per_injected == {}
    again = demo_step(out, n_customers=200, n_terminals=400, n_days=30, with_drift=True)
    assert set(again.per_injected) == {"spending_up", "card_testing"}
    tx = io.read_transactions(out)
    assert (tx.loc[tx[schema.INJECTED] == "card_testing", schema.TX_FRAUD_SCENARIO] == 4).all()
