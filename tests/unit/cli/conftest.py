"""A world for `mlsd monitor fairness` and `mlsd monitor report`: a registry, a simulated
dataset with segments, and a prediction log joined to it by transaction id."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.data import schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.io import write_dataset
from mlsd.data.simulator import simulate
from mlsd.predlog import ParquetPredictionLog, PredictionRecord
from mlsd.registry import Registry
from mlsd.registry.testing import FEATURES, sample_rows
from mlsd.settings import Settings, get_settings
from tests.unit.monitoring.helpers import register_profiled, register_unprofiled

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def declines(tx: pd.DataFrame, customers: pd.DataFrame, bias: bool) -> np.ndarray:
    """Frauds declined two times in three; with `bias`, 1 genuine transaction in 10 of
    north-west customers declined too (none elsewhere): a planted false-decline gap."""
    region = tx[schema.CUSTOMER_ID].map(customers.set_index(schema.CUSTOMER_ID)[schema.REGION])
    ids = tx[schema.TRANSACTION_ID].to_numpy()
    fraud = tx[schema.TX_FRAUD].to_numpy() == 1
    wrong = (region.to_numpy() == "north-west") & (ids % 10 == 0) & bias
    return np.asarray((fraud & (ids % 3 != 0)) | (~fraud & wrong))


def records(
    tx: pd.DataFrame, declined: np.ndarray, version: int, start: datetime, shift: float = 0.0,
    latency: float = 2.0,
) -> list[PredictionRecord]:  # fmt: skip
    rows = sample_rows(len(tx), seed=version).astype(np.float64)
    rows[:, 1] += shift
    step = HOUR / max(1, len(tx))
    out = []
    for i, (t, row) in enumerate(zip(tx.itertuples(index=False), rows, strict=True)):
        score = 0.85 if declined[i] else 0.05 + 0.1 * (i % 7) / 7
        out.append(
            PredictionRecord(
                request_id=f"r{version}-{start:%H}-{i}",
                ts=start + i * step,
                model="fraud",
                version=str(version),
                features=list(row),
                feature_names=list(FEATURES),
                score=score,
                decision="fraud" if declined[i] else "legit",
                threshold=0.5,
                latency_ms=latency + (i % 10) / 10,
                variant="champion",
                transaction_id=int(t.TRANSACTION_ID),
                customer_id=int(t.CUSTOMER_ID),
            )
        )
    return out


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fraud/1 without a profile, fraud/2 with one. The log: hour 0 fraud/2 on the first
    half of the transactions (north-west falsely declined), hour 1 fraud/2 on the second
    half with f1 shifted by 0.5 and latency x5, hour 2 fraud/1, hour 3 fraud/7 (unknown)."""
    home = tmp_path_factory.mktemp("monitor-world")
    settings = Settings(home=home)
    data = simulate(SimulatorConfig.scaled(200, 400, n_days=30, seed=4))
    write_dataset(data, settings.path("dataset"))
    with Registry.open(settings) as registry:
        register_unprofiled(registry)
        register_profiled(registry)
    tx = data.transactions
    half = len(tx) // 2
    first, second = tx.iloc[:half], tx.iloc[half:]
    log = ParquetPredictionLog(settings.path("predictions"), compact_every_s=None, journal=False)
    log.append(records(first, declines(first, data.customers, True), 2, T0))
    log.append(records(second, declines(second, data.customers, False), 2, T0 + HOUR,
                       shift=0.5, latency=10.0))  # fmt: skip
    log.append(records(tx.iloc[:300], declines(tx.iloc[:300], data.customers, False), 1,
                       T0 + 2 * HOUR))  # fmt: skip
    log.append(records(tx.iloc[:50], np.zeros(50, dtype=bool), 7, T0 + 3 * HOUR))
    log.close()
    return home


@pytest.fixture
def monitor_home(world: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The world as MLSD_HOME."""
    monkeypatch.setenv("MLSD_HOME", str(world))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield world
    get_settings.cache_clear()
