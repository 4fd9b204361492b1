"""The DuckDB pipeline against the handbook's pandas code: every value, every transaction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.data import schema
from mlsd.errors import IntegrityError, NotFoundError
from mlsd.features import HANDBOOK_FEATURES
from mlsd.features.handbook import CUSTOMER_VIEW, TERMINAL_VIEW
from mlsd.features.pipeline import compute_view_frame
from mlsd.features.reference import reference_features
from mlsd.features.store import FeatureStore


def _compare(got: pd.DataFrame, ref: pd.DataFrame, features: tuple[str, ...]) -> None:
    got = got.set_index(schema.TRANSACTION_ID).sort_index()
    assert got.index.equals(ref.index)
    for feat in features:
        a, b = got[feat].to_numpy(), ref[feat].to_numpy(dtype=np.float64)
        if "NB_TX" in feat:
            np.testing.assert_array_equal(a, b, err_msg=feat)
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, err_msg=feat)


def test_batch_views_equal_pandas_reference(transactions: pd.DataFrame, dataset: Path) -> None:
    ties = transactions.duplicated([schema.CUSTOMER_ID, schema.TX_DATETIME]).sum()
    assert ties > 10  # the tie rule is exercised
    ref = reference_features(transactions)
    for view in (CUSTOMER_VIEW, TERMINAL_VIEW):
        _compare(compute_view_frame(dataset, view).df(), ref, view.features)


def test_on_simulated_data(tmp_path: Path) -> None:
    simulator = pytest.importorskip("mlsd.data.simulator")
    from mlsd.data.config import SimulatorConfig
    from mlsd.data.io import write_dataset

    data = simulator.simulate(SimulatorConfig(n_customers=60, n_terminals=100, n_days=45))
    folder = write_dataset(data, tmp_path / "ds")
    ref = reference_features(data.transactions)
    for view in (CUSTOMER_VIEW, TERMINAL_VIEW):
        _compare(compute_view_frame(folder, view).df(), ref, view.features)


def test_training_set_reproduces_handbook_values(
    built: FeatureStore, transactions: pd.DataFrame
) -> None:
    ref = reference_features(transactions)
    # the point-in-time row of a transaction is its own, except when a customer has two at
    # the same time: then both see the state after both (one row per entity and time)
    train = built.get_training_set(transactions, list(HANDBOOK_FEATURES))
    assert list(train.columns[: len(transactions.columns)]) == list(transactions.columns)
    tied = transactions.duplicated([schema.CUSTOMER_ID, schema.TX_DATETIME], keep="last")
    keep = ~tied.to_numpy()
    for feat in HANDBOOK_FEATURES:
        got = train[feat].to_numpy()[keep]
        want = ref.loc[train[schema.TRANSACTION_ID], feat].to_numpy()[keep]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, err_msg=feat)


def test_missing_dataset_is_a_clear_error(store: FeatureStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        store.build(tmp_path / "nowhere")
    assert info.value.field == "dataset_dir"


def test_rebuild_replaces_the_table_and_a_failed_build_keeps_it(
    built: FeatureStore, dataset: Path, tmp_path: Path
) -> None:
    req = next(r for r in built.batch_requests() if r.view.name == "terminal_risk")
    first = built.offline.parts("terminal_risk", req.version)
    built.build(dataset)
    second = built.offline.parts("terminal_risk", req.version)
    assert len(second) == 1
    assert second != first
    broken = tmp_path / "broken"
    (broken / "transactions").mkdir(parents=True)
    (broken / "transactions" / "2018-04-01.parquet").write_bytes(b"not parquet")
    with pytest.raises(IntegrityError, match=r"cannot compute view") as info:
        built.build(broken)
    assert info.value.field == "dataset_dir"
    assert built.offline.parts("terminal_risk", req.version) == second
