"""The one scoring pipeline: every entry point passes the same routing layers and observers."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from mlsd.inference.endpoint import VersionEndpoint
from mlsd.inference.routing import Variant
from mlsd.inference.spec import LoadedModel, ServingSpec
from mlsd.serving.app import create_app
from mlsd.serving.service import Service
from mlsd.serving.testing import FEATURES, sample_transaction
from tests.unit.inference.layers import Answering, Recording, Seen, Shadowing
from tests.unit.serving.conftest import wait_for_job

ROW = np.linspace(0.0, 1.4, len(FEATURES), dtype=np.float32).round(3)


def _send(entry: str, client: Any) -> None:
    """One scoring call through `entry` of the same transaction (or tensor row)."""
    if entry == "score":
        response = client.post("/v1/score", json=sample_transaction())
        assert response.status_code == 200, response.text
    elif entry == "v2":
        body = {"inputs": [{"name": "input", "shape": [1, len(FEATURES)], "datatype": "FP32"}]}
        body["inputs"][0]["data"] = ROW.tolist()
        response = client.post("/v2/models/fraud/infer", json=body)
        assert response.status_code == 200, response.text
    else:
        response = client.post("/v1/jobs", json={"rows": [sample_transaction()]})
        assert response.status_code == 202, response.text
        assert wait_for_job(client, response.json()["job_id"])["state"] == "done"


@pytest.mark.parametrize("entry", ["score", "v2", "job"])
def test_every_entry_point_passes_the_layers_and_observers_cache_hits_included(
    entry: str, settings: Any, service: Service, make_client: Any
) -> None:
    layer, seen = Recording(), Seen()
    service.pipeline.install(layer)
    service.pipeline.add_observer(seen)
    client = make_client(create_app(settings, service=service))
    _send(entry, client)
    _send(entry, client)  # the same row again: a cache hit
    assert layer.entries == [entry, entry]
    assert [b.request.entry for b in seen.batches] == [entry, entry]
    assert [b.cached.tolist() for b in seen.batches] == [[False], [True]]
    assert [b.variant for b in seen.batches] == ["champion", "champion"]
    assert seen.batches[0].scores.tolist() == seen.batches[1].scores.tolist()


def test_a_shadow_is_scored_and_observed_but_never_answers(
    settings: Any, service: Service, make_client: Any
) -> None:
    service.host.load("fraud/2")
    challenger = Variant("challenger", VersionEndpoint(service.host.get("fraud", version=2)))
    service.pipeline.install(Shadowing(challenger))
    seen = Seen()
    service.pipeline.add_observer(seen)
    client = make_client(create_app(settings, service=service))
    result = client.post("/v1/score", json=sample_transaction()).json()["results"][0]
    assert (result["variant"], result["version"]) == ("champion", 1)
    asyncio.run(service.pipeline.drain())
    for _ in range(200):  # the shadow runs on the server's loop after the answer went out
        if len(seen.batches) == 2:
            break
        client.get("/v2/health/live")  # lets the server's loop run
    roles = {b.role: b for b in seen.batches}
    assert set(roles) == {"primary", "shadow"}
    assert (roles["shadow"].variant, roles["shadow"].model.version) == ("challenger", 2)
    np.testing.assert_array_equal(roles["shadow"].values, roles["primary"].values)
    metrics = client.get("/metrics").text
    assert 'role="shadow",status="ok",variant="challenger",version="2"} 1.0' in metrics


class FixedRuntime:
    """Answers one score for every row; remembers the width it was given."""

    name = "fixed"

    def __init__(self, n_features: int, score: float) -> None:
        self.n_features = n_features
        self.score = score
        self.widths: list[int] = []

    def predict(self, values: np.ndarray) -> np.ndarray:
        self.widths.append(values.shape[1])
        return np.full(len(values), self.score)


def _variant(names: tuple[str, ...], score: float, version: int = 9) -> Variant:
    spec = ServingSpec("fixed", names, threshold=0.5)
    model = LoadedModel("fraud", version, spec, FixedRuntime(len(names), score))
    return Variant("challenger", VersionEndpoint(model))


def test_a_challenger_with_other_features_gets_its_own_rows(
    settings: Any, service: Service, make_client: Any
) -> None:
    names = ("TX_AMOUNT", "TX_DURING_NIGHT", "CUSTOMER_ID_NB_TX_1DAY_WINDOW")
    variant = _variant(names, 0.75)
    service.pipeline.install(Answering(variant))
    client = make_client(create_app(settings, service=service))
    result = client.post("/v1/score", json=sample_transaction(amount=12.5)).json()["results"][0]
    assert (result["variant"], result["version"], result["decision"]) == ("challenger", 9, "fraud")
    assert list(result["features"]) == list(names)
    assert variant.endpoint.current().runtime.widths == [3]  # type: ignore[attr-defined]


@pytest.mark.parametrize("score", [float("nan"), float("inf"), -0.5, 1.5])
def test_no_decision_on_a_score_that_is_not_a_probability(
    score: float, settings: Any, store: Any, build_service: Any, make_client: Any
) -> None:
    from mlsd.predlog import make_prediction_log

    log = make_prediction_log(settings)
    service = build_service(store, prediction_log=log, cache=False)
    service.pipeline.install(Answering(_variant(tuple(FEATURES), score)))
    client = make_client(create_app(settings, service=service))
    response = client.post("/v1/score", json=sample_transaction())
    assert response.status_code == 500
    assert "not a probability" in response.json()["message"]
    log.flush()
    assert len(log.read()) == 0, "nothing decided, nothing logged"


def test_layers_are_installed_by_name_once(service: Service) -> None:
    service.pipeline.install(Recording())
    with pytest.raises(ValueError, match="already installed"):
        service.pipeline.install(Recording())
    service.pipeline.uninstall("recording")
    assert service.pipeline.layers == ()
