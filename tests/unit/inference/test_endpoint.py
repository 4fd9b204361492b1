"""Endpoints compose: a layer implementing the same protocol slots in without touching handlers."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlsd.inference.endpoint import Endpoint, Prediction
from mlsd.inference.routing import Variant
from mlsd.inference.spec import LoadedModel
from mlsd.serving.app import create_app
from mlsd.serving.testing import sample_transaction
from tests.unit.inference.layers import Answering


class Tagged:
    """A stand-in for a rollout layer: forwards to an inner endpoint, names the variant."""

    def __init__(self, inner: Endpoint, variant: str) -> None:
        self.inner = inner
        self.variant = variant
        self.calls = 0

    @property
    def name(self) -> str:
        return self.inner.name

    def current(self) -> LoadedModel:
        return self.inner.current()

    async def predict(self, values: np.ndarray) -> Prediction:
        self.calls += 1
        found = await self.inner.predict(values)
        return Prediction(found.scores, found.model, self.variant)


def test_a_wrapping_layer_serves_and_is_logged(
    settings: Any, store: Any, build_service: Any, make_client: Any
) -> None:
    from mlsd.predlog import make_prediction_log

    log = make_prediction_log(settings)
    svc = build_service(store, prediction_log=log, cache=False)
    layer = Tagged(svc.endpoints["fraud"], "blue")
    svc.pipeline.install(Answering(Variant("blue", layer)))
    client = make_client(create_app(settings, service=svc))
    response = client.post("/v1/score", json=sample_transaction())
    assert response.status_code == 200
    assert response.json()["results"][0]["variant"] == "blue"
    assert layer.calls == 1
    log.flush()
    assert list(log.read()["variant"]) == ["blue"]
