"""Customer and terminal embeddings: a truncated SVD of the customer x terminal matrix.

Why an SVD: who pays where is a sparse bipartite graph; its leading singular vectors place
cards and terminals that share customers close together (in the handbook's simulator that is
geography: a card pays at terminals within its radius), so a card paying at a terminal far
from its own (card testing at "terminals the card never uses") has a low affinity, and
terminals near compromised ones can be found by nearest-neighbour search (`mlsd.features.ann`).

An embedding view is a batch feature view like any other (`kind="embedding"`, versioned by
the content hash of its definition: entity, dimensions, history window), built by the batch
pipeline into an offline table and materialized into the online store unchanged. Its table
holds one refresh per midnight UTC of the dataset: the SVD of the transactions of the
`history` days before it, every entity seen in them, `event_timestamp` = the refresh time.
The TTL is one refresh interval less a microsecond, so a point-in-time read never mixes two
refreshes (the coordinates of two SVDs are not comparable: an entity missing from the
newest refresh is missing, not served its older, differently rotated, vector).

The customer and terminal views of one (dimensions, history) share their SVD, computed once
per build (`refreshes` is memoised on its inputs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Final

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd

from mlsd.data import schema
from mlsd.errors import IntegrityError, ValidationError
from mlsd.features.definitions import Entity, FeatureView
from mlsd.features.handbook import CUSTOMER, TERMINAL

KIND: Final = "embedding"
DAY_US: Final = 86_400_000_000
#: The randomized SVD's seed: fixed, so a build is reproducible bit for bit.
SEED: Final = 0
REFRESH: Final = timedelta(days=1)

FloatMatrix = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def embedding_names(entity: Entity, dim: int) -> tuple[str, ...]:
    """`CUSTOMER_ID_EMB_0` ... : one feature per dimension."""
    return tuple(f"{entity.join_key}_EMB_{i}" for i in range(dim))


def embedding_view(entity: Entity, dim: int = 16, history_days: int = 30) -> FeatureView:
    """The embedding view of `entity` (customer or terminal) with `dim` dimensions."""
    if entity.join_key not in (schema.CUSTOMER_ID, schema.TERMINAL_ID):
        raise ValidationError(f"no embedding for entity {entity.name!r}", field="entity")
    if not 1 <= dim <= 256:
        raise ValidationError("embedding dimensions must be in 1..256", field="dim")
    return FeatureView(
        name=f"{entity.name}_embedding",
        entity=entity,
        kind=KIND,
        features=embedding_names(entity, dim),
        ttl=REFRESH - timedelta(microseconds=1),
        windows_days=(history_days,),
        description=f"truncated SVD ({dim} dims) of the customer x terminal log-count matrix "
        f"over the {history_days} days before each midnight UTC; unit length",
    )


def embedding_views(dim: int = 16, history_days: int = 30) -> tuple[FeatureView, FeatureView]:
    """The customer and terminal embedding views (one SVD)."""
    return embedding_view(CUSTOMER, dim, history_days), embedding_view(TERMINAL, dim, history_days)


@dataclass(frozen=True)
class Embeddings:
    """One refresh: the ids and unit vectors of every card and terminal seen in its history."""

    refresh_us: int
    customers: IntArray
    customer_vectors: FloatMatrix
    terminals: IntArray
    terminal_vectors: FloatMatrix

    def content_hash(self) -> str:
        """sha256 of the ids and vectors: what an ANN index is built for (16 hex digits)."""
        digest = hashlib.sha256()
        for part in (self.customers, self.customer_vectors, self.terminals, self.terminal_vectors):
            digest.update(np.ascontiguousarray(part).tobytes())
        return digest.hexdigest()[:16]


def compute_embeddings(
    customers: IntArray,
    terminals: IntArray,
    times_us: IntArray,
    refresh_us: int,
    history_days: int,
    dim: int,
    seed: int = SEED,
) -> Embeddings:
    """The SVD of the payments in [refresh - history, refresh): log(1 + count) per pair."""
    from scipy import sparse
    from sklearn.decomposition import TruncatedSVD

    keep = (times_us >= refresh_us - history_days * DAY_US) & (times_us < refresh_us)
    cust, c_idx = np.unique(customers[keep], return_inverse=True)
    term, t_idx = np.unique(terminals[keep], return_inverse=True)
    if min(len(cust), len(term)) <= dim:
        raise ValidationError(
            f"{len(cust)} cards and {len(term)} terminals in the history before the refresh: "
            f"too few for {dim} dimensions",
            field="dim",
        )
    counts = sparse.coo_matrix(
        (np.ones(len(c_idx), dtype=np.float64), (c_idx, t_idx)), shape=(len(cust), len(term))
    ).tocsr()  # duplicates summed: the payment count of each pair
    counts.data = np.log1p(counts.data)
    svd = TruncatedSVD(n_components=dim, algorithm="randomized", n_iter=5, random_state=seed)
    left = svd.fit_transform(counts)  # U * S
    scale = np.sqrt(np.maximum(svd.singular_values_, 1e-12))
    cvec = left / scale  # U * S^(1/2)
    tvec = svd.components_.T * scale  # V * S^(1/2)
    return Embeddings(
        int(refresh_us), cust.astype(np.int64), _unit(cvec), term.astype(np.int64), _unit(tvec)
    )


def _unit(matrix: npt.NDArray[np.float64]) -> FloatMatrix:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def midnights(first_us: int, last_us: int, interval_us: int = DAY_US) -> list[int]:
    """Refresh times: every `interval` from the first midnight after `first_us` to `last_us`."""
    start = (first_us // DAY_US + 1) * DAY_US
    return list(range(start, last_us + 1, interval_us))


def read_payments(con: duckdb.DuckDBPyConnection, source: str) -> tuple[IntArray, ...]:
    """(customers, terminals, times µs) of every payment of `source`."""
    frame = con.execute(
        f"SELECT {schema.CUSTOMER_ID} AS c, {schema.TERMINAL_ID} AS t, "
        f"epoch_us({schema.TX_DATETIME}) AS us FROM ({source})"
    ).df()
    return tuple(frame[col].to_numpy(dtype=np.int64) for col in ("c", "t", "us"))


@lru_cache(maxsize=4)
def refreshes(source: str, history_days: int, dim: int, build_us: int) -> tuple[Embeddings, ...]:
    """Every daily refresh of a source, memoised by build (`build_us`, the build's created
    time): the customer and terminal views of one build share it, a new build recomputes."""
    from mlsd.features.pipeline import connect

    con = connect()
    try:
        customers, terminals, times = read_payments(con, source)
    finally:
        con.close()
    if len(times) == 0:
        return ()
    out = []
    for refresh in midnights(int(times.min()), int(times.max())):
        try:
            out.append(compute_embeddings(customers, terminals, times, refresh, history_days, dim))
        except ValidationError:
            continue  # the first days hold too few payments for an SVD: no refresh yet
    return tuple(out)


def offline_frame(view: FeatureView, found: Sequence[Embeddings], created_us: int) -> pd.DataFrame:
    """The offline table of an embedding view: one row per (entity, refresh)."""
    if view.entity is None:
        raise ValidationError(f"view {view.name!r} needs an entity", field="entity")
    key = view.entity.join_key
    is_customer = key == schema.CUSTOMER_ID
    ids = [e.customers if is_customer else e.terminals for e in found]
    vectors = [e.customer_vectors if is_customer else e.terminal_vectors for e in found]
    dim = len(view.features)
    if any(v.shape[1] != dim for v in vectors):
        raise IntegrityError(f"view {view.name!r}: embeddings of another dimension", field="view")
    events = np.concatenate(
        [np.full(len(i), e.refresh_us) for i, e in zip(ids, found, strict=True)]
    )
    frame = pd.DataFrame({key: np.concatenate(ids) if ids else np.zeros(0, np.int64)})
    frame["event_timestamp"] = pd.to_datetime(events, unit="us", utc=True)
    frame["created_timestamp"] = pd.to_datetime(created_us, unit="us", utc=True)
    stacked = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
    for i, name in enumerate(view.features):
        frame[name] = stacked[:, i].astype(np.float64)
    return frame


def write_embedding_offline(view: FeatureView, source: str, created_us: int, out: Path) -> int:
    """Compute an embedding view's refreshes and write its offline Parquet table; row count."""
    history = view.windows_days[0] if view.windows_days else 30
    found = refreshes(source, history, len(view.features), created_us)
    frame = offline_frame(view, found, created_us)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(out)
    return len(frame)
