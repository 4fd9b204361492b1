"""The demo's rollout step: the compressed variant the demo registered runs in shadow (its
divergence from the champion measured on the mirrored pairs), then a challenger goes through
a canary to promotion, and a bad one (raising on a tenth of its inputs) is rolled back
automatically.

Both run on the demo's own registry and feature store, under the held-out days' real
transactions (labels known, so the catch-rate guardrail is live), through a real service:
`RolloutManager.start` writes the spec, the service's rollout agent installs the split and
its controller decides every interval. The good challenger is the champion's artifacts
registered again as a new version (training another model would cost the demo tens of
seconds; what is shown is the canary, not a better model).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from mlsd.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from mlsd.data.transaction import Transaction
    from mlsd.serving.service import Service

STEPS = [10.0, 50.0, 100.0]
INTERVAL_S = 0.3
RATE = 300.0  # requests per second, paced
CAP_S = 6.0  # per rollout
SHADOW_S = 3.0  # seconds of mirrored traffic
#: The step's own prediction log (in the demo's folder), where the shadow's pairs are read.
ROLLOUT_LOG = "rollouts/predictions"
# Loose enough that an identical copy passes on a busy laptop (a 50 ms p99 or a catch-rate
# test at 0.8 on a few dozen labelled frauds per check rolled a copy back now and then), tight
# enough that the broken challenger fails on its errors at the first check.
# The score-shift guardrail judges a check once the challenger's scores come from 30
# customers, with a p-value from re-assigning whole customers between the arms: a KS test
# counting each payment as a draw rolled the identical copy back in 2 of 4 CI runs.
GUARDRAILS = {"max_error_rate": 0.01, "max_p99_ms": 500.0, "max_score_psi": 0.25,
              "min_catch_ratio": 0.5, "min_requests": 30}  # fmt: skip


def rollout_step(settings: Settings, traffic: pd.DataFrame, console: Console) -> dict[str, Any]:
    """Run both canaries; print their table; return its rows."""
    import pandas as pd

    from mlsd.data import schema
    from mlsd.features.store import FeatureStore
    from mlsd.inference.endpoint import VersionEndpoint
    from mlsd.inference.host import ModelHost
    from mlsd.predlog import ParquetPredictionLog
    from mlsd.registry import Registry
    from mlsd.rollout.testing import KnownLabels, broken
    from mlsd.serving.schemas import transactions_from_records
    from mlsd.serving.service import ServeOptions, Service

    # The online store holds the replay's last state: each transaction is sent at the
    # replay's end, so its features are as of then (an earlier time would find rows from its
    # future, which serving refuses as missing, and the models would score empty inputs).
    sent = traffic.head(int(RATE * CAP_S * 2)).copy()
    sent[schema.TX_DATETIME] = traffic[schema.TX_DATETIME].max() + pd.Timedelta(seconds=1)
    txs = transactions_from_records(sent.to_dict("records"))
    labels = KnownLabels(dict(zip(traffic[schema.TRANSACTION_ID].tolist(),
                                  traffic[schema.TX_FRAUD].tolist(), strict=True)))  # fmt: skip
    store = FeatureStore.open(settings)
    registry = Registry.open(settings)
    try:
        champion = registry.resolve("models:/fraud@champion")
        files = {name: registry.load_artifact(champion, name) for name in champion.artifacts}

        def again(note: str) -> int:
            return registry.register(
                "fraud", files, flavor=champion.flavor, signature=champion.signature,
                lineage=champion.lineage, params=champion.params, metrics=champion.metrics,
                threshold=champion.threshold, tags={"demo": note},
                description=f"demo canary challenger: {note}",
            ).version  # fmt: skip

        latest = registry.latest("fraud")
        shadowed = latest.version if "compression" in latest.tags else None
        good, bad = again("copy of the champion"), again("raises on 10 % of inputs")
        host = ModelHost(registry, served_views=store.view_versions)
        options = ServeOptions(watch_aliases=False, watch_rollouts=True, rollout_poll_s=0.05)
        # a log of the step's own, so the replay's log (and its figures above) stay the replay's
        log = ParquetPredictionLog(settings.path(ROLLOUT_LOG), compact_every_s=None)
        service = Service(settings, host, options=options, features=store, prediction_log=log)
        service.load_all()
        agent = service.rollouts
        if agent is None:  # the service reads models from a registry: it has one
            raise RuntimeError("the service has no rollout agent")

        def endpoint_for(name: str, version: int) -> Any:
            host.load(f"{name}/{version}")
            model = host.get(name, version=version)
            return VersionEndpoint(broken(model, "raising") if version == bad else model)

        agent.endpoint_for = endpoint_for
        agent.labels = labels
        rows = []
        shadow: dict[str, Any] | None = None
        try:
            if shadowed is not None:
                shadow = _shadow(settings, service, registry, shadowed, txs, console)
            console.print(
                f"canaries: v{good} is the champion's artifacts registered again; v{bad} is "
                "deliberately broken, raising on 10 % of its inputs (its first failure is "
                "logged below; the champion answers those requests)"
            )
            for rid, version, what in (("demo-good", good, "the champion's copy"),
                                       ("demo-bad", bad, "raises on 10 %")):  # fmt: skip
                rows.append(_canary(service, registry, rid, version, what, txs))
        finally:
            service.close()
    finally:
        registry.close()
        store.close()
    console.print(_table(rows))
    return {"shadow": shadow, "canaries": rows}


def _shadow(settings: Settings, service: Service, registry: Any, challenger: int,
            txs: list[Transaction], console: Console) -> dict[str, Any]:  # fmt: skip
    """Mirror every request to `challenger` for SHADOW_S seconds; print the divergence."""
    from datetime import UTC, datetime

    from mlsd.predlog import ParquetPredictionReader
    from mlsd.rollout.divergence import DangerousDivergence, analyse
    from mlsd.rollout.divergence_view import print_verdict, segment_table, summary_table
    from mlsd.rollout.manage import RolloutManager
    from mlsd.rollout.pairs import pairs
    from mlsd.rollout.spec import RolloutSpec

    champion = registry.aliases("fraud")["champion"]
    spec = RolloutSpec.model_validate(
        {"id": f"demo-shadow-{int(time.time())}", "kind": "shadow", "champion": champion,
         "challenger": challenger, "share": 100}
    )  # fmt: skip
    manager = RolloutManager(registry)
    manager.start(spec, actor="demo")
    agent = service.rollouts
    if agent is None:  # the service reads models from a registry: it has one
        raise RuntimeError("the service has no rollout agent")
    agent.sync()
    since = datetime.now(UTC)
    answered, failed = asyncio.run(_traffic(service, txs, lambda: False, SHADOW_S))
    asyncio.run(service.pipeline.drain())  # the mirrored scorings still queued
    manager.abort(spec.id, actor="demo", reason="demo: shadow measured, not promoted")
    agent.sync()
    if service.prediction_log is not None:
        service.prediction_log.flush()
    frame = ParquetPredictionReader(settings.path(ROLLOUT_LOG)).read(since, None)
    console.print(
        f"shadow: v{challenger} (the compressed variant) mirrored {answered:,} requests for "
        f"{SHADOW_S:g} s, scored off the response path ({failed} failed answers); the pairs "
        f"are the champion's and the shadow's records of the same request in {ROLLOUT_LOG}/ "
        "(an alert, if the rule fires, is logged as the event rollout.dangerous_divergence)"
    )
    rule = DangerousDivergence()
    report = analyse(pairs(frame, spec.id), rule).to_dict()
    console.print(summary_table(report, rule.max_rate))
    console.print(segment_table(report))
    print_verdict(console, report, rule.max_rate, rule.alpha)
    console.print(
        "KS and PSI compare the two score distributions (a variant's scores may sit on "
        "another scale: it decides at its own threshold); the decisions are what customers "
        f"feel: the rule stops a shadow that approves more than {rule.max_rate:.0%} of the "
        "cards the champion blocks, with an always-valid p-value (checked every interval "
        "of a running shadow, it aborts it)."
    )
    return {"rollout": spec.id, "challenger": challenger, "requests": answered, **report}


def _canary(service: Service, registry: Any, rid: str, challenger: int, what: str,
            txs: list[Transaction]) -> dict[str, Any]:  # fmt: skip
    from mlsd.rollout.manage import RolloutManager
    from mlsd.rollout.spec import RolloutSpec

    champion = registry.aliases("fraud")["champion"]
    spec = RolloutSpec.model_validate(
        {"id": f"{rid}-{int(time.time())}", "kind": "canary", "champion": champion,
         "challenger": challenger, "steps": STEPS, "interval_s": INTERVAL_S,
         "max_failed_checks": 1, "guardrails": GUARDRAILS}
    )  # fmt: skip
    manager = RolloutManager(registry)
    manager.start(spec, actor="demo")
    agent = service.rollouts
    if agent is None:  # the service reads models from a registry: it has one
        raise RuntimeError("the service has no rollout agent")
    agent.sync()
    analysis, controller = agent.installed[spec.id].analysis, agent.controller(spec.id)
    if analysis is None:  # a canary always has one
        raise RuntimeError("the canary has no analysis")
    started = time.monotonic()
    answered, failed = asyncio.run(_traffic(service, txs, lambda: spec.id not in agent.installed))
    took = time.monotonic() - started
    record = registry.rollouts.get_rollout(spec.id)
    if record.state == "running":
        manager.abort(spec.id, actor="demo", reason=f"the demo's {CAP_S:g} s cap")
        record = registry.rollouts.get_rollout(spec.id)
    events = registry.rollouts.rollout_events(spec.id)
    last = controller.last
    if record.state == "promoted":
        why = f"all {len(STEPS)} steps passed ({len(events) - 1} decisions)"
    elif last is not None and last.failures:
        why = "; ".join(last.failures)
    else:
        why = events[-1].reason
    return {
        "rollout": spec.id, "challenger": f"v{challenger}: {what}",
        "outcome": record.state, "steps reached": max(e.share for e in events),
        "seconds": round(took, 1), "requests": answered,
        "answered by challenger": analysis.exposed_requests,
        "customers exposed": len(analysis.exposed_customers), "failed requests": failed,
        "why": why, "history": [e.reason for e in events],
    }  # fmt: skip


async def _traffic(
    service: Service, txs: list[Transaction], over: Any, cap_s: float = CAP_S
) -> tuple[int, int]:
    from mlsd.inference.observers import ScoringRequest

    started, sent, failed = time.monotonic(), 0, 0
    for tx in txs:
        if over() or time.monotonic() - started > cap_s:
            break
        try:
            await service.score(ScoringRequest(f"demo-{tx.transaction_id}", "score", [tx]))
        except Exception:  # noqa: BLE001 - a failed answer is what this counts
            failed += 1
        sent += 1
        await asyncio.sleep(max(started + sent / RATE - time.monotonic(), 0.0))
    return sent, failed


def _table(rows: list[dict[str, Any]]) -> Table:
    steps = " → ".join(f"{s:g}" for s in STEPS)
    title = (
        f"canary rollouts: steps {steps} % of customers, a check every {INTERVAL_S:g} s, "
        "one failed check rolls back"
    )
    caption = (
        "seconds: start to promotion or rollback; requests: the held-out days' transactions "
        f"sent meanwhile ({RATE:g}/s); on challenger: those it answered; customers: distinct "
        "ones it answered; failed: requests answered with an error (the champion answers "
        "when the challenger raises)"
    )
    table = Table(title=title, caption=caption)
    for column in ("challenger", "outcome", "max %", "seconds", "requests", "on challenger",
                   "customers", "failed", "why"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            r["challenger"], r["outcome"].replace("_", " "), f"{r['steps reached']:g}",
            f"{r['seconds']:.1f}", str(r["requests"]), str(r["answered by challenger"]),
            str(r["customers exposed"]), str(r["failed requests"]), r["why"],
        )  # fmt: skip
    return table
