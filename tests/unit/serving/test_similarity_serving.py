"""A model trained with the embedding similarity features is served them on /v1/score: the
same values `SimilarityFeatures` computes, status `missing` for a new terminal, a 409 naming
the fix when the ANN index belongs to another embedding refresh."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlsd.data import schema
from mlsd.features import embeddings
from mlsd.features.ann import TerminalIndex
from mlsd.features.embeddings import embedding_view, embedding_views
from mlsd.features.handbook import CUSTOMER, HANDBOOK_FEATURES, HANDBOOK_VIEWS, TERMINAL
from mlsd.features.pipeline import source_sql, transactions_glob
from mlsd.features.similarity import SIMILARITY_FEATURES, SimilarityFeatures, embedding_version
from mlsd.features.store import FeatureStore
from mlsd.features.testing import synthetic_transactions, write_transactions
from mlsd.registry import DecisionThreshold, Lineage, Registry, Signature
from mlsd.serving.app import create_app
from mlsd.settings import Settings
from mlsd.training.gbm import LightGBMModel
from tests.unit.inference.layers import Seen
from tests.unit.serving.conftest import make_service

DIM = 4
NAMES = [*HANDBOOK_FEATURES, *SIMILARITY_FEATURES]


@pytest.fixture
def world(
    settings: Settings, tmp_path: Path
) -> Iterator[tuple[FeatureStore, SimilarityFeatures, int]]:
    """Handbook and embedding views built over synthetic days, materialized; the similarity
    features of the last refresh; the time of the last payment (µs)."""
    frame = synthetic_transactions(n_customers=60, n_terminals=40, days=20, seed=3)
    write_transactions(frame, tmp_path / "ds")
    store = FeatureStore.open(settings)
    store.apply([*HANDBOOK_VIEWS, *embedding_views(DIM, history_days=7)])
    store.build(tmp_path / "ds")
    store.materialize()
    now = int(frame[schema.TX_DATETIME].max().value // 1000)
    found = embeddings.refreshes(source_sql(transactions_glob(tmp_path / "ds")), 7, DIM, 0)
    last = max((e for e in found if e.refresh_us <= now), key=lambda e: e.refresh_us)
    tview = embedding_view(TERMINAL, DIM, 7)
    index = TerminalIndex.build(
        last.terminals, last.terminal_vectors, embedding_version(tview, last.refresh_us)
    )
    compromised = frozenset(int(t) for t in last.terminals[::4])
    similarity = SimilarityFeatures(
        store.online, embedding_view(CUSTOMER, DIM, 7), tview, index, compromised, k=5
    )
    yield store, similarity, now
    store.close()


@pytest.fixture
def registry(settings: Settings, world: tuple[FeatureStore, Any, int]) -> Iterator[Registry]:
    """fraud/1, trained (on random rows) with the handbook and the similarity features."""
    store = world[0]
    rng = np.random.default_rng(0)
    X = rng.random((400, len(NAMES))).astype(np.float32)
    y = (X[:, -3] > 0.6).astype(np.int32)  # leans on TERMINAL_EMB_SIM_COMPROMISED
    model = LightGBMModel({"n_estimators": 10, "num_leaves": 7}, seed=0)
    model.fit(X, y)
    reg = Registry.open(settings)
    reg.register(
        "fraud", model.artifacts(NAMES), flavor="lightgbm",
        signature=Signature(NAMES, ["float32"] * len(NAMES)),
        lineage=Lineage(feature_views=store.view_versions()), params={}, metrics={},
        threshold=DecisionThreshold(value=0.5, policy="manual"),
    )  # fmt: skip
    reg.set_alias("fraud", "champion", 1, reason="test", actor="test")
    yield reg
    reg.close()


def _body(customer: int, terminal: int, when_us: int) -> dict[str, Any]:
    when = pd.Timestamp(when_us * 1000, tz="UTC").isoformat().replace("+00:00", "Z")
    return {"transaction_id": 1, "customer_id": customer, "terminal_id": terminal,
            "amount": 12.5, "timestamp": when}  # fmt: skip


def test_the_similarity_features_are_served_to_a_model_trained_with_them(
    settings: Settings, registry: Registry, world: tuple[FeatureStore, SimilarityFeatures, int],
    make_client: Any,
) -> None:  # fmt: skip
    store, similarity, now = world
    service = make_service(settings, registry, store, provided_features=(similarity,))
    seen = Seen()
    service.pipeline.add_observer(seen)
    client = make_client(create_app(settings, service=service))
    known = client.post("/v1/score", json=_body(1, 2, now))
    assert known.status_code == 200, known.text
    status = known.json()["results"][0]["features"]
    assert {status[f] for f in SIMILARITY_FEATURES} == {"present"}
    assert status["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == "present"
    expected, _ = similarity.values([(1, 2, now)])
    served = seen.batches[-1].values[0, -3:]
    assert np.allclose(served, expected[0], atol=1e-6)
    new = client.post("/v1/score", json=_body(1, 999, now))
    assert new.status_code == 200, new.text
    status = new.json()["results"][0]["features"]
    assert {status[f] for f in SIMILARITY_FEATURES} == {"missing"}
    assert seen.batches[-1].values[0, -3:].tolist() == [0.0, 0.0, 0.0]
    service.close()


def test_an_index_of_another_refresh_is_a_409_never_a_wrong_neighbour(
    settings: Settings, registry: Registry, world: tuple[FeatureStore, SimilarityFeatures, int],
    make_client: Any,
) -> None:  # fmt: skip
    store, similarity, now = world
    similarity.index = TerminalIndex.build(
        similarity.index.ids, np.eye(len(similarity.index.ids), DIM, dtype=np.float32) + 0.1,
        embedding_version(similarity.terminal_view, 0),
    )  # fmt: skip
    service = make_service(settings, registry, store, provided_features=(similarity,))
    client = make_client(create_app(settings, service=service))
    response = client.post("/v1/score", json=_body(1, 2, now))
    assert response.status_code == 409, response.text
    assert "rebuild the index" in response.text
    service.close()


def test_with_the_online_store_down_the_similarity_features_are_unavailable(
    settings: Settings, registry: Registry, world: tuple[FeatureStore, SimilarityFeatures, int],
    make_client: Any,
) -> None:  # fmt: skip
    from mlsd.errors import UnavailableError

    store, similarity, now = world

    class Down:
        def read(self, lookups: Any) -> Any:
            raise UnavailableError("online store down")

    similarity.online = Down()  # type: ignore[assignment]
    service = make_service(settings, registry, store, provided_features=(similarity,))
    client = make_client(create_app(settings, service=service))
    response = client.post("/v1/score", json=_body(1, 2, now))
    assert response.status_code == 200, response.text
    status = response.json()["results"][0]["features"]
    assert {status[f] for f in SIMILARITY_FEATURES} == {"unavailable"}
    service.close()
