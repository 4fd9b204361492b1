"""Customer segments: a closed set each, drawn without moving any other column's value."""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.demo import drift_scenarios
from mlsd.data.segments import AGE_BAND_SHARES, AGE_BANDS, REGIONS
from mlsd.data.simulator import Dataset, simulate

# sha256 of every column the simulator wrote before segments existed, computed with the
# code of commit 96e90f2 (before this change) for the config of `_world()`.
BEFORE = {
    "transactions": "f7f4091a59fba5f39e497b2d90ee38dbde1ac7ede31863119c2bc06f22790a2c",
    "customers": "f21609eea90ae0cbd822ad060e98f654e0d0ef53d9c12dcdc5492de99112bf0f",
    "terminals": "87d00fe4833c96516bc48a8497a3fdb3563327dc7ba2774bfd5f9cb50c47325c",
}
OLD_CUSTOMER_COLUMNS = [
    schema.CUSTOMER_ID, "x_customer_id", "y_customer_id", "mean_amount", "std_amount",
    "mean_nb_tx_per_day", "available_terminals", "nb_terminals",
]  # fmt: skip


def frame_digest(frame: pd.DataFrame, columns: list[str]) -> str:
    """sha256 of the columns' names, dtypes and exact values (bytes of numbers)."""
    h = hashlib.sha256()
    for name in columns:
        col = frame[name]
        h.update(f"{name}:{col.dtype}\n".encode())
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            stamps = col.dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy()
            h.update(np.ascontiguousarray(stamps).tobytes())
        elif col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
            h.update("\x1f".join(repr(v) for v in col.tolist()).encode())
        else:
            h.update(np.ascontiguousarray(col.to_numpy()).tobytes())
    return h.hexdigest()


def _world() -> Dataset:
    start = date(2018, 4, 1)
    return simulate(
        SimulatorConfig.scaled(200, 400, n_days=30, seed=7, scenarios=drift_scenarios(start, 30))
    )


def test_existing_columns_are_byte_identical_to_before_segments() -> None:
    d = _world()
    assert frame_digest(d.transactions, list(d.transactions.columns)) == BEFORE["transactions"]
    assert frame_digest(d.customers, OLD_CUSTOMER_COLUMNS) == BEFORE["customers"]
    assert frame_digest(d.terminals, list(d.terminals.columns)) == BEFORE["terminals"]
    assert list(d.customers.columns) == [*OLD_CUSTOMER_COLUMNS, schema.REGION, schema.AGE_BAND]
    assert tuple(d.transactions.columns) == schema.TX_COLUMNS  # no segment on transactions


def test_segments_follow_location_and_the_seed(small: Dataset) -> None:
    c = small.customers
    assert set(c[schema.REGION]) <= set(REGIONS)
    west = c["x_customer_id"] < 50
    north = c["y_customer_id"] >= 50
    assert (c.loc[west & north, schema.REGION] == "north-west").all()
    assert (c.loc[~west & ~north, schema.REGION] == "south-east").all()
    again = simulate(small.config).customers
    assert (again[schema.AGE_BAND] == c[schema.AGE_BAND]).all()
    other = simulate(small.config.with_changes(seed=2)).customers
    assert (other[schema.AGE_BAND] != c[schema.AGE_BAND]).any()


def test_age_bands_come_at_their_shares() -> None:
    big = simulate(SimulatorConfig.scaled(20_000, 100, n_days=1, seed=3)).customers
    shares = big[schema.AGE_BAND].value_counts(normalize=True)
    for band, share in zip(AGE_BANDS, AGE_BAND_SHARES, strict=True):
        assert abs(shares[band] - share) < 0.015  # 5 sd of a share at n = 20,000
