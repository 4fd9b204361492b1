"""Request-time features from embeddings: how close a payment's terminal is to terminals
compromised lately, and how usual the terminal is for the card.

- `TERMINAL_EMB_SIM_COMPROMISED`: the highest cosine similarity between the terminal and one
  of its `k` nearest terminals (ANN index) with a known fraud in the last `window_days`
  (labels known `delay_days` after the fact, as the handbook's terminal risk); 0 when none.
- `TERMINAL_EMB_NB_COMPROMISED`: how many of those `k` neighbours are compromised.
- `CUSTOMER_TERMINAL_AFFINITY`: cosine of the card's and the terminal's embeddings (same
  refresh): low for a terminal the card's neighbourhood never uses.

Training computes them in batch (`batch_features`), serving per request (`SimilarityFeatures`)
from the online store's embedding rows: an entity with no embedding (a new terminal) gets
status `missing` and the value training filled missing features with; an index built for
another embedding refresh is a `ConflictError`, never a wrong neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from mlsd.features import MISSING_VALUE
from mlsd.features.ann import TerminalIndex
from mlsd.features.definitions import FeatureView
from mlsd.features.online import PRESENT, OnlineStore, status_of

SIM_COMPROMISED: Final = "TERMINAL_EMB_SIM_COMPROMISED"
NB_COMPROMISED: Final = "TERMINAL_EMB_NB_COMPROMISED"
AFFINITY: Final = "CUSTOMER_TERMINAL_AFFINITY"
SIMILARITY_FEATURES: Final = (SIM_COMPROMISED, NB_COMPROMISED, AFFINITY)
DAY_US: Final = 86_400_000_000


def embedding_version(view: FeatureView, refresh_us: int) -> str:
    """The version an ANN index is built for: the view's version and the refresh time."""
    return f"{view.name}:{view.version}@{int(refresh_us)}"


def compromised_by_day(
    terminals: npt.NDArray[np.int64],
    times_us: npt.NDArray[np.int64],
    frauds: npt.NDArray[np.int64],
    first_day_us: int,
    n_days: int,
    window_days: int,
    delay_days: int,
) -> npt.NDArray[np.bool_]:
    """(max terminal + 1, n_days): known compromised at the start of each day, i.e. a fraud
    on the terminal in [day - delay - window, day - delay)."""
    n_terminals = int(terminals.max()) + 1 if len(terminals) else 1
    day = (times_us - first_day_us) // DAY_US
    hit = np.zeros((n_terminals, n_days + 1), dtype=np.int32)
    mask = (frauds == 1) & (day >= -(delay_days + window_days)) & (day < n_days)
    for t, d in zip(terminals[mask].tolist(), day[mask].tolist(), strict=True):
        lo, hi = d + delay_days + 1, d + delay_days + window_days + 1  # days that know it
        hit[t, max(lo, 0) : max(min(hi, n_days + 1), 0)] = 1
    return hit[:, :n_days].astype(bool)


def neighbour_features(
    neighbours: npt.NDArray[np.int64],
    sims: npt.NDArray[np.float32],
    compromised: npt.NDArray[np.bool_],
) -> npt.NDArray[np.float64]:
    """(max similarity to a compromised neighbour, number of compromised neighbours) per row."""
    flags = compromised & (neighbours >= 0)
    best = np.where(flags, np.nan_to_num(sims, nan=0.0), 0.0).max(axis=1, initial=0.0)
    return np.column_stack([best, flags.sum(axis=1)]).astype(np.float64)


def drop_self(
    query_ids: npt.NDArray[np.int64],
    ids: npt.NDArray[np.int64],
    sims: npt.NDArray[np.float32],
    k: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The first `k` neighbours of each query other than the query itself."""
    rows_ids = np.full((len(ids), k), -1, dtype=np.int64)
    rows_sims = np.full((len(ids), k), np.nan, dtype=np.float32)
    for i, (own, found, sim) in enumerate(zip(query_ids.tolist(), ids, sims, strict=True)):
        keep = found != own
        kept_ids, kept_sims = found[keep][:k], sim[keep][:k]
        rows_ids[i, : len(kept_ids)] = kept_ids
        rows_sims[i, : len(kept_sims)] = kept_sims
    return rows_ids, rows_sims


@dataclass
class SimilarityFeatures:
    """The similarity features of scoring requests, from the online store's embeddings."""

    online: OnlineStore
    customer_view: FeatureView
    terminal_view: FeatureView
    index: TerminalIndex
    compromised: frozenset[int]
    k: int = 10

    @property
    def features(self) -> tuple[str, ...]:
        """`SIMILARITY_FEATURES`: what it computes (`mlsd.inference.provided`)."""
        return SIMILARITY_FEATURES

    def values(
        self, requests: Sequence[tuple[int, int, int]]
    ) -> tuple[npt.NDArray[np.float32], list[dict[str, str]]]:
        """(n, 3) in `SIMILARITY_FEATURES` order and a status per feature, for requests of
        (customer, terminal, request time µs). Raises ConflictError when the served terminal
        embeddings are not the ones the index was built for."""
        cv, tv = self.customer_view, self.terminal_view
        lookups = []
        for customer, terminal, _ in requests:
            lookups += [(cv.name, cv.version, customer), (tv.name, tv.version, terminal)]
        records = self.online.read(lookups)
        out = np.full((len(requests), 3), MISSING_VALUE, dtype=np.float32)
        statuses: list[dict[str, str]] = []
        for i, (_, terminal, now) in enumerate(requests):
            crec, trec = records[2 * i], records[2 * i + 1]
            t_state = status_of(trec, now, tv.ttl_us)
            c_state = status_of(crec, now, cv.ttl_us)
            status = {SIM_COMPROMISED: t_state, NB_COMPROMISED: t_state}
            status[AFFINITY] = t_state if t_state != PRESENT else c_state
            statuses.append(status)
            if t_state != PRESENT or trec is None:
                continue
            self.index.require(embedding_version(tv, trec.event_us))
            vec = trec.values.astype(np.float32)[None, :]
            ids, sims = self.index.search(vec, self.k + 1)
            ids, sims = drop_self(np.array([terminal]), ids, sims, self.k)
            flags = np.isin(ids, np.fromiter(self.compromised, dtype=np.int64))
            out[i, :2] = neighbour_features(ids, sims, flags)[0]
            if c_state == PRESENT and crec is not None and crec.event_us == trec.event_us:
                out[i, 2] = float(np.dot(crec.values, trec.values))
            elif c_state == PRESENT:
                status[AFFINITY] = "missing"  # two refreshes: their coordinates do not compare
        return out, statuses
