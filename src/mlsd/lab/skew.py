"""What happens if your training and serving features get out of sync?

A simulated world is built into the real feature store (DuckDB offline tables) and a
champion is trained on its point-in-time features, as training sees them. The last days are
then replayed in time order through the real `ScoringPipeline` (the `FeatureAssembler`
reading a SQLite online store, the ONNX model), once per kind of skew:

- **none**: each transaction's own feature rows are written just before it is scored, so
  serving reads exactly what the offline point-in-time join gave training (the reference);
- **customer one transaction behind**: the customer's rows are written after scoring, as a
  feed that updates the store from the scored transaction serves: the store holds the state
  before the current transaction, while training's windows include it;
- **materialization a day stale**: no feed; an hourly materialization whose end lags 24 h;
- **amount in cents**: the client sends the amount in cents (×100): one request feature;
- **TTL 1 h**: serving reads the customer view with a 1 h TTL instead of its 30 days, on
  the feed as served today (one transaction behind): older rows served as fill values;
- **wrong key prefix**: the rows are written under one namespace and read under another
  (a Redis key prefix mismatch; here another SQLite file): every lookup misses.

For each, the AUC, AP and Card Precision@k lost on the replayed days against the reference
scores, and when each check (`mlsd.lab.skew_checks`) first fires.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.transaction import Transaction
from mlsd.features.handbook import CUSTOMER_VIEW, HANDBOOK_FEATURES, TERMINAL_VIEW
from mlsd.features.offline import ViewRequest
from mlsd.features.online import OnlineStore, SqliteOnlineStore
from mlsd.features.store import FeatureStore
from mlsd.features.vectors import OnlineVectors, VectorPlan, request_values
from mlsd.inference.assemble import FeatureAssembler
from mlsd.inference.endpoint import VersionEndpoint
from mlsd.inference.metrics import ServingMetrics
from mlsd.inference.observers import ScoringRequest
from mlsd.inference.pipeline import ScoringPipeline
from mlsd.inference.routing import Variant
from mlsd.inference.spec import LoadedModel
from mlsd.inference.store_probe import StoreProbe
from mlsd.lab.experiment import Findings, LabContext, Row
from mlsd.lab.replay_world import Replayer, World, day_start, make_world, train_model
from mlsd.lab.skew_checks import (
    CHECKS,
    Firing,
    Traffic,
    not_served,
    parity_check,
    window_checks,
)
from mlsd.registry.profile import ReferenceProfile, build_profile
from mlsd.training.dataset import matrix
from mlsd.training.metrics import evaluate

QUESTION = (
    "What happens if your training and serving features get out of sync? Serve the champion "
    "with each kind of skew (customer features one transaction behind, a materialization a "
    "day stale, the amount in cents, a TTL expiring features early, a wrong key prefix): "
    "how much AUC / AP / Card Precision@100 is lost, and which check catches it, how soon?"
)

SKEWS = ("none", "one behind", "stale 1 day", "cents", "TTL 1 h", "wrong prefix")
SHORT_TTL = timedelta(hours=1)
STALE = pd.Timedelta(days=1)


#: The customer view's rows, written after scoring where the feed is one transaction behind.
BEHIND = ("one behind", "TTL 1 h")
HOUR_US = 3_600_000_000


class _Served:
    """What serving reads: the feature store's vectors from `online`, the TTL of the views in
    `ttl` overridden (a serving-side TTL out of sync with the view's definition)."""

    def __init__(
        self, store: FeatureStore, online: OnlineStore, ttl: Mapping[str, timedelta] | None = None
    ) -> None:
        self.store = store
        self.online = online
        self.ttl = dict(ttl or {})
        self._plans: dict[tuple[str, ...], VectorPlan] = {}

    def online_vectors(
        self, requests: Sequence[Mapping[str, Any]], features: Sequence[str]
    ) -> OnlineVectors:
        """The store's own path when nothing is overridden; its plan with other TTLs else."""
        if not self.ttl:
            return self.store.online_vectors(requests, features, online=self.online)
        plan = self._plans.get(tuple(features))
        if plan is None:
            reqs = [
                ViewRequest(dataclasses.replace(r.view, ttl=self.ttl[r.view.name]), r.version,
                            r.features)  # the stored version: only the TTL read differs
                if r.view.name in self.ttl else r
                for r in self.store.resolve(features)
            ]  # fmt: skip
            plan = self._plans[tuple(features)] = VectorPlan.make(reqs, list(features))
        return request_values(plan, self.online, requests, float("nan"))


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One skew's replay: its metrics, their loss against the reference, its checks."""

    skew: str
    rows: int
    metrics: dict[str, float]
    lost: dict[str, float]
    rows_off: float  # share of rows served other values than training's
    rows_not_served: float
    rows_degraded: float
    caught: dict[str, Firing | None]


def _world_config(quick: bool, seed: int) -> SimulatorConfig:
    customers, terminals, days = (500, 1000, 46) if quick else (1000, 2000, 65)
    return SimulatorConfig.scaled(customers, terminals, n_days=days, seed=seed)


def _replay(
    world: World,
    skew: str,
    model: LoadedModel,
    rows: pd.DataFrame,
    period: tuple[int, int],
    workdir: Path,
    parity: tuple[int, int],
    advance: Any,
) -> tuple[Traffic, Firing | None]:
    """Score `rows` (time order) through the pipeline with `skew` injected."""
    store, start_us = world.store, period[0]
    start, end = (pd.Timestamp(t * 1000, tz="UTC").to_pydatetime() for t in period)
    served = SqliteOnlineStore(workdir / f"served-{SKEWS.index(skew)}.sqlite")
    written = served
    if skew == "wrong prefix":  # materialized and fed under one namespace, read under another
        written = SqliteOnlineStore(workdir / f"written-{SKEWS.index(skew)}.sqlite")
    replayer = None
    if skew == "stale 1 day":
        store.materialize(end=start - STALE, online=served)
    else:
        replayer = Replayer(store, start, end, online=written)
    now = [0.0]
    reqs = store.batch_requests()
    probe = StoreProbe(
        lambda: {r.view.name: served.watermark(r.view.name, r.version) for r in reqs},
        interval_s=60.0, clock=lambda: now[0],
    )  # fmt: skip
    metrics = ServingMetrics()
    ttl = {CUSTOMER_VIEW.name: SHORT_TTL} if skew == "TTL 1 h" else None
    pipeline = ScoringPipeline(
        FeatureAssembler(_Served(store, served, ttl), metrics, probe=probe), metrics
    )
    pipeline.add_endpoint(model.name, Variant("champion", VersionEndpoint(model)))
    first_views = [TERMINAL_VIEW.name] if skew in BEHIND else None
    scale = 100.0 if skew == "cents" else 1.0
    sample, every_h = parity
    parity_at, hour, fired = start_us, start_us + HOUR_US, None
    values, scores, off, degraded = [], [], [], []
    step = max(1, len(rows) // 20)
    columns = zip(
        rows[schema.TRANSACTION_ID].tolist(), rows[schema.CUSTOMER_ID].tolist(),
        rows[schema.TERMINAL_ID].tolist(), rows[schema.TX_AMOUNT].tolist(),
        rows[schema.TX_DATETIME].dt.to_pydatetime().tolist(), rows["_us"].tolist(),
        strict=True,
    )  # fmt: skip
    for i, (tid, customer, terminal, amount, when, when_us) in enumerate(columns):
        now[0] = (when_us - start_us) / 1e6
        while skew == "stale 1 day" and when_us >= hour:  # the hourly job, a day behind
            store.materialize(end=_dt(hour) - STALE, online=served)
            hour += HOUR_US
        while when_us >= parity_at:  # the scheduled parity job
            why = parity_check(store, served, sample, seed=0) if fired is None else None
            if why is not None:
                fired = Firing(i, (parity_at - start_us) / 6e7, why)
            parity_at += every_h * HOUR_US
        if replayer is not None:
            replayer.before(customer, terminal, when_us, first_views)
        tx = Transaction(tid, customer, terminal, amount * scale, when)
        batch = pipeline.score_sync(ScoringRequest(str(tid), "stream", [tx]))
        if replayer is not None and first_views is not None:
            replayer.before(customer, terminal, when_us, [CUSTOMER_VIEW.name])
        values.append(batch.values[0])
        scores.append(float(batch.scores[0]))
        off.append(not_served(batch.statuses[0]))
        degraded.append(batch.degraded)
        if i % step == 0:
            advance()
    counted = sum(
        sample.value
        for family in metrics.degraded.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )
    if counted != sum(degraded):  # the per-row flags are what the counter counts
        raise RuntimeError(f"mlsd_degraded_total {counted} != {sum(degraded)} degraded rows")
    served.close()
    if written is not served:
        written.close()
    sent = rows[[schema.CUSTOMER_ID, schema.TERMINAL_ID, schema.TX_DATETIME]].copy()
    sent[schema.TX_AMOUNT] = rows[schema.TX_AMOUNT].to_numpy() * scale
    traffic = Traffic(
        sent.reset_index(drop=True), np.stack(values), np.array(scores),
        np.array(off), np.array(degraded),
    )  # fmt: skip
    return traffic, fired


def _dt(us: int) -> Any:
    return pd.Timestamp(us * 1000, tz="UTC").to_pydatetime()


def _score(frame: pd.DataFrame, scores: np.ndarray, k: int) -> dict[str, float]:
    got = evaluate(frame, scores, top_k=k)
    return {
        "AUC": got["auc_roc"],
        "AP": got["average_precision"],
        "CP@k": got[f"card_precision_at_{k}"],
    }


def _cell(fired: Firing | None) -> str:
    return "—" if fired is None else f"row {fired.rows:,} ({fired.minutes:,.0f} min)"


def _plot(outcomes: list[Outcome], k: int) -> Any:
    def draw(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (bars, grid) = plt.subplots(1, 2, figsize=(15, 5.2), width_ratios=(1, 1.25))
        names = [o.skew for o in outcomes]
        x = np.arange(len(names))
        for j, metric in enumerate(("AUC", "AP", "CP@k")):
            label = f"CP@{k}" if metric == "CP@k" else metric
            bars.bar(x + (j - 1) * 0.27, [o.lost[metric] for o in outcomes], 0.27, label=label)
        bars.axhline(0, color="black", lw=0.8)
        bars.set_xticks(x, names, rotation=20)
        bars.set(ylabel="lost against training-consistent features",
                 title="metric lost per skew (replayed days)")  # fmt: skip
        bars.legend()
        shown = np.array([[0.0 if o.caught[c] is None else 1.0 for o in outcomes] for c in CHECKS])
        grid.imshow(shown, cmap="Greens", vmin=0, vmax=1.6, aspect="auto")
        grid.set_xticks(x, names, rotation=20)
        grid.set_yticks(np.arange(len(CHECKS)), CHECKS)
        for r, check in enumerate(CHECKS):
            for c, o in enumerate(outcomes):
                fired = o.caught[check]
                text = "—" if fired is None else f"row {fired.rows:,}\n{fired.minutes:,.0f} min"
                grid.text(c, r, text, ha="center", va="center", fontsize=8)
        grid.set_title("which check fires, and after how much traffic")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    return draw


class SkewExperiment:
    """Metric lost and checks fired for each kind of training-serving skew."""

    name = "skew"
    question = QUESTION

    def run(self, ctx: LabContext) -> Findings:
        """Build the world, train the champion, replay the last days once per skew."""
        config = _world_config(ctx.quick, ctx.seed)
        n = config.n_days
        replay_days, test_days, train_days = (1, 4, 14) if ctx.quick else (5, 7, 21)
        step, window = (50, 200) if ctx.quick else (50, 500)
        parity = (50, 12) if ctx.quick else (200, 6)
        first_replay = n - replay_days
        features = list(HANDBOOK_FEATURES)
        with ctx.step("simulate, build features, train the champion", 3) as advance:
            world = make_world(ctx.workdir, config)
            advance()
            train = world.frame(first_replay - test_days - train_days, train_days)
            test = world.frame(first_replay - test_days, test_days)
            model = train_model(train, "fraud", 1, seed=ctx.seed)
            advance()
            profile: ReferenceProfile = build_profile(
                matrix(train, features), features, scores=model.predict(matrix(test, features))
            )
            truth = world.frame(first_replay, replay_days)
            advance()
        start = day_start(world.day(first_replay))
        period = (_us(start), _us(start + timedelta(days=replay_days)))
        rows = truth.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID], kind="stable")
        rows = rows.reset_index(drop=True)
        rows["_us"] = rows[schema.TX_DATETIME].dt.as_unit("us").astype("int64").to_numpy()
        expected = matrix(rows, features)
        k = max(1, round(100 * config.n_customers / 5000))
        reference = _score(rows, model.predict(expected), k)
        outcomes: list[Outcome] = []
        try:
            for skew in SKEWS:
                with ctx.step(f"replay with skew: {skew}", 21) as advance:
                    traffic, parity_fired = _replay(
                        world, skew, model, rows, period, ctx.workdir, parity, advance
                    )
                caught = {"parity": parity_fired}
                caught.update(window_checks(world.store, profile, features, traffic, step, window))
                got = _score(rows, traffic.scores, k)
                outcomes.append(Outcome(
                    skew, len(rows), got, {m: reference[m] - got[m] for m in got},
                    float((traffic.values != expected).any(axis=1).mean()),
                    float(traffic.not_served.mean()), float(traffic.degraded.mean()), caught,
                ))  # fmt: skip
        finally:
            world.close()
        table: list[Row] = [
            {
                "skew": o.skew, "rows": o.rows,
                "AUC": round(o.metrics["AUC"], 4), "AUC lost": round(o.lost["AUC"], 4),
                "AP": round(o.metrics["AP"], 4), "AP lost": round(o.lost["AP"], 4),
                f"CP@{k}": round(o.metrics["CP@k"], 4), f"CP@{k} lost": round(o.lost["CP@k"], 4),
                "rows ≠ training %": round(100 * o.rows_off, 1),
                "rows not served %": round(100 * o.rows_not_served, 1),
                "rows degraded %": round(100 * o.rows_degraded, 1),
                **{c: _cell(o.caught[c]) for c in CHECKS},
            }
            for o in outcomes
        ]  # fmt: skip
        return Findings(
            answer=_answer(outcomes, k),
            method=_method(config, train_days, test_days, replay_days, (step, window), parity, k),
            table=table,
            results={
                "k": k,
                "step_rows": step,
                "drift_window_rows": window,
                "parity_sample": parity[0],
                "parity_every_hours": parity[1],
                "reference": reference,
                "outcomes": [dataclasses.asdict(o) for o in outcomes],
            },
            plots={"skew": _plot(outcomes, k)},
        )


def _us(when: Any) -> int:
    return int(pd.Timestamp(when).value // 1000)


def _first(o: Outcome) -> str:
    fired = sorted(
        ((f.rows, f.minutes, c) for c, f in o.caught.items() if f is not None),
        key=lambda t: (t[0], t[1]),
    )
    if not fired:
        return "no check fired"
    rows, minutes, check = fired[0]
    others = ", ".join(c for _, _, c in fired[1:])
    return (
        f"first caught by {check} after {rows:,} rows ({minutes:,.0f} min of traffic)"
        + (f", then by {others}" if others else "")
        + "; missed by "
        + (", ".join(c for c in CHECKS if o.caught[c] is None) or "none")
    )


def _change(lost: float) -> str:
    return f"{0.0 - lost:+.4f}"


def _answer(outcomes: list[Outcome], k: int) -> str:
    base = outcomes[0]
    by = {o.skew: o for o in outcomes}
    parts = [
        f"With training-consistent features (each transaction's own rows written before it is "
        f"scored) serving differs from training on {100 * base.rows_off:.1f} % of "
        f"{base.rows:,} rows and its metrics move by AUC {_change(base.lost['AUC'])}, AP "
        f"{_change(base.lost['AP'])}, CP@{k} {_change(base.lost['CP@k'])} (AUC "
        f"{base.metrics['AUC']:.3f}, AP {base.metrics['AP']:.3f}, CP@{k} "
        f"{base.metrics['CP@k']:.3f}; the changes below are against it); checks fired on it "
        "(false alarms): " + (", ".join(c for c in CHECKS if base.caught[c] is not None) or "none")
        + "."
    ]  # fmt: skip
    for o in outcomes[1:]:
        note = ""
        if o.skew == "TTL 1 h" and "one behind" in by:
            alone = _change(by["one behind"].lost["AP"])
            note = f" (on the one-behind feed, which alone moves AP {alone})"
        parts.append(
            f"**{o.skew}**: AUC {_change(o.lost['AUC'])}, AP {_change(o.lost['AP'])}, "
            f"CP@{k} {_change(o.lost['CP@k'])}{note}; {100 * o.rows_off:.0f} % of rows served "
            f"other values than training's, {100 * o.rows_not_served:.0f} % without a stored "
            f"feature; {_first(o)}."
        )
    for check, why in (
        ("degraded counter", "it counts a store that fails or lost the watermarks it was seen "
         "with, not one that answers every lookup with nothing from the start"),
        ("schema", "every skew serves well-typed finite floats"),
    ):  # fmt: skip
        fired = [o.skew for o in outcomes if o.caught[check] is not None]
        parts.append(
            f"The {check} check fired on " + (", ".join(fired) if fired else f"none: {why}") + "."
        )
    return " ".join(parts)


def _method(
    config: SimulatorConfig, train_days: int, test_days: int, replay_days: int,
    windows: tuple[int, int], parity: tuple[int, int], k: int,
) -> str:  # fmt: skip
    return (
        f"The simulator's world ({config.n_customers:,} cards, {config.n_terminals:,} "
        f"terminals, {config.n_days} days) is built into the real feature store (DuckDB "
        f"offline tables of the handbook's views). The champion (LightGBM, 60 trees, ONNX "
        f"Runtime; threshold at its top 1 % of training scores) is trained on {train_days} "
        f"days of point-in-time features; its reference profile (`build_profile`, as "
        f"registration stores it) holds those training features and its scores on the "
        f"{test_days} days after. The last {replay_days} days are replayed in time order, "
        "one transaction per request, through the real `ScoringPipeline` (`FeatureAssembler` "
        "with serving's `StoreProbe`, a SQLite online store of its own per skew), once per "
        "skew: none (each transaction's rows written just before scoring: the reference), "
        "customer one transaction behind (the customer view's rows written after scoring, "
        "the terminal's before), a day stale (the store materialized with "
        "`FeatureStore.materialize` every replayed hour up to 24 h before), the amount sent "
        "in cents (×100), the customer view read with a 1 h TTL (its definition says 30 "
        "days) on the one-behind feed, and a wrong key prefix (rows materialized and written "
        "into one store, read from another namespace that holds nothing). Metrics are the "
        f"handbook's (AUC ROC, average precision, Card Precision@k with k = {k}, the "
        "handbook's 100 a day per 5,000 cards scaled), each skew's loss against the model's "
        "scores on the offline point-in-time features of the same rows. Checks: live parity "
        f"of the serving store ({parity[0]} sampled entities a view, every {parity[1]} "
        f"replayed hours from the first request); every {windows[0]} served rows, on those "
        "rows: the skew report (`skew_report` against the offline values, a feature "
        "differing on more than 1 % of rows), the model signature's schema check and the "
        "feature statuses (more than 5 % of rows served a stored feature missing, expired or "
        f"from the future), and on the last {windows[1]} rows drift against the reference "
        "profile (a feature, the score or the PCA error at PSI > 0.25; not the weekend and "
        "night flags, which any window shorter than a week drifts on); serving's degraded "
        "counter on every row. 'row N (M min)': the check first fired once N rows had been "
        "scored, M replayed minutes after the first (the replay starts at midnight: the "
        "night's traffic is thin)."
    )


EXPERIMENT = SkewExperiment()
