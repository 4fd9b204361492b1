"""Canaries on a real service: a good challenger steps up to promotion; each deliberately
bad one is rolled back automatically, its exposure within what its step weights allow."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from mlsd.registry import Registry
from mlsd.rollout import RolloutSpec
from mlsd.rollout.manage import RolloutManager
from mlsd.rollout.testing import BAD_KINDS, BadKind, KnownLabels, bad_challenger
from mlsd.serving.service import Service
from tests.unit.inference.layers import Seen
from tests.unit.rollout.conftest import fraud_label, send

GUARDS = {"max_error_rate": 0.01, "max_p99_ms": 30, "max_score_psi": 0.25, "min_requests": 30}


def _canary(rid: str, steps: list[float], **more: Any) -> RolloutSpec:
    return RolloutSpec.model_validate(
        {"id": rid, "kind": "canary", "champion": 1, "challenger": 2, "steps": steps,
         "interval_s": 0.2, "max_failed_checks": 1, "guardrails": GUARDS, **more}
    )  # fmt: skip


def _start(service: Service, registry: Registry, spec: RolloutSpec) -> None:
    assert service.rollouts is not None
    RolloutManager(registry).start(spec, actor="test")
    service.rollouts.sync()
    assert spec.id in service.rollouts.installed


def test_a_good_challenger_steps_up_to_promotion(service: Service, registry: Registry) -> None:
    agent = service.rollouts
    assert agent is not None
    # a p99 guard far above what a loaded machine's scheduler adds: this one must pass
    generous = {**GUARDS, "max_p99_ms": 500}
    _start(service, registry, _canary("good", [10, 50, 100], guardrails=generous))
    decisions, i = [], 0
    while len(decisions) < 6 and "promote" not in decisions:
        send(service, range(i, i + 400))
        i += 400
        decisions.append(agent.check("good"))
    assert decisions == ["step", "step", "promote"]
    assert registry.aliases("fraud")["champion"] == 2
    move = registry.alias_history("fraud", "champion")[-1]
    assert move.kind == "promote"
    assert "all 3 steps passed" in move.reason
    assert "p99" in move.reason
    assert service.host.get("fraud", alias="champion").version == 2
    assert not service.pipeline.layers, "the layer is gone once the host follows the alias"
    kinds = [e.kind for e in registry.rollouts.rollout_events("good")]
    assert kinds == ["start", "step", "step", "promote"]
    metrics = service.metrics.render().decode()
    assert 'mlsd_rollout_decisions_total{decision="promote",rollout="good"} 1.0' in metrics
    assert 'mlsd_rollout_share_percent{kind="canary",rollout="good"} 0.0' in metrics


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_a_bad_challenger_is_rolled_back_within_its_step(
    kind: BadKind, service: Service, registry: Registry
) -> None:
    agent = service.rollouts
    assert agent is not None
    agent.endpoint_for = bad_challenger(service.host, kind)
    agent.labels = KnownLabels({i: fraud_label(i) for i in range(20_000)})
    steps = [5.0, 25.0, 100.0]
    _start(service, registry, _canary(f"bad-{kind}", steps))
    seen = Seen()
    service.pipeline.add_observer(seen)
    decision, i, checks = "wait", 0, 0
    while decision not in ("rollback", "promote") and checks < 6:
        send(service, range(i, i + 1000))
        i += 1000
        decision = agent.check(f"bad-{kind}")
        checks += 1
    history = registry.rollouts.rollout_events(f"bad-{kind}")
    assert decision == "rollback", f"{kind}: {[e.reason for e in history]}"
    record = registry.rollouts.get_rollout(f"bad-{kind}")
    assert (record.state, record.share) == ("rolled_back", 0.0)
    assert registry.aliases("fraud")["champion"] == 1
    exposed = [b for b in seen.batches if b.variant.endswith(":challenger")]
    reached = steps[record.step] / 100.0  # the highest step it was given
    share = len(exposed) / i
    assert share <= reached + 3 * math.sqrt(reached * (1 - reached) / i) + 0.01
    customers = {b.request.transactions[0].customer_id for b in exposed}
    assert len(customers) <= math.ceil(1000 * reached * 1.3) + 10
    # after the rollback nobody is routed to it
    before = len(seen.batches)
    send(service, range(i, i + 200))
    assert all(b.variant == f"bad-{kind}:champion" or b.variant == "champion"
               for b in seen.batches[before:])  # fmt: skip
    assert not service.pipeline.layers
    metrics = service.metrics.render().decode()
    assert (
        f'mlsd_rollout_decisions_total{{decision="rollback",rollout="bad-{kind}"}} 1.0' in metrics
    )


def test_a_raising_challenger_fails_no_request(service: Service, registry: Registry) -> None:
    agent = service.rollouts
    assert agent is not None
    agent.endpoint_for = bad_challenger(service.host, "raising")
    _start(service, registry, _canary("r", [50.0, 100.0]))
    seen = Seen()
    service.pipeline.add_observer(seen)
    send(service, range(600))  # raises inside: every request still answered (by the champion)
    assert len([b for b in seen.batches if b.role == "primary"]) == 600
    analysis = agent.installed["r"].analysis
    assert analysis is not None
    assert analysis.exposed_requests > 200
    assert agent.check("r") == "rollback"


def test_the_worse_challenger_is_a_fifth_worse(service: Service) -> None:
    """The 'AP 20 % worse' challenger really is, on the labelled traffic the tests send."""
    from sklearn.metrics import average_precision_score

    from mlsd.rollout.testing import broken
    from tests.unit.rollout.conftest import transaction

    champion = service.host.get("fraud", alias="champion")
    rows, *_ = service.pipeline.assembler.build(
        [transaction(i) for i in range(3000)], champion.feature_names
    )
    y = np.array([fraud_label(i) for i in range(3000)])
    good = average_precision_score(y, champion.predict(rows))
    worse = average_precision_score(y, broken(champion, "worse").predict(rows))
    assert worse <= 0.8 * good
