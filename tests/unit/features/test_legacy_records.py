"""Definitions stored before declared aggregations still load, with their stored version.

An installation upgraded in place has `customer_spending`/`terminal_risk` records of the
old kinds in its registry, tables and online rows under those versions, and models whose
lineage names them. They must keep working after the handbook's views became declared
window views (with new versions).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlsd.features.definitions import FeatureView, content_hash
from mlsd.features.handbook import CUSTOMER, CUSTOMER_VIEW, TERMINAL, TERMINAL_VIEW
from mlsd.features.store import FeatureStore
from mlsd.settings import Settings

#: the versions the handbook's views had (docs/features.md of earlier releases)
OLD_CUSTOMER, OLD_TERMINAL = "2e20ad9b0a2e372f", "e4f7f8fe5a386e2a"


def _old_record(view: FeatureView, kind: str, delay: int) -> dict[str, object]:
    entity = CUSTOMER if kind == "customer_spending" else TERMINAL
    return {
        "name": view.name,
        "entity": {"name": entity.name, "join_key": entity.join_key,
                   "description": entity.description},
        "kind": kind,
        "features": list(view.features),
        "ttl_seconds": 2592000.0,
        "windows_days": [1, 7, 30],
        "delay_days": delay,
        "source": "transactions",
        "description": view.description,
    }  # fmt: skip


def test_old_records_keep_their_versions_and_values(
    tmp_path: Path, dataset: Path, transactions: pd.DataFrame
) -> None:
    old_c = _old_record(CUSTOMER_VIEW, "customer_spending", 0)
    old_t = _old_record(TERMINAL_VIEW, "terminal_risk", 7)
    assert (content_hash(old_c), content_hash(old_t)) == (OLD_CUSTOMER, OLD_TERMINAL)
    settings = Settings(home=tmp_path / "home")
    store = FeatureStore.open(settings)  # creates the registry's tables
    store.close()
    with sqlite3.connect(settings.path("features", "registry.sqlite")) as db:  # as 0.x wrote
        for rec, version in ((old_c, OLD_CUSTOMER), (old_t, OLD_TERMINAL)):
            db.execute("INSERT INTO feature_view_versions VALUES (?, ?, ?, '2026-01-01')",
                       (rec["name"], version, json.dumps(rec, sort_keys=True)))  # fmt: skip
            db.execute("INSERT INTO feature_view_changes (name, version, previous, applied_at) "
                       "VALUES (?, ?, NULL, '2026-01-01')", (rec["name"], version))  # fmt: skip
    store = FeatureStore.open(settings)
    try:
        assert store.view_versions() == {"customer_spending": OLD_CUSTOMER,
                                         "terminal_risk": OLD_TERMINAL}  # fmt: skip
        loaded = store.registry.get("customer_spending")
        assert loaded.kind == "window"
        assert loaded.to_dict() == old_c
        assert loaded == CUSTOMER_VIEW  # the same definition as the declared handbook view
        store.build(dataset)
        feats = [*CUSTOMER_VIEW.features, *TERMINAL_VIEW.features]
        old = store.get_training_set(transactions, feats)
        new_versions = store.apply()  # the upgrade: new versions, old ones stay readable
        assert new_versions["customer_spending"] == CUSTOMER_VIEW.version != OLD_CUSTOMER
        store.build(dataset)
        new = store.get_training_set(transactions, feats)
        pinned = store.get_training_set(
            transactions, feats,
            versions={"customer_spending": OLD_CUSTOMER, "terminal_risk": OLD_TERMINAL},
        )  # fmt: skip
        for f in feats:
            np.testing.assert_allclose(new[f], old[f], rtol=0, atol=1e-9, err_msg=f)
            np.testing.assert_array_equal(pinned[f], old[f], err_msg=f)
    finally:
        store.close()


def test_the_old_spelling_still_constructs_the_same_view() -> None:
    old = FeatureView("customer_spending", CUSTOMER, "customer_spending",
                      CUSTOMER_VIEW.features, timedelta(days=30), (1, 7, 30),
                      description=CUSTOMER_VIEW.description)  # fmt: skip
    assert old.version == OLD_CUSTOMER
    assert old == CUSTOMER_VIEW
    assert old.aggregations == CUSTOMER_VIEW.aggregations
    longer = FeatureView("customer_spending", CUSTOMER, "customer_spending",
                         CUSTOMER_VIEW.features, timedelta(days=31), (1, 7, 30))  # fmt: skip
    assert longer.version not in (OLD_CUSTOMER, CUSTOMER_VIEW.version)
    assert FeatureView.from_dict(old.to_dict()).version == OLD_CUSTOMER
