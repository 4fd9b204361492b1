"""The similarity features of a table of transactions, in batch, for one refresh schedule:
each transaction reads the embeddings of the latest refresh at or before it (as serving
would), its terminal's nearest terminals in that refresh, and which of them were known
compromised at the start of its day. Used by the `embeddings` experiment.

Neighbours come from exact search (Faiss's flat index) so that schedules compare on the
embeddings alone; the ANN index serves the same neighbours to its measured recall@10.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlsd.data import schema
from mlsd.features import MISSING_VALUE
from mlsd.features.ann import exact_search
from mlsd.features.embeddings import DAY_US, Embeddings, compute_embeddings
from mlsd.features.similarity import SIMILARITY_FEATURES, drop_self, neighbour_features

K: int = 10


@dataclass
class Schedule:
    """The refreshes of one interval and what computing them cost (seconds each)."""

    interval_us: int
    refreshes: list[Embeddings]
    seconds: list[float]

    @property
    def times(self) -> npt.NDArray[np.int64]:
        """Refresh times (µs), ascending."""
        return np.array([e.refresh_us for e in self.refreshes], dtype=np.int64)


def payments(tx: pd.DataFrame) -> tuple[npt.NDArray[np.int64], ...]:
    """(customers, terminals, times µs) of a transactions frame."""
    return (
        tx[schema.CUSTOMER_ID].to_numpy(np.int64),
        tx[schema.TERMINAL_ID].to_numpy(np.int64),
        tx[schema.TX_DATETIME].dt.as_unit("us").astype("int64").to_numpy(),
    )


def schedule(
    tx: pd.DataFrame, start_us: int, end_us: int, interval_us: int, history_days: int, dim: int
) -> Schedule:
    """Refreshes every `interval_us` from `start_us` until `end_us`, each timed (SVD and
    the nearest-neighbour table of its terminals)."""
    customers, terminals, times = payments(tx)
    out, took = [], []
    for refresh in range(start_us, end_us, interval_us):
        began = time.perf_counter()
        emb = compute_embeddings(customers, terminals, times, refresh, history_days, dim)
        _neighbours(emb)
        took.append(time.perf_counter() - began)
        out.append(emb)
    return Schedule(interval_us, out, took)


#: id(refresh) -> (the refresh, kept so its id is not reused; its neighbour ids; similarities)
_NEIGHBOURS: dict[int, tuple[Embeddings, npt.NDArray[np.int64], npt.NDArray[np.float32]]] = {}


def _neighbours(emb: Embeddings) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The K nearest other terminals of each terminal of a refresh (memoised per refresh)."""
    found = _NEIGHBOURS.get(id(emb))
    if found is None:
        ids, sims = exact_search(emb.terminals, emb.terminal_vectors, emb.terminal_vectors, K + 1)
        found = (emb, *drop_self(emb.terminals, ids, sims, K))
        _NEIGHBOURS[id(emb)] = found
    return found[1], found[2]


def forget() -> None:
    """Drop the memoised neighbour tables (end of a run)."""
    _NEIGHBOURS.clear()


def features(
    tx: pd.DataFrame, plan: Schedule, compromised: npt.NDArray[np.bool_], first_day_us: int
) -> pd.DataFrame:
    """`SIMILARITY_FEATURES` of every row of `tx` under `plan` (MISSING_VALUE where the
    terminal, or for the affinity the card, is not in the refresh read)."""
    customers, terminals, times = payments(tx)
    out = np.full((len(tx), len(SIMILARITY_FEATURES)), MISSING_VALUE, dtype=np.float64)
    which = np.searchsorted(plan.times, times, side="right") - 1
    day = np.clip((times - first_day_us) // DAY_US, 0, compromised.shape[1] - 1)
    for j in np.unique(which[which >= 0]).tolist():
        emb = plan.refreshes[j]
        rows = np.nonzero(which == j)[0]
        nb_ids, nb_sims = _neighbours(emb)
        tpos, t_ok = _positions(emb.terminals, terminals[rows])
        cpos, c_ok = _positions(emb.customers, customers[rows])
        have = rows[t_ok]
        ids = nb_ids[tpos[t_ok]]
        flags = compromised[np.maximum(ids, 0), day[have][:, None]] & (ids >= 0)
        out[have, :2] = neighbour_features(ids, nb_sims[tpos[t_ok]], flags)
        both = t_ok & c_ok
        cvec = emb.customer_vectors[cpos[both]]
        tvec = emb.terminal_vectors[tpos[both]]
        out[rows[both], 2] = np.einsum("ij,ij->i", cvec, tvec)
    return pd.DataFrame(out, columns=list(SIMILARITY_FEATURES), index=tx.index)


def _positions(
    known: npt.NDArray[np.int64], wanted: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Where each wanted id is in the sorted `known`, and whether it is there at all."""
    pos = np.clip(np.searchsorted(known, wanted), 0, max(len(known) - 1, 0))
    return pos, known[pos] == wanted if len(known) else np.zeros(len(wanted), dtype=bool)


def neighbour_overlap(old: Embeddings, new: Embeddings) -> float:
    """Share of each terminal's K nearest in `new` that `old` also lists (terminals in both):
    how far the embeddings drifted between the two refreshes."""
    old_ids, _ = _neighbours(old)
    new_ids, _ = _neighbours(new)
    common, old_pos, new_pos = np.intersect1d(old.terminals, new.terminals, return_indices=True)
    if len(common) == 0:
        return 0.0
    shared = [
        len(set(a.tolist()) & set(b.tolist()) - {-1}) / K
        for a, b in zip(old_ids[old_pos], new_ids[new_pos], strict=True)
    ]
    return float(np.mean(shared))


def stale_by(plan: Sequence[Embeddings], offset: int) -> list[tuple[Embeddings, Embeddings]]:
    """Pairs of refreshes `offset` apart (older, newer)."""
    return [(plan[i], plan[i + offset]) for i in range(len(plan) - offset)]
