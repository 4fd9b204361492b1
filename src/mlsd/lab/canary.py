"""Your new model passes offline tests but crashes in production: what is your rollback
process — and what does each bad challenger cost before the canary rolls it back?

Four deliberately bad challengers (`mlsd.rollout.testing`: one raising on a tenth of its
inputs, one 50 ms slower, one answering a constant, one whose average precision is a fifth
or more worse) each go through a real canary — the registry's rollout state, the serving
pipeline, the agent's thread running the controller every analysis interval — under paced
traffic of labelled transactions, for two step plans. Measured: time from the start to the
automatic rollback, the traffic and distinct customers the challenger answered, and the fraud
euros it let through that the champion would have blocked.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from mlsd.data.transaction import Transaction
from mlsd.features.store import FeatureStore
from mlsd.inference.host import ModelHost
from mlsd.inference.observers import ScoredBatch, ScoringRequest
from mlsd.lab.experiment import Findings, LabContext, Row
from mlsd.registry import Registry
from mlsd.rollout.manage import RolloutManager
from mlsd.rollout.spec import RolloutSpec
from mlsd.rollout.testing import BAD_KINDS, BadKind, KnownLabels, bad_challenger
from mlsd.serving.service import ServeOptions, Service
from mlsd.serving.testing import register_tiny_model, seed_feature_store, tiny_model_artifacts
from mlsd.settings import Settings

QUESTION = (
    "Your new model passes offline tests but crashes in production. What's your rollback "
    "process — how fast does a canary roll each kind of bad model back, and what did the "
    "customers it reached pay?"
)
PLANS: dict[str, list[float]] = {"gentle": [1, 5, 25, 50, 100], "steep": [10, 50, 100]}
GUARDRAILS = {"max_error_rate": 0.01, "max_p99_ms": 25.0, "max_score_psi": 0.25,
              "min_catch_ratio": 0.8, "min_requests": 20}  # fmt: skip
CUSTOMERS = 2000
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _transaction(i: int) -> Transaction:
    amount = 150.0 + (i % 13) * 10 if i % 7 == 0 else 10.0 + (i % 50)
    return Transaction(i, i % CUSTOMERS, 7, amount, T0 + timedelta(seconds=i))


def _label(i: int) -> int:
    """Fraud is what the models learnt to catch: a large amount (a seventh of the traffic)."""
    return int(_transaction(i).amount > 120)


@dataclass(frozen=True)
class Outcome:
    """One canary of one bad challenger."""

    challenger: str
    plan: str
    rolled_back: bool
    seconds_to_rollback: float
    requests: int
    exposed_requests: int
    exposed_share: float
    exposed_customers: int
    highest_step: float
    fraud_eur_missed: float
    failed_requests: int
    reason: str


class _Exposure:
    """Counts what the challenger answered, and the fraud euros it let through."""

    def __init__(self, champion: Any) -> None:
        self.champion = champion
        self.requests = 0
        self.exposed = 0
        self.customers: set[int] = set()
        self.missed_eur = 0.0

    def observe(self, batch: ScoredBatch) -> None:
        if batch.role != "primary":
            return
        self.requests += 1
        if not batch.variant.endswith(":challenger"):
            return
        self.exposed += 1
        would = self.champion.predict(batch.values) >= self.champion.threshold
        for tx, decision, blocked in zip(batch.request.transactions, batch.decisions, would,
                                         strict=False):  # fmt: skip
            self.customers.add(tx.customer_id)
            if _label(tx.transaction_id) and decision == "legit" and blocked:
                self.missed_eur += tx.amount


def _service(home: Path, files: dict[int, dict[str, bytes]]) -> tuple[Service, Registry]:
    settings = Settings(home=home)
    store = FeatureStore.open(settings)
    views = seed_feature_store(store)
    registry = Registry.open(settings)
    for version in (1, 2):
        register_tiny_model(registry, files[version], views)
    registry.set_alias("fraud", "champion", 1, reason="lab", actor="lab")
    host = ModelHost(registry, served_views=store.view_versions, poll_interval_s=0.1)
    options = ServeOptions(watch_aliases=False, watch_rollouts=True, rollout_poll_s=0.02)
    service = Service(settings, host, options=options, features=store)
    service.owned.append(store)
    service.load_all()
    return service, registry


async def _traffic(service: Service, rate: float, until: Any, cap_s: float) -> int:
    """Paced requests until `until()` or the cap; the number that failed."""
    started, i, failed = time.monotonic(), 0, 0
    while time.monotonic() - started < cap_s and not until():
        try:
            await service.score(ScoringRequest(f"q{i}", "score", [_transaction(i)]))
        except Exception:  # noqa: BLE001 - a failed answer is what this counts
            failed += 1
        i += 1
        lag = started + i / rate - time.monotonic()
        await asyncio.sleep(max(lag, 0.0))
    return failed


def _one(service: Service, registry: Registry, kind: BadKind, plan: str, interval_s: float,
         rate: float, cap_s: float) -> Outcome:  # fmt: skip
    """One canary on the shared service; the next one starts on a clean endpoint."""
    agent = service.rollouts
    if agent is None:  # the service reads models from a registry: it has one
        raise RuntimeError("the service has no rollout agent")
    agent.endpoint_for = bad_challenger(service.host, kind)
    agent.labels = KnownLabels({i: _label(i) for i in range(int(rate * cap_s) + 10)})
    exposure = _Exposure(service.host.get("fraud", alias="champion"))
    service.pipeline.add_observer(exposure)
    spec = RolloutSpec.model_validate(
        {"id": f"{kind}-{plan}", "kind": "canary", "champion": 1, "challenger": 2,
         "steps": PLANS[plan], "interval_s": interval_s, "max_failed_checks": 1,
         "guardrails": GUARDRAILS}
    )  # fmt: skip
    manager = RolloutManager(registry)
    manager.start(spec, actor="lab")
    agent.sync()
    started = time.monotonic()
    failed = asyncio.run(_traffic(service, rate, lambda: not agent.installed, cap_s))
    took = time.monotonic() - started
    service.pipeline.remove_observer(exposure)
    record = registry.rollouts.get_rollout(spec.id)
    if record.state == "running":  # not decided within the cap: stop it for the next one
        manager.abort(spec.id, actor="lab", reason=f"the lab's {cap_s:g} s cap")
        agent.sync()
    events = registry.rollouts.rollout_events(spec.id)
    highest = max((e.share for e in events if e.kind in ("start", "step")), default=0.0)
    return Outcome(
        challenger=kind, plan=plan, rolled_back=record.state == "rolled_back",
        seconds_to_rollback=round(took, 2), requests=exposure.requests,
        exposed_requests=exposure.exposed,
        exposed_share=round(exposure.exposed / max(exposure.requests, 1), 4),
        exposed_customers=len(exposure.customers), highest_step=highest,
        fraud_eur_missed=round(exposure.missed_eur, 2), failed_requests=failed,
        reason=events[-1].reason if record.state != "running" else "still running at the cap",
    )  # fmt: skip


def _plot(outcomes: list[Outcome]) -> Any:
    def draw(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
        x = np.arange(len(BAD_KINDS))
        for k, plan in enumerate(PLANS):
            mine = [next(o for o in outcomes if o.challenger == c and o.plan == plan)
                    for c in BAD_KINDS]  # fmt: skip
            left.bar(x + 0.4 * k, [o.seconds_to_rollback for o in mine], 0.4, label=plan)
            right.bar(x + 0.4 * k, [o.exposed_customers for o in mine], 0.4, label=plan)
        for axis, title in ((left, "seconds from start to rollback"),
                            (right, "distinct customers the challenger answered")):  # fmt: skip
            axis.set_xticks(x + 0.2, BAD_KINDS)
            axis.set_title(title)
            axis.legend(title="step plan")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    return draw


class CanaryExperiment:
    """Four bad challengers x two step plans through a real canary."""

    name = "canary"
    question = QUESTION

    def run(self, ctx: LabContext) -> Findings:
        """Each pair on a fresh registry and service, the agent's controller deciding."""
        interval_s, rate, cap_s = (0.05, 600.0, 0.7) if ctx.quick else (0.5, 400.0, 20.0)
        files = {1: tiny_model_artifacts(1), 2: tiny_model_artifacts(2)}
        outcomes: list[Outcome] = []
        pairs = [(k, p) for p in PLANS for k in BAD_KINDS]
        service, registry = _service(ctx.workdir / "home", files)
        try:
            with ctx.step("canaries", len(pairs)) as advance:
                for kind, plan in pairs:
                    outcomes.append(_one(service, registry, kind, plan, interval_s, rate, cap_s))
                    advance()
        finally:
            service.close()
            registry.close()
        table: list[Row] = [
            {"challenger": o.challenger, "plan": o.plan, "rolled back": str(o.rolled_back),
             "s to rollback": o.seconds_to_rollback, "highest step %": o.highest_step,
             "traffic exposed %": round(100 * o.exposed_share, 2),
             "customers exposed": o.exposed_customers, "fraud EUR missed": o.fraud_eur_missed,
             "why": o.reason[:120]}
            for o in outcomes
        ]  # fmt: skip
        return Findings(
            answer=_answer(outcomes, interval_s),
            method=_method(interval_s, rate, cap_s),
            table=table,
            results={"outcomes": [asdict(o) for o in outcomes], "interval_s": interval_s},
            plots={"canary": _plot(outcomes)},
        )


def _answer(outcomes: list[Outcome], interval_s: float) -> str:
    back = [o for o in outcomes if o.rolled_back]
    parts = [f"{len(back)} of {len(outcomes)} bad canaries were rolled back automatically"]
    late = [f"{o.challenger}/{o.plan}" for o in outcomes if not o.rolled_back]
    parts[0] += f" (not within the cap: {', '.join(late)})." if late else "."
    for plan in PLANS:
        mine = [o for o in back if o.plan == plan]
        if not mine:
            continue
        worst = max(mine, key=lambda o: o.exposed_customers)
        parts.append(
            f"With the **{plan}** plan ({' → '.join(f'{s:g}' for s in PLANS[plan])} %), "
            f"rollbacks came {min(o.seconds_to_rollback for o in mine):.2f}–"
            f"{max(o.seconds_to_rollback for o in mine):.2f} s after the start "
            f"(analysis every {interval_s:g} s); the challenger answered at most "
            f"{100 * max(o.exposed_share for o in mine):.1f} % of the traffic and "
            f"{worst.exposed_customers} customers ({worst.challenger}), and let through "
            f"{sum(o.fraud_eur_missed for o in mine):,.0f} € of fraud the champion would have "
            "blocked."
        )
    raising = [o for o in outcomes if o.challenger == "raising"]
    parts.append(
        f"Failed requests while the raising challenger was in: "
        f"{sum(o.failed_requests for o in raising)} (the champion answers for it; its errors "
        "still count against it). A smaller first step exposes fewer customers but needs "
        "more intervals before a check has enough requests to decide."
    )
    return " ".join(parts)


def _method(interval_s: float, rate: float, cap_s: float) -> str:
    return (
        "The 8 canaries run one after the other on one embedded registry and feature store "
        "with two small real LightGBM versions (`mlsd.serving.testing`); version 2, made bad by "
        "`mlsd.rollout.testing`, is the challenger. `RolloutManager.start` writes the spec, "
        "the service's `RolloutAgent` installs the split and its thread runs the controller "
        f"every {interval_s:g} s (guardrails {GUARDRAILS}, one failed check rolls "
        f"back). Traffic: {rate:g} requests/s, paced, one transaction each, over "
        f"{CUSTOMERS} customers, for at most {cap_s:g} s or until the rollout ends; a "
        "transaction over 120 € is a fraud (what the models learnt), labels known at once. "
        "Fraud € missed: frauds the challenger answered 'legit' that the champion, scored on "
        "the same features, would have blocked."
    )


EXPERIMENT = CanaryExperiment()
