"""The demo's stages, in data-flow order: each calls one package's `demo_step`.

simulate (history + held-out days) -> features (build, materialize, parity) -> train +
register + promote -> serve and replay the held-out days, their feature updates pushed
into the online store as they go (until the days end, `--for` seconds pass, or Ctrl-C)
-> what the prediction log and the true labels say -> a shadow, a canary promoting a
challenger and one rolling a bad challenger back -> live drift with amounts shifted,
its alerts firing. Before the HTTP replay, the first held-out transactions also go
through the embedded event log and the stream processor (its window features on).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.panel import Panel

from mlsd.demo import report
from mlsd.settings import Settings, get_settings

if TYPE_CHECKING:
    import pandas as pd


console = Console()
DATASET = "datasets/demo"
REPLAY = "datasets/demo-replay"
REPORT = "reports/demo-replay.json"
#: Every URL setting the demo resets to its embedded default, in its own data folder.
EMBEDDED = (
    "online_store",
    "feature_registry",
    "registry_db",
    "artifacts",
    "cache",
    "job_queue",
    "prediction_log",
    "event_log",
)


@dataclass(frozen=True)
class DemoSize:
    """The demo's world: its history (features, training) and the held-out days replayed."""

    customers: int
    terminals: int
    days: int
    replay_days: int


# Big enough for steady test metrics (about 290,000 transactions and 2,300 frauds; at 500
# customers and 60 days the test block holds 16-42 frauds and AUC swings 0.43-0.94 by seed),
# small enough that simulate + features + train take about 20 s on 2 cores.
FULL = DemoSize(customers=1500, terminals=3000, days=100, replay_days=7)
#: A quick world (setup in a few seconds) for tests and slow machines; its metrics are noisy.
SMALL = DemoSize(customers=300, terminals=600, days=45, replay_days=2)


def demo_settings(base: Settings, home: Path | None = None) -> Settings:
    """The demo's settings: embedded stores in `home` (default: `base.home / "demo"`).

    Each run replaces the datasets, offline tables and online store there (the registry
    and the prediction log keep earlier runs), so it never shares a folder or a server
    with the user's own session.
    """
    update: dict[str, Any] = dict.fromkeys(EMBEDDED, "")
    update["home"] = (home if home is not None else base.home / "demo").expanduser()
    return base.model_copy(update=update)


def _stage(title: str, step: Callable[[], Any]) -> Any:
    """Run one stage under a spinner and report its wall time."""
    started = time.perf_counter()
    with console.status(f"[bold]{title}[/] ..."):
        result = step()
    console.print(f"[green]✓[/] {title} [dim]({time.perf_counter() - started:.1f} s)[/]")
    return result


def _simulate(settings: Settings, size: DemoSize) -> tuple[Path, Path]:
    from mlsd.data.demo import demo_step
    from mlsd.data.io import read_manifest

    out, replay = settings.path(DATASET), settings.path(REPLAY)
    summary = _stage(
        "simulate transactions",
        lambda: demo_step(
            out,
            n_customers=size.customers,
            n_terminals=size.terminals,
            n_days=size.days,
            replay_days=size.replay_days,
            replay_out=replay,
        ),
    )
    held = read_manifest(replay)
    console.print(report.simulated(size, summary, held))
    return out, replay


def _features(settings: Settings, dataset: Path) -> None:
    from mlsd.features.demo import demo_step
    from mlsd.features.store import FeatureStore

    store = FeatureStore.open(settings)
    try:  # rows pushed by an earlier replay are later than this run's history: drop them
        store.online.clear()
    finally:
        store.close()
    result = _stage("build, materialize and check features", lambda: demo_step(dataset, settings))
    console.print(report.features(result))


def _train(settings: Settings, dataset: Path) -> dict[str, Any]:
    from mlsd.training.demo import demo_step

    result: dict[str, Any] = _stage(
        "train, register and promote", lambda: demo_step(dataset, settings, build=False)
    )
    console.print(report.training(result))
    return result


def _registry(settings: Settings) -> None:
    from mlsd.registry.demo import demo_step

    console.print("[bold]model registry[/]: versions, champion lineage, alias history")
    demo_step(settings, name="fraud", console=console)


def _compress(settings: Settings) -> None:
    from mlsd.compression.demo import demo_step

    demo_step(settings, console)


def _serve(
    settings: Settings,
    dataset: Path,
    replay: Path,
    seconds: float | None,
    speedup: float | None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    from mlsd.demo.feed import FeatureFeed
    from mlsd.features.store import FeatureStore
    from mlsd.serving.demo import demo_step

    store = FeatureStore.open(settings)
    try:
        feed, traffic = _stage(
            "compute the held-out days' feature updates",
            lambda: FeatureFeed.open(store, dataset, replay),
        )
        stream = _stream(settings, traffic)
        console.print(report.replay_intro(traffic, seconds, speedup))
        figures = demo_step(
            settings,
            seconds,
            traffic=traffic,
            before_wave=feed.push,
            speedup=speedup,
            console=console,
        )
        figures["feature_rows_pushed"] = feed.pushed
    finally:
        store.close()
    console.print(report.serving(figures))
    figures["stream"] = stream
    return figures, traffic


def _stream(settings: Settings, traffic: pd.DataFrame) -> dict[str, Any]:
    """The held-out days through the embedded event log and the stream processor."""
    from mlsd.streaming.demo import demo_step

    figures: dict[str, Any] = _stage(
        "stream the held-out days through the event log and the processor",
        lambda: demo_step(settings, traffic),
    )
    console.print(report.streaming(figures))
    return figures


def _outcomes(
    settings: Settings,
    traffic: pd.DataFrame,
    since: datetime,
    budget: int,
    figures: dict[str, Any],
) -> dict[str, Any]:
    from mlsd.data import schema
    from mlsd.predlog.demo import replay_step

    columns = (schema.TRANSACTION_ID, schema.CUSTOMER_ID, schema.TX_DATETIME, schema.TX_AMOUNT)
    labels = traffic[[*columns, schema.TX_FRAUD]]
    summary, outcomes, joined = replay_step(settings, labels, since, budget)
    cp = report.card_precision(joined, budget)
    console.print(report.log_table(summary))
    console.print(report.fraud_team(outcomes))
    console.print(report.per_day(outcomes, figures["replayed"] < figures["replay_total"]))
    return {
        "serving": figures,
        "log": summary.to_dict(),
        "outcomes": outcomes.to_dict(),
        "card_precision": cp,
    }


def _rollouts(settings: Settings, traffic: pd.DataFrame) -> dict[str, Any]:
    from mlsd.demo.rollouts import rollout_step

    return dict(_stage("rollouts: a shadow, a canary to promotion, a bad canary rolled back",
                       lambda: rollout_step(settings, traffic, console)))  # fmt: skip


def _drift(settings: Settings, traffic: pd.DataFrame) -> dict[str, Any]:
    from mlsd.demo.drift import drift_step

    return dict(_stage("monitoring: amounts shifted in live traffic, the drift alert fires",
                       lambda: drift_step(settings, traffic, console)))  # fmt: skip


def run_demo(
    seconds: float | None = None,
    settings: Settings | None = None,
    *,
    home: Path | None = None,
    size: DemoSize = FULL,
    speedup: float | None = None,
    alert_budget: int = 100,
) -> dict[str, Any]:
    """Run every stage; the replay runs for `seconds`, or until its days end or Ctrl-C.

    The demo works in its own folder (`demo_settings`). The stages before serving take
    about half a minute on the full-size world. Returns what it wrote to `REPORT`.
    """
    settings = demo_settings(settings or get_settings(), home)
    settings.home.mkdir(parents=True, exist_ok=True)
    console.print(
        Panel.fit(
            f"mlsd demo — its own data folder: [bold]{settings.home.resolve()}[/]\n"
            "embedded stores only; your own MLSD_HOME session is left alone"
        )
    )
    dataset, replay = _simulate(settings, size)
    _features(settings, dataset)
    trained = _train(settings, dataset)
    _registry(settings)
    _stage("compress the champion", lambda: _compress(settings))
    serving_started = datetime.now(UTC)
    try:
        figures, traffic = _serve(settings, dataset, replay, seconds, speedup)
    except KeyboardInterrupt:
        console.print("stopped")
        return {}
    result = _outcomes(settings, traffic, serving_started, alert_budget, figures)
    result["training"] = {"metrics": trained["metrics"], "uri": trained["uri"]}
    result["rollouts"] = _rollouts(settings, traffic)
    result["drift"] = _drift(settings, traffic)
    console.print(report.explain(result, size))
    path = settings.path(REPORT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    console.print(f"\nThe figures above are in {path.resolve()}")
    console.print(f"Everything the demo wrote is under [bold]{settings.home.resolve()}[/]:")
    for child in sorted(settings.home.iterdir()):
        console.print(f"  {child.name}/" if child.is_dir() else f"  {child.name}")
    return result
