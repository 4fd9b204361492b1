"""Fresh features for replayed traffic: the stand-in for the stream processor.

Before a wave of replayed transactions is scored, `FeatureFeed.push` writes into the
online store each transaction's own customer and terminal rows: the window aggregates
the batch pipeline computes for that transaction (customer windows (t - n days, t], the
current transaction included; terminal windows (t - 7 - n days, t - 7 days], so the risk
uses only labels known a week later). They are computed once, with the pipeline's own
SQL, over the history and the held-out days together, and only from each transaction
and the ones before it: nothing a stream processor would not know at that instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlsd.data import schema
from mlsd.features import materialize as mat
from mlsd.features.online import WriteBatch
from mlsd.features.pipeline import (
    EVENT_TS,
    connect,
    has_ties,
    source_sql,
    transactions_glob,
    view_sql,
)
from mlsd.features.store import FeatureStore


@dataclass(frozen=True)
class ViewRows:
    """One batch view's rows for the replayed transactions, in replay order."""

    view: str
    version: str
    keys: npt.NDArray[np.int64]
    event_us: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


def replay_rows(
    store: FeatureStore, history: Path, replay: Path, transaction_ids: npt.NDArray[np.int64]
) -> list[ViewRows]:
    """Every batch view's row for each of `transaction_ids` (in that order)."""
    source = (
        f"{source_sql(transactions_glob(history))} UNION ALL "
        f"{source_sql(transactions_glob(replay))}"
    )
    first = int(transaction_ids.min()) if len(transaction_ids) else 0
    out: list[ViewRows] = []
    con = connect()
    try:
        for req in store.batch_requests():
            view = req.view
            key = view.entity.join_key if view.entity else ""
            sql = view_sql(view, source, has_ties(con, view, source))
            feats = ", ".join(f'"{f}"' for f in view.features)
            frame = con.execute(
                f"SELECT {schema.TRANSACTION_ID}, {key}, epoch_us({EVENT_TS}) AS e, {feats} "
                f"FROM ({sql}) WHERE {schema.TRANSACTION_ID} >= {first}"
            ).df()
            frame = frame.set_index(schema.TRANSACTION_ID).reindex(transaction_ids)
            out.append(
                ViewRows(
                    view.name,
                    req.version,
                    frame[key].to_numpy(dtype=np.int64),
                    frame["e"].to_numpy(dtype=np.int64),
                    np.ascontiguousarray(frame[list(view.features)].to_numpy(dtype=np.float64)),
                )
            )
    finally:
        con.close()
    return out


class FeatureFeed:
    """Pushes the replayed transactions' feature rows into the online store, wave by wave."""

    def __init__(self, store: FeatureStore, rows: list[ViewRows]) -> None:
        self.store = store
        self.rows = rows
        self.pushed = 0

    @classmethod
    def open(
        cls, store: FeatureStore, history: Path, replay: Path
    ) -> tuple[FeatureFeed, pd.DataFrame]:
        """The feed of the held-out days in `replay`, and their transactions (time order)."""
        from mlsd.data.io import read_transactions

        traffic = read_transactions(replay).reset_index(drop=True)
        ids = traffic[schema.TRANSACTION_ID].to_numpy(dtype=np.int64)
        return cls(store, replay_rows(store, history, replay, ids)), traffic

    def push(self, lo: int, hi: int) -> None:
        """Write the rows of transactions [lo, hi) (newer rows win, as for any write)."""
        now = mat.to_us(datetime.now(UTC))
        batches = [
            WriteBatch(
                r.view,
                r.version,
                r.keys[lo:hi],
                r.event_us[lo:hi],
                np.full(hi - lo, now, dtype=np.int64),
                r.values[lo:hi],
            )
            for r in self.rows
        ]
        self.pushed += self.store.online.write(batches)
