"""Embeddings as a feature view (built, versioned, materialized, served), the ANN index over
them, and their bad inputs: a new terminal, an index of another refresh, a damaged file."""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.data import schema
from mlsd.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from mlsd.features import ann, embeddings
from mlsd.features.ann import TerminalIndex, exact_search, recall_at_k
from mlsd.features.embeddings import compute_embeddings, embedding_view, embedding_views
from mlsd.features.handbook import CUSTOMER, HANDBOOK_VIEWS, TERMINAL
from mlsd.features.online import MISSING, PRESENT
from mlsd.features.similarity import (
    SIMILARITY_FEATURES,
    SimilarityFeatures,
    compromised_by_day,
    embedding_version,
)
from mlsd.features.store import FeatureStore
from mlsd.features.testing import synthetic_transactions, write_transactions
from mlsd.settings import Settings

DIM = 4


@pytest.fixture
def built(tmp_path: Path) -> Iterator[tuple[FeatureStore, pd.DataFrame]]:
    """A store with the handbook and embedding views, built over 20 synthetic days and
    materialized."""
    frame = synthetic_transactions(n_customers=60, n_terminals=40, days=20, seed=3)
    write_transactions(frame, tmp_path / "ds")
    store = FeatureStore.open(Settings(home=tmp_path / "home"))
    store.apply([*HANDBOOK_VIEWS, *embedding_views(DIM, history_days=7)])
    store.build(tmp_path / "ds")
    store.materialize()
    yield store, frame
    store.close()


def test_doctests() -> None:
    result = doctest.testmod(ann)
    assert result.attempted > 0
    assert result.failed == 0


def test_the_view_is_versioned_by_its_definition() -> None:
    a, b = embedding_view(TERMINAL, 8, 30), embedding_view(TERMINAL, 8, 30)
    assert a.version == b.version
    assert embedding_view(TERMINAL, 16, 30).version != a.version
    assert embedding_view(TERMINAL, 8, 14).version != a.version
    assert a.features[0] == "TERMINAL_ID_EMB_0"
    with pytest.raises(ValidationError, match="dimensions"):
        embedding_view(CUSTOMER, 0)


def test_the_svd_is_reproducible_and_unit_length() -> None:
    frame = synthetic_transactions(n_customers=50, n_terminals=30, days=10, seed=1)
    args = (
        frame[schema.CUSTOMER_ID].to_numpy(np.int64),
        frame[schema.TERMINAL_ID].to_numpy(np.int64),
        frame[schema.TX_DATETIME].dt.as_unit("us").astype("int64").to_numpy(),
    )
    end = int(args[2].max()) + 1
    one, two = compute_embeddings(*args, end, 10, 6), compute_embeddings(*args, end, 10, 6)
    assert one.content_hash() == two.content_hash()
    assert np.allclose(np.linalg.norm(one.terminal_vectors, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValidationError, match="too few"):
        compute_embeddings(*args, int(args[2].min()) + 1, 10, 6)  # nothing before the refresh


def test_embeddings_are_materialized_and_served_like_any_feature(
    built: tuple[FeatureStore, pd.DataFrame],
) -> None:
    store, frame = built
    names = [*embedding_view(CUSTOMER, DIM, 7).features, *embedding_view(TERMINAL, DIM, 7).features]
    when = frame[schema.TX_DATETIME].max()
    got = store.online_vectors(
        [{schema.CUSTOMER_ID: 1, schema.TERMINAL_ID: 2, schema.TX_DATETIME: when}], names
    )
    assert set(got.status[0].values()) == {PRESENT}
    assert np.isclose(np.linalg.norm(got.values[0, :DIM]), 1.0, atol=1e-4)
    unknown = store.online_vectors(
        [{schema.CUSTOMER_ID: 1, schema.TERMINAL_ID: 999, schema.TX_DATETIME: when}], names
    )
    assert {unknown.status[0][n] for n in names[DIM:]} == {MISSING}


def _served(store: FeatureStore, when_us: int) -> tuple[SimilarityFeatures, int]:
    cview, tview = embedding_view(CUSTOMER, DIM, 7), embedding_view(TERMINAL, DIM, 7)
    found = embeddings.refreshes(
        embeddings_source(store), 7, DIM, 0
    )  # the same SVDs the build wrote
    latest = max((e for e in found if e.refresh_us <= when_us), key=lambda e: e.refresh_us)
    index = TerminalIndex.build(
        latest.terminals, latest.terminal_vectors, embedding_version(tview, latest.refresh_us)
    )
    compromised = frozenset(int(t) for t in latest.terminals[:5])
    return SimilarityFeatures(
        store.online, cview, tview, index, compromised, k=5
    ), latest.refresh_us


def embeddings_source(store: FeatureStore) -> str:
    from mlsd.features.pipeline import source_sql, transactions_glob

    return source_sql(transactions_glob(store.settings.home.parent / "ds"))


def test_a_new_terminal_gets_status_missing_never_a_neighbour(
    built: tuple[FeatureStore, pd.DataFrame],
) -> None:
    store, frame = built
    now = int(frame[schema.TX_DATETIME].max().value // 1000)
    features, _ = _served(store, now)
    values, statuses = features.values([(1, 2, now), (1, 999, now)])
    assert set(statuses[0].values()) == {PRESENT}
    assert 0.0 <= values[0, 0] <= 1.0 + 1e-6
    assert statuses[1] == dict.fromkeys(SIMILARITY_FEATURES, MISSING)
    assert values[1].tolist() == [0.0, 0.0, 0.0]  # MISSING_VALUE, as training fills it


def test_an_index_of_another_refresh_is_refused(built: tuple[FeatureStore, pd.DataFrame]) -> None:
    store, frame = built
    now = int(frame[schema.TX_DATETIME].max().value // 1000)
    features, refresh = _served(store, now)
    stale = TerminalIndex.build(
        features.index.ids, np.eye(len(features.index.ids), DIM, dtype=np.float32) + 0.1,
        embedding_version(features.terminal_view, refresh - 86_400_000_000),
    )  # fmt: skip
    features.index = stale
    with pytest.raises(ConflictError, match="rebuild the index") as info:
        features.values([(1, 2, now)])
    assert info.value.field == "embedding"


def test_a_damaged_index_file_is_an_integrity_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(200, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = TerminalIndex.build(np.arange(200), vectors, "terminal_embedding:abc@1")
    folder = index.save(tmp_path / "idx")
    assert TerminalIndex.load(folder, "terminal_embedding:abc@1").manifest.count == 200
    with pytest.raises(ConflictError, match="abc@1"):
        TerminalIndex.load(folder, "terminal_embedding:abc@2")
    blob = bytearray((folder / ann.INDEX_FILE).read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (folder / ann.INDEX_FILE).write_bytes(bytes(blob))
    with pytest.raises(IntegrityError, match="sha256"):
        TerminalIndex.load(folder)
    (folder / ann.MANIFEST_FILE).write_text("{not json")
    with pytest.raises(IntegrityError, match="manifest"):
        TerminalIndex.load(folder)
    with pytest.raises(NotFoundError):
        TerminalIndex.load(tmp_path / "nowhere")


def test_hnsw_recall_at_10_against_exact_search() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 16))
    vectors = (centres[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 16))).astype(
        np.float32
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(3000, dtype=np.int64) * 7
    index = TerminalIndex.build(ids, vectors, "v")
    queries = vectors[:200]
    approx, _ = index.search(queries, 10)
    exact, _ = exact_search(ids, vectors, queries, 10)
    assert recall_at_k(approx, exact) >= 0.9
    with pytest.raises(ValidationError, match="queries"):
        index.search(queries[:, :3], 10)


def test_compromised_by_day_knows_a_fraud_only_after_the_label_delay() -> None:
    day = 86_400_000_000
    flags = compromised_by_day(
        np.array([3]), np.array([2 * day + 5]), np.array([1]), 0, 12, window_days=3, delay_days=2
    )
    assert flags[3].nonzero()[0].tolist() == [5, 6, 7]  # known from day 2 + 2 + 1, for 3 days


def test_the_parity_checks_cover_the_embedding_views(
    built: tuple[FeatureStore, pd.DataFrame],
) -> None:
    store, _ = built
    live = store.live_parity(sample=30)
    assert live.ok, (live.problems, live.examples[:3])
    assert live.compared > 0
    replayed = store.parity(checkpoints=2, sample=20)
    assert replayed.ok, (replayed.problems, replayed.examples[:3])
