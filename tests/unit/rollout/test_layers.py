"""Rollout layers on the real pipeline: sticky splits, shadows, blue-green, specs refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from mlsd.data.transaction import Transaction
from mlsd.errors import ValidationError
from mlsd.inference.endpoint import VersionEndpoint
from mlsd.inference.observers import ScoringRequest
from mlsd.inference.routing import Route, Variant
from mlsd.rollout import RolloutSpec, ShadowLayer, SplitLayer, bucket, layer_for
from mlsd.serving.service import Service
from tests.unit.inference.layers import Seen

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _request(customer: int, rid: str = "r") -> ScoringRequest:
    return ScoringRequest(rid, "score", [Transaction(customer, customer, 7, 10.0, T0)])


def _variants(service: Service) -> tuple[Route, Variant]:
    service.host.load("fraud/2")
    base = service.pipeline.route(ScoringRequest("x", "score", ()))
    return base, Variant("v2", VersionEndpoint(service.host.get("fraud", version=2)))


def test_a_split_is_sticky_and_near_its_share(service: Service) -> None:
    base, challenger = _variants(service)
    layer = SplitLayer("r1", challenger, 25.0)
    arms = [layer.route(_request(c), base).primary.name for c in range(4000)]
    share = arms.count("r1:challenger") / len(arms)
    assert 0.22 < share < 0.28
    again = [layer.route(_request(c, rid="other"), base).primary.name for c in range(4000)]
    assert arms == again, "the same customer lands in the same arm, whatever the request"


def test_raising_a_canary_share_never_moves_a_customer_back(service: Service) -> None:
    base, challenger = _variants(service)
    layer = SplitLayer("c1", challenger, 1.0)
    exposed: set[int] = set()
    for step in (1.0, 5.0, 25.0, 50.0, 100.0):
        layer.set_share(step)
        now = {
            c for c in range(2000) if layer.route(_request(c), base).primary.name == "c1:challenger"
        }
        assert exposed <= now
        exposed = now
    assert len(exposed) == 2000
    layer.set_share(0.0)  # rollback
    assert all(layer.route(_request(c), base).primary.name == "c1:champion" for c in range(2000))


def test_buckets_are_the_same_in_another_process() -> None:
    import subprocess
    import sys

    code = "from mlsd.rollout import bucket; print([bucket('r1', c) for c in range(5)])"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str([bucket("r1", c) for c in range(5)])


def test_a_shadow_share_mirrors_about_that_share(service: Service) -> None:
    base, challenger = _variants(service)
    layer = ShadowLayer("s1", challenger, 10.0)
    mirrored = sum(bool(layer.route(_request(1, rid=f"q{i}"), base).shadows) for i in range(5000))
    assert 400 < mirrored < 600


def test_every_arm_is_named_in_the_records(service: Service) -> None:
    _, challenger = _variants(service)
    spec = RolloutSpec(id="ab1", kind="ab", champion=1, challenger=2)
    service.pipeline.install(layer_for(spec, challenger))
    seen = Seen()
    service.pipeline.add_observer(seen)

    async def main() -> None:
        for c in range(200):
            await service.score(_request(c, rid=f"q{c}"))

    asyncio.run(main())
    by_arm = {b.variant: b.model.version for b in seen.batches}
    assert by_arm == {"ab1:champion": 1, "ab1:challenger": 2}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"weights": {"champion": 60, "challenger": 30}}, "weights"),
        ({"challenger": 1}, "challenger"),
        ({"steps": [5, 1, 100]}, "steps"),
        ({"steps": [1, 5, 50]}, "steps"),
        ({"share": 0}, "share"),
        ({"kind": "rainbow"}, "kind"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    import json

    spec = {"id": "r1", "kind": "ab", "champion": 1, "challenger": 2, **change}
    with pytest.raises(ValidationError) as info:
        RolloutSpec.parse(json.dumps(spec))
    assert info.value.field == field


def test_a_spec_reads_from_yaml_and_json_alike() -> None:
    text = "id: c7\nkind: canary\nchampion: 3\nchallenger: 4\nsteps: [10, 50, 100]\n"
    spec = RolloutSpec.parse(text)
    assert (spec.kind, spec.steps, spec.challenger_share) == ("canary", [10.0, 50.0, 100.0], 10.0)
    assert RolloutSpec.parse(spec.model_dump_json()) == spec
    with pytest.raises(ValidationError, match="not valid JSON or YAML"):
        RolloutSpec.parse("id: [unclosed")
