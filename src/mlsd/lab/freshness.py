"""If your fraud detection model uses a 30-minute delay, what's the real business impact?

A simulated world is built into the real feature store and a LightGBM model is trained on
it, registered and served. Its last days are replayed, scored with a delay of 0, 1, 5, 30
and 60 minutes, which does two things:

- **stale features**: the stored features a decision sees are as of t − delay (the
  point-in-time join of the feature store at that time: the payments of the last
  `delay` minutes, the current one included, are not in the card's windows yet); the
  request-time features (amount, night, weekend) are the payment's own;
- **late decisions**: the decision comes at t + delay. A payment is declined only if it
  is flagged in time (delay 0); a flagged fraud gets its card blocked from the moment the
  decision arrives, so the card's later frauds are prevented, while the frauds completed
  within the delay are lost.

Each delay is also split into its two effects (stale features with a decision on time;
fresh features with a late decision), and two mitigations are measured: micro-batching
(the real stream processor's decision delay: the p99 time of one micro-batch on the
embedded log) and feature snapshots (a decision on time, on the features of the last
30-minute or nightly snapshot). The CPU cost per million events of the three ways to
score — streaming one event at a time, micro-batches of 256 (the real processor on the
embedded log, `mlsd stream run`) and the nightly batch (`mlsd score-batch`) — is the
process CPU time of each over the same replayed transactions.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.events import CardTesting
from mlsd.features.handbook import HANDBOOK_FEATURES, REQUEST_FEATURES
from mlsd.lab.experiment import Findings, LabContext, Row
from mlsd.lab.replay_world import World, make_world
from mlsd.lab.report import markdown_table
from mlsd.settings import Settings
from mlsd.training.dataset import matrix, training_frame

QUESTION = (
    "If your fraud detection model uses a 30-minute delay, what's the real business impact? "
    "How many frauds and how many euros does a delay of 0, 1, 5, 30 and 60 minutes cost "
    "(stale features, late decisions), what do micro-batching and feature snapshots win "
    "back, and what does streaming, micro-batch and nightly batch scoring cost in CPU per "
    "million events?"
)
DELAYS_MIN = (0, 1, 5, 30, 60)
#: A decision arriving within this many seconds declines the payment (an assumption: the
#: time an issuer may take to answer an authorization); a later one can only block the card.
AUTH_WINDOW_S = 1.0
#: Payments per drained card.
BURST = 8
#: The share of payments the model may flag (the handbook's 100 cards a day of 5,000).
ALERT_SHARE = 0.02
STORED = [f for f in HANDBOOK_FEATURES if f not in REQUEST_FEATURES]


@dataclass(frozen=True)
class Outcome:
    """What one way of deciding did to the replayed payments."""

    scenario: str
    feature_age_s: float  # how old the stored features are (nan: a snapshot's varying age)
    decision_delay_s: float
    frauds: int
    frauds_lost: int
    euros_lost: float
    frauds_prevented: int
    euros_saved: float
    alerts: int
    genuine_declined: int


@dataclass(frozen=True)
class Cost:
    """CPU of one way of scoring the same transactions."""

    mode: str
    events: int
    cpu_s: float
    wall_s: float

    @property
    def cpu_s_per_million(self) -> float:
        """Process CPU seconds per million events."""
        return self.cpu_s / self.events * 1e6 if self.events else 0.0


def _config(quick: bool, seed: int) -> tuple[SimulatorConfig, int]:
    """The world and how many of its last days are replayed: the handbook's frauds, and
    from the middle on stolen cards drained in bursts (the simulator's card-testing event
    with amounts up to 150 €, a payment a minute: where minutes of delay matter)."""
    customers, terminals, days, replay = (300, 600, 24, 3) if quick else (1500, 3000, 45, 7)
    base = SimulatorConfig.scaled(customers, terminals, n_days=days, seed=seed)
    burst = CardTesting(
        name="card-draining",
        start=base.start_date + pd.Timedelta(days=days // 2).to_pytimedelta(),
        bursts_per_day=max(2, customers // 100),
        tx_per_burst=BURST,
        max_amount=150.0,
        gap_seconds=60.0,
    )
    return base.with_changes(scenarios=[burst]), replay


def _register(world: World, settings: Settings, train: pd.DataFrame, seed: int) -> None:
    """Train LightGBM on `train`, register it as fraud@champion with an alert-budget
    threshold (the top ALERT_SHARE of its training scores)."""
    from mlsd.inference.runtimes import OnnxRuntime
    from mlsd.registry import DecisionThreshold, Lineage, Registry, Signature
    from mlsd.registry.formats import ONNX_ARTIFACT
    from mlsd.training.gbm import LightGBMModel

    names = list(HANDBOOK_FEATURES)
    model = LightGBMModel({"n_estimators": 80, "num_leaves": 15}, seed=seed, num_threads=1)
    X = matrix(train, names)
    model.fit(X, train[schema.TX_FRAUD].to_numpy())
    files = model.artifacts(names)
    threshold = float(
        np.quantile(OnnxRuntime(files[ONNX_ARTIFACT], len(names)).predict(X), 1 - ALERT_SHARE)
    )
    registry = Registry.open(settings)
    try:
        registry.register(
            "fraud", files, flavor="lightgbm",
            signature=Signature(names, ["float32"] * len(names)),
            lineage=Lineage(feature_views=world.store.view_versions()), params={}, metrics={},
            threshold=DecisionThreshold(value=threshold, policy=f"alert budget {ALERT_SHARE:.0%}"),
        )  # fmt: skip
        registry.set_alias("fraud", "champion", 1, reason="lab", actor="lab freshness")
    finally:
        registry.close()


def _as_of(world: World, rows: pd.DataFrame, when: pd.Series) -> np.ndarray:
    """The model inputs of `rows` with the stored features as of `when` (request-time
    features at the payment itself), float32 in model order."""
    fresh = training_frame(world.store, rows, list(HANDBOOK_FEATURES))
    shifted = rows.assign(**{schema.TX_DATETIME: when})  # aligned on the index
    stale = training_frame(world.store, shifted, STORED)
    fresh[STORED] = stale[STORED].to_numpy()  # both sorted by transaction id
    return matrix(fresh, HANDBOOK_FEATURES)


def _outcome(
    scenario: str, rows: pd.DataFrame, flagged: np.ndarray, age_s: float, delay_s: float
) -> Outcome:
    """Replay the decisions: declined if flagged within the authorization window, a
    flagged fraud blocks its card from the decision's arrival on; the frauds completed
    are lost."""
    blocked: dict[int, int] = {}  # card -> blocked from (µs)
    lost = saved = 0.0
    n_lost = n_saved = declined = 0
    delay_us, in_time = int(delay_s * 1e6), delay_s <= AUTH_WINDOW_S
    stamps = rows[schema.TX_DATETIME].dt.as_unit("us").astype("int64").tolist()
    for t, card, amount, fraud, flag in zip(
        stamps, rows[schema.CUSTOMER_ID].tolist(), rows[schema.TX_AMOUNT].tolist(),
        rows[schema.TX_FRAUD].tolist(), flagged.tolist(), strict=True,
    ):  # fmt: skip
        stopped = t >= blocked.get(card, 1 << 62) or (flag and in_time)
        if stopped:
            if fraud:
                n_saved, saved = n_saved + 1, saved + amount
            else:
                declined += 1
        elif fraud:
            n_lost, lost = n_lost + 1, lost + amount
        if flag and fraud:
            blocked[card] = min(blocked.get(card, 1 << 62), t + delay_us)
    return Outcome(
        scenario, age_s, delay_s, int(rows[schema.TX_FRAUD].sum()), n_lost, round(lost, 2),
        n_saved, round(saved, 2), int(flagged.sum()), declined,
    )  # fmt: skip


def _costs(
    world: World, settings: Settings, rows: pd.DataFrame, quick: bool
) -> tuple[list[Cost], float, float]:
    """CPU of event-at-a-time, micro-batch and nightly scoring; and the p99 time (s) of one
    event and of one micro-batch of the real processor (its decision delay)."""
    from mlsd.streaming import open_event_log
    from mlsd.streaming.batch import score_batch, to_transactions
    from mlsd.streaming.codec import transaction_record
    from mlsd.streaming.processor import StreamConfig
    from mlsd.streaming.wiring import open_processor

    txs = to_transactions(rows)
    start = rows[schema.TX_DATETIME].min().to_pydatetime()
    world.store.materialize(end=start)  # the online store as of the replay's start
    costs, p99 = [], []
    for mode, batch, n in (("streaming, one event at a time", 1, 300 if quick else 3000),
                           ("micro-batch of 256", 256, len(txs))):  # fmt: skip
        topic = f"tx-{batch}"
        events = open_event_log(settings)
        events.create_topic(topic, 1)
        events.publish(topic, [transaction_record(tx) for tx in txs[:n]])
        events.close()
        config = StreamConfig(input_topic=topic, output_topic=f"decisions-{batch}",
                              dead_letter_topic=f"dead-{batch}", group=f"lab-{batch}",
                              batch=batch, partitions=1)  # fmt: skip
        # the processor as the losses above model it: stored features, one payment behind
        # (its window features, `stream run`'s default, are not measured here yet)
        processor, close = open_processor(
            settings, config, follow_alias=False, window_features=False
        )
        steps: list[float] = []
        try:
            cpu, wall = time.process_time(), time.perf_counter()
            while processor.stats.scored + processor.stats.dead_lettered < n:
                began = time.perf_counter()
                if processor.step():
                    steps.append(time.perf_counter() - began)
            processor.commit()
            if processor.stats.scored != n:
                raise RuntimeError(f"the processor decided {processor.stats.scored} of {n}")
            costs.append(Cost(mode, n, time.process_time() - cpu, time.perf_counter() - wall))
        finally:
            close()
        p99.append(float(np.quantile(steps, 0.99)))
    day0, day1 = (
        str(d.date()) for d in (rows[schema.TX_DATETIME].min(), rows[schema.TX_DATETIME].max())
    )
    cpu, wall = time.process_time(), time.perf_counter()
    report = score_batch(settings, world.dataset_dir, day0, day1, out_dir=settings.path("scores"))
    costs.append(Cost("nightly batch (score-batch)", report.rows, time.process_time() - cpu,
                      time.perf_counter() - wall))  # fmt: skip
    return costs, p99[0], p99[1]


def _plot(outcomes: list[Outcome], costs: list[Cost]) -> Any:
    def draw(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (loss_ax, cpu_ax) = plt.subplots(1, 2, figsize=(13, 4.6))
        for kind, style in (("delay", "-o"), ("stale features only", "--s"),
                            ("late decision only", ":^")):  # fmt: skip
            mine = [o for o in outcomes if o.scenario.startswith(kind)]
            xs = [max(o.decision_delay_s, o.feature_age_s) / 60 for o in mine]
            loss_ax.plot(xs, [o.euros_lost for o in mine], style, label=kind)
        for o in outcomes:
            if o.scenario.startswith("micro-batch") or "snapshot" in o.scenario:
                loss_ax.axhline(o.euros_lost, lw=0.8, color="grey")
                loss_ax.text(0.3, o.euros_lost, o.scenario, fontsize=7, va="bottom")
        loss_ax.set(xscale="symlog", xlabel="delay (minutes)", ylabel="€ lost to fraud",
                    title="€ lost over the replayed days")  # fmt: skip
        loss_ax.set_xticks(list(DELAYS_MIN), [str(d) for d in DELAYS_MIN])
        loss_ax.set_xlim(left=0)
        loss_ax.legend(fontsize=8)
        cpu_ax.bar([c.mode for c in costs], [c.cpu_s_per_million for c in costs], color="tab:blue")
        cpu_ax.set(yscale="log", ylabel="CPU seconds per million events",
                   title="scoring cost (process CPU)")  # fmt: skip
        cpu_ax.tick_params(axis="x", labelsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    return draw


class FreshnessExperiment:
    """€ lost against feature staleness and decision delay; CPU per million events."""

    name = "freshness"
    question = QUESTION

    def run(self, ctx: LabContext) -> Findings:
        """Build and serve the world, replay its last days at each delay, measure costs."""
        config, replay = _config(ctx.quick, ctx.seed)
        n = config.n_days
        with ctx.step("simulate, build features, train and register", 2) as advance:
            world = make_world(ctx.workdir, config)
            settings = Settings(home=ctx.workdir / "home", prediction_log_flush_seconds=0.02)
            advance()
            _register(world, settings, world.frame(8, n - replay - 8), ctx.seed)
            model = _served(settings)
            threshold = model.threshold
            advance()
        outcomes: list[Outcome] = []
        try:
            rows = world.frame(n - replay, replay)  # sorted by transaction id: by time
            rows = rows[list(_ENTITY)].reset_index(drop=True)
            when = rows[schema.TX_DATETIME]
            with ctx.step("replay at each delay", 2 * len(DELAYS_MIN) + 1) as advance:
                fresh = model.predict(_as_of(world, rows, when)) >= threshold
                for d in DELAYS_MIN:
                    age = pd.Timedelta(minutes=d)
                    stale = model.predict(_as_of(world, rows, when - age)) >= threshold
                    s = 60.0 * d
                    outcomes.append(_outcome(f"delay {d} min", rows, stale, s, s))
                    outcomes.append(_outcome(f"stale features only, {d} min", rows, stale, s, 0.0))
                    outcomes.append(_outcome(f"late decision only, {d} min", rows, fresh, 0.0, s))
                    advance()
                for label, freq in (("snapshot every 30 min", "30min"), ("nightly snapshot", "1D")):
                    snap = model.predict(_as_of(world, rows, when.dt.floor(freq))) >= threshold
                    outcomes.append(
                        _outcome(f"{label}, decision on time", rows, snap, float("nan"), 0.0)
                    )
                advance()
            with ctx.step("CPU: streaming, micro-batch, nightly batch", 1) as advance:
                costs, event_p99, batch_p99 = _costs(world, settings, rows, ctx.quick)
                micro = (
                    model.predict(_as_of(world, rows, when - pd.Timedelta(seconds=batch_p99)))
                    >= threshold
                )
                outcomes.append(_outcome(f"micro-batch processor (p99 {batch_p99 * 1000:.0f} ms)",
                                         rows, micro, batch_p99, batch_p99))  # fmt: skip
                advance()
        finally:
            world.close()
        return _findings(
            config, replay, threshold, outcomes, costs, event_p99, batch_p99, len(rows)
        )


_ENTITY = (schema.TRANSACTION_ID, schema.TX_DATETIME, schema.CUSTOMER_ID, schema.TERMINAL_ID,
           schema.TX_AMOUNT, schema.TX_FRAUD)  # fmt: skip


def _served(settings: Settings) -> Any:
    """fraud@champion as serving loads it (the registry's ONNX / LightGBM runtime)."""
    from mlsd.inference.host import ModelHost
    from mlsd.registry import Registry

    registry = Registry.open(settings)
    try:
        return ModelHost(registry).load("fraud@champion")
    finally:
        registry.close()


def _findings(
    config: SimulatorConfig, replay: int, threshold: float, outcomes: list[Outcome],
    costs: list[Cost], event_p99: float, batch_p99: float, n_rows: int,
) -> Findings:  # fmt: skip
    by = {o.scenario: o for o in outcomes}
    zero, thirty, sixty = by["delay 0 min"], by["delay 30 min"], by["delay 60 min"]
    one, five = by["delay 1 min"], by["delay 5 min"]
    stale30, late30 = by["stale features only, 30 min"], by["late decision only, 30 min"]
    nightly = by["nightly snapshot, decision on time"]
    micro = next(o for o in outcomes if o.scenario.startswith("micro-batch"))
    cpu = {c.mode: c.cpu_s_per_million for c in costs}
    stream, mb, night = (cpu[k] for k in cpu)
    answer = (
        f"Over {replay} replayed days ({n_rows:,} payments, {zero.frauds} frauds), deciding at "
        f"once on fresh features loses {zero.frauds_lost} frauds, {zero.euros_lost:,.0f} €; a "
        f"30-minute delay loses {thirty.frauds_lost} frauds, {thirty.euros_lost:,.0f} € "
        f"(+{thirty.euros_lost - zero.euros_lost:,.0f} €), 60 minutes "
        f"{sixty.frauds_lost}, {sixty.euros_lost:,.0f} € (1 minute: {one.frauds_lost}, "
        f"{one.euros_lost:,.0f} €; 5 minutes: {five.frauds_lost}, {five.euros_lost:,.0f} €). "
        f"Split into its two effects, 30-minute-old features decided on time lose "
        f"{stale30.euros_lost:,.0f} €, fresh features decided 30 minutes late "
        f"{late30.euros_lost:,.0f} €: a fraud flagged late has completed, and so have the "
        "card's next frauds within the delay. "
        f"Mitigations: the real micro-batch processor decides within {batch_p99 * 1000:.0f} ms "
        f"(p99 of a 256-event batch on the embedded log): {micro.euros_lost:,.0f} € lost; "
        f"deciding on time on the nightly feature snapshot loses {nightly.euros_lost:,.0f} €. "
        f"CPU per million events: {stream:,.0f} s streaming one event at a time, {mb:,.0f} s "
        f"in micro-batches of 256, {night:,.0f} s nightly batch."
    )
    method = (
        f"The simulator's world ({config.n_customers:,} cards, {config.n_terminals:,} "
        f"terminals, {config.n_days} days, the handbook's three fraud scenarios and, from day "
        f"{config.n_days // 2}, {max(2, config.n_customers // 100)} stolen cards a day drained "
        f"in bursts of {BURST} payments up to 150 €, a minute apart) is built into "
        "the real feature store (DuckDB offline tables). LightGBM (80 trees) is trained on "
        f"days 8 to {config.n_days - replay - 1} and registered as fraud@champion; it flags "
        f"the top {ALERT_SHARE:.0%} of its training scores (threshold {threshold:.3f}) and is "
        f"loaded as serving loads it. The last {replay} days are scored at each delay: stored "
        "features from the feature store's point-in-time join at t − delay, request features "
        f"at t. A payment flagged within the authorization window ({AUTH_WINDOW_S:g} s, an "
        "assumption) is declined; a flagged fraud blocks its card from t + delay on "
        "(the card's later payments are declined: frauds prevented, genuine ones counted as "
        "declined); a fraud not stopped is lost with its amount. 'Stale features only' decides "
        "on time on old features, 'late decision only' decides late on fresh ones. Snapshots: "
        "the features as of the last 30-minute boundary or midnight, decided on time. "
        "Micro-batch: the real processor (`mlsd stream run`'s, embedded log, batch 256) over "
        f"all {n_rows:,} payments; its decision delay is the p99 time of one step (poll, "
        "features, model, publish), at which the features are also taken. One event at a "
        f"time: the same processor with batch 1 over the first events (p99 step "
        f"{event_p99 * 1000:.1f} ms). Nightly batch: `score-batch` over the replayed days. "
        "CPU is the process CPU time (every thread: the prediction log's flusher included) of "
        "each, per million events; the processors' prediction log flushes every 20 ms. The "
        "card block is the one mitigation a decision triggers here: terminal blocks and "
        "chargebacks are left out."
    )
    table: list[Row] = [
        {
            "scenario": o.scenario, "frauds lost": o.frauds_lost, "€ lost": o.euros_lost,
            "frauds prevented": o.frauds_prevented, "€ saved": o.euros_saved,
            "alerts": o.alerts, "genuine declined": o.genuine_declined,
        }
        for o in outcomes
    ]  # fmt: skip
    cost_rows: list[Row] = [
        {"scoring": c.mode, "events": c.events, "CPU s": round(c.cpu_s, 3),
         "wall s": round(c.wall_s, 3), "CPU s per million events": round(c.cpu_s_per_million, 1)}
        for c in costs
    ]  # fmt: skip
    return Findings(
        answer=answer,
        method=f"{method}\n\n{markdown_table(cost_rows)}",
        table=table,
        results={
            "outcomes": [asdict(o) for o in outcomes],
            "costs": [{**asdict(c), "cpu_s_per_million": c.cpu_s_per_million} for c in costs],
            "event_step_p99_s": event_p99,
            "batch_step_p99_s": batch_p99,
            "threshold": threshold,
            "delays_min": list(DELAYS_MIN),
        },
        plots={"freshness": _plot(outcomes, costs)},
    )


EXPERIMENT = FreshnessExperiment()
