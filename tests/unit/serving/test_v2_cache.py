"""V2 infer through the prediction cache: keyed by model version and row hash, counted."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from mlsd.inference.cache import hash_rows
from mlsd.inference.cached import predict_cached
from mlsd.registry import Registry
from mlsd.serving.app import create_app
from mlsd.serving.service import Service
from mlsd.serving.testing import FEATURES

K = len(FEATURES)


def _rows(n: int, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, K)).round(3).astype(np.float32)


def _infer(client: Any, rows: np.ndarray, version: int | None = None) -> dict[str, Any]:
    """The 200 answer of V2 infer on `rows` (the champion, or a pinned version)."""
    path = "/v2/models/fraud" + ("" if version is None else f"/versions/{version}") + "/infer"
    data = rows.reshape(-1).tolist()
    tensor = {"name": "input", "shape": list(rows.shape), "datatype": "FP32", "data": data}
    response = client.post(path, json={"inputs": [tensor]})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _fraud(body: dict[str, Any]) -> np.ndarray:
    (tensor,) = body["outputs"]
    return np.array(tensor["data"]).reshape(tensor["shape"])[:, 1]


def _counts(service: Service) -> tuple[float, float]:
    """(cache hits, cache misses) of model `fraud` in the service's metrics."""
    get = service.metrics.registry.get_sample_value
    hits = get("mlsd_cache_hits_total", {"model": "fraud"})
    misses = get("mlsd_cache_misses_total", {"model": "fraud"})
    return (hits or 0.0, misses or 0.0)


def _move_champion(service: Service, registry: Registry, version: int) -> None:
    registry.set_alias("fraud", "champion", version, reason="test", actor="test")
    assert service.host.refresh() == 1


def test_same_tensor_twice_is_a_hit_the_second_time(client: Any, service: Service) -> None:
    rows = _rows(1)
    first = _infer(client, rows)
    assert first["parameters"] == {"cached_rows": 0}
    assert _counts(service) == (0.0, 1.0)
    second = _infer(client, rows)
    assert second["parameters"] == {"cached_rows": 1}
    assert _counts(service) == (1.0, 1.0)
    assert second["outputs"] == first["outputs"]
    assert (second["model_name"], second["model_version"]) == ("fraud", "1")
    expected = service.host.get("fraud", version=1).predict(rows)
    np.testing.assert_allclose(_fraud(second), expected, rtol=1e-6)
    assert set(second) == {"model_name", "model_version", "id", "parameters", "outputs"}


def test_only_the_rows_not_seen_are_scored(client: Any, service: Service) -> None:
    rows = _rows(3)
    _infer(client, rows)
    mixed = np.stack([rows[0], _rows(1, seed=99)[0], rows[2]])
    body = _infer(client, mixed)
    assert body["parameters"] == {"cached_rows": 2}
    assert _counts(service) == (2.0, 4.0)
    expected = service.host.get("fraud", version=1).predict(mixed)
    np.testing.assert_allclose(_fraud(body), expected, rtol=1e-6)


def test_after_the_alias_moves_the_old_version_s_scores_are_not_reused(
    client: Any, service: Service, registry: Registry
) -> None:
    rows = _rows(2)
    before = _infer(client, rows)
    v1 = service.host.get("fraud", version=1).predict(rows)
    _move_champion(service, registry, 2)
    after = _infer(client, rows)
    assert (after["model_version"], after["parameters"]) == ("2", {"cached_rows": 0})
    v2 = service.host.get("fraud", version=2).predict(rows)
    assert not np.allclose(v1, v2), "the two test versions must score differently"
    np.testing.assert_allclose(_fraud(before), v1, rtol=1e-6)
    np.testing.assert_allclose(_fraud(after), v2, rtol=1e-6)
    assert service.cache is not None
    stored = service.cache.get_many("fraud/2", hash_rows(rows))
    np.testing.assert_allclose(np.array(stored, dtype=np.float64), v2, rtol=1e-6)
    assert _infer(client, rows)["parameters"] == {"cached_rows": 2}


def test_a_pinned_version_uses_its_own_key(client: Any, service: Service) -> None:
    service.load("fraud/2")
    rows = _rows(1)
    pinned2 = _infer(client, rows, version=2)
    assert (pinned2["model_version"], pinned2["parameters"]) == ("2", {"cached_rows": 0})
    pinned1 = _infer(client, rows, version=1)  # same row, other version: not reused
    assert (pinned1["model_version"], pinned1["parameters"]) == ("1", {"cached_rows": 0})
    champion = _infer(client, rows)  # champion is version 1: the same key as /versions/1
    assert (champion["model_version"], champion["parameters"]) == ("1", {"cached_rows": 1})
    again2 = _infer(client, rows, version=2)
    assert again2["parameters"] == {"cached_rows": 1}
    np.testing.assert_allclose(
        _fraud(again2), service.host.get("fraud", version=2).predict(rows), rtol=1e-6
    )
    np.testing.assert_allclose(
        _fraud(champion), service.host.get("fraud", version=1).predict(rows), rtol=1e-6
    )
    assert service.cache is not None
    (h,) = hash_rows(rows)
    got = service.cache.get_many("fraud/1", [h]) + service.cache.get_many("fraud/2", [h])
    assert None not in got
    assert got[0] != got[1]
    assert _counts(service) == (2.0, 2.0)


def test_the_alias_moving_between_lookup_and_scoring_rescoring_every_row(
    service: Service, registry: Registry
) -> None:
    """Rows looked up under version 1, scored by version 2: all rows from version 2."""
    rows = _rows(2)
    endpoint = service.endpoint("fraud")
    stale = endpoint.current()
    _move_champion(service, registry, 2)
    assert service.cache is not None
    h = hash_rows(rows)
    service.cache.put_many("fraud/1", h[:1], [0.123])  # row 0 a hit under the stale version
    prediction, cached = asyncio.run(
        predict_cached(endpoint, service.cache, service.metrics, rows, stale)
    )
    assert prediction.model.version == 2
    assert cached.tolist() == [False, False]
    v2 = service.host.get("fraud", version=2).predict(rows)
    np.testing.assert_allclose(prediction.scores, v2, rtol=1e-6)
    assert service.cache.get_many("fraud/1", h) == [0.123, None], "nothing filed under v1"
    assert service.cache.get_many("fraud/2", h) == [None, None], "nor under v2"


def test_without_a_cache_every_row_is_scored(
    settings: Any, store: Any, build_service: Any, make_client: Any
) -> None:
    service = build_service(store, cache=False)
    client = make_client(create_app(settings, service=service))
    rows = _rows(2)
    first, second = _infer(client, rows), _infer(client, rows)
    assert (first["parameters"], second["parameters"]) == (None, None)
    assert first["outputs"] == second["outputs"]
    np.testing.assert_allclose(
        _fraud(second), service.host.get("fraud", version=1).predict(rows), rtol=1e-6
    )
    assert _counts(service) == (0.0, 0.0)
