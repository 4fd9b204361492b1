"""Training sets from the feature store: entity rows in, point-in-time features out.

Training never computes features itself: it hands the raw transactions (the entity
rows, with their labels) to the feature store's point-in-time join, so a model sees
exactly the values serving will read. `FeatureSource` is the part of the store used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlsd.data import schema
from mlsd.errors import NotFoundError, ValidationError
from mlsd.features import MISSING_VALUE
from mlsd.training.protocol import day_start

ENTITY_COLUMNS = (
    schema.TRANSACTION_ID,
    schema.TX_DATETIME,
    schema.CUSTOMER_ID,
    schema.TERMINAL_ID,
    schema.TX_AMOUNT,
    schema.TX_FRAUD,
)


class FeatureSource(Protocol):
    """What training needs from the feature store (`mlsd.features.store.FeatureStore`)."""

    def get_training_set(
        self, entity_df: pd.DataFrame, features: list[str], timestamp_column: str = ...
    ) -> pd.DataFrame:
        """`entity_df` with each feature joined as of its row's timestamp."""
        ...

    def view_versions(self) -> dict[str, str]:
        """Feature view name -> version (content hash) served now."""
        ...


def handbook_features() -> list[str]:
    """The 15 handbook model inputs, in model order."""
    from mlsd.features.handbook import HANDBOOK_FEATURES

    return list(HANDBOOK_FEATURES)


def load_transactions(dataset_dir: Path, start: date, end: date) -> pd.DataFrame:
    """Transactions of the days in [start, end) of a simulated dataset folder."""
    from mlsd.data.io import read_transactions

    last = end - timedelta(days=1)
    frame = read_transactions(dataset_dir, start=start, end=last)
    lo, hi = pd.Timestamp(day_start(start)), pd.Timestamp(day_start(end))
    stamps = frame[schema.TX_DATETIME]
    frame = frame[(stamps >= lo) & (stamps < hi)]
    return frame.sort_values(schema.TRANSACTION_ID, kind="stable").reset_index(drop=True)


def read_dataset_manifest(dataset_dir: Path) -> dict[str, Any]:
    """The dataset's manifest (config, seed, counts, content hash)."""
    from mlsd.data.io import read_manifest

    if not Path(dataset_dir).is_dir():
        raise NotFoundError(f"no dataset folder at {dataset_dir}", field="dataset")
    return read_manifest(dataset_dir)


def dataset_period(dataset_dir: Path) -> tuple[date, date]:
    """First day of a dataset and the day after its last day, from its manifest."""
    manifest = read_dataset_manifest(dataset_dir)
    try:
        first = date.fromisoformat(str(manifest["start_date"]))
        last = date.fromisoformat(str(manifest["end_date"]))
    except (KeyError, ValueError) as exc:
        message = f"the manifest of {dataset_dir} has no start_date/end_date"
        raise ValidationError(message, field="dataset") from exc
    return first, last + timedelta(days=1)


def dataset_hash(dataset_dir: Path) -> str:
    """The dataset's content hash (sha256 over its files' sha256), from its manifest."""
    manifest = read_dataset_manifest(dataset_dir)
    value = manifest.get("content_sha256")
    if not isinstance(value, str):
        canonical = json.dumps(manifest.get("files", {}), sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()
    return value


def training_frame(
    source: FeatureSource, transactions: pd.DataFrame, features: Sequence[str]
) -> pd.DataFrame:
    """The entity rows with their point-in-time features, sorted by TRANSACTION_ID.

    A feature the store reports as missing (older than its view's TTL) becomes 0.0,
    the value the online store serves for a missing count or risk.
    """
    missing = [c for c in ENTITY_COLUMNS if c not in transactions.columns]
    if missing:
        raise ValidationError(f"the transactions lack {missing}", field=missing[0])
    entities = transactions.loc[:, list(ENTITY_COLUMNS)].reset_index(drop=True)
    frame = source.get_training_set(entities, list(features))
    absent = [f for f in features if f not in frame.columns]
    if absent:
        raise ValidationError(f"the feature store returned no {absent}", field=absent[0])
    if len(frame) != len(entities):
        raise ValidationError("the feature store changed the number of rows", field="entity_df")
    frame = frame.sort_values(schema.TRANSACTION_ID, kind="stable").reset_index(drop=True)
    frame[list(features)] = frame[list(features)].astype(np.float64).fillna(MISSING_VALUE)
    return frame


def matrix(frame: pd.DataFrame, features: Sequence[str]) -> NDArray[np.float32]:
    """The feature columns as a float32 matrix in model order."""
    return np.ascontiguousarray(frame[list(features)].to_numpy(dtype=np.float32))


def training_set_hash(frame: pd.DataFrame, features: Sequence[str]) -> str:
    """sha256 over the ids, the features (float32, model order) and the labels."""
    digest = hashlib.sha256()
    digest.update(json.dumps(list(features)).encode())
    digest.update(frame[schema.TRANSACTION_ID].to_numpy(dtype=np.int64).tobytes())
    digest.update(matrix(frame, features).tobytes())
    digest.update(frame[schema.TX_FRAUD].to_numpy(dtype=np.int8).tobytes())
    return digest.hexdigest()
