"""The labels known at an evaluation time, read from dataset folders.

Labels are delayed: a transaction's label is known from its `LABEL_AVAILABLE_AT` on. A
monitor evaluating at time `as_of` counts only those, as the fraud team could that day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

import pandas as pd

from mlsd.data import schema
from mlsd.errors import NotFoundError, ValidationError

LABEL_COLUMNS: Final = [
    schema.TRANSACTION_ID, schema.CUSTOMER_ID, schema.TX_DATETIME, schema.TX_AMOUNT,
    schema.TX_FRAUD, schema.LABEL_AVAILABLE_AT,
]  # fmt: skip


def read_datasets(folders: Sequence[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(transactions' `LABEL_COLUMNS`, customers) of one or more dataset folders (history
    and replayed days, say), each transaction and customer once."""
    from mlsd.data.io import is_dataset, read_profiles, read_transactions

    if not folders:
        raise ValidationError("give at least one dataset folder of labels", field="labels")
    parts, people = [], []
    for folder in folders:
        if not is_dataset(Path(folder)):
            raise NotFoundError(f"{folder} is not a dataset folder (no manifest.json)",
                                field="labels")  # fmt: skip
        parts.append(read_transactions(folder)[LABEL_COLUMNS])
        people.append(read_profiles(folder)[0])
    transactions = pd.concat(parts, ignore_index=True).drop_duplicates(schema.TRANSACTION_ID)
    customers = pd.concat(people, ignore_index=True).drop_duplicates(schema.CUSTOMER_ID)
    return transactions, customers


def known_by(transactions: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """The transactions whose label is known at `as_of`."""
    known: pd.DataFrame = transactions[transactions[schema.LABEL_AVAILABLE_AT] <= as_of]
    return known
