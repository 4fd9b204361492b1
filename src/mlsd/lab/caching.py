"""When does caching predictions become dangerous, and which invalidation rule prevents it?

A small simulated world (the handbook's simulator with a card-testing scenario on its last
days) is built into the real feature store; two LightGBM versions are trained on it. Then a
quiet day and a card-testing day are replayed in time order, each transaction's own feature
rows written into the online store just before it is scored, with repeats (a share of the
requests sent again a little later: client retries, double submits). The model version
changes halfway through each day, as a promotion would.

Every request is scored fresh (its current features, the current version: the decision the
cache should agree with), and through one real `MemoryCache` per (rule, TTL), on a simulated
clock so the TTL counts replayed time:

- **request key**: the cache is in front of the feature lookup, keyed by (card, terminal,
  amount in whole euros), what a cache of "inference results" often is; with or without the
  model version in the key (emptied on a version change), with or without the freshness bound
  (`mlsd.inference.cached.Freshness`, tolerance 0: the row's newest feature event);
- **feature-values key**: mlsd's own (`predict_cached_sync`, the pipeline's cache step): keyed
  by model version and the hash of the feature row, with or without the freshness bound.

A decision is stale when the cached one differs from the fresh one. Latency and compute are
the measured times of the operations each rule performs for each request (feature lookup,
cache lookup and write, model call).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.events import CardTesting
from mlsd.data.transaction import Transaction
from mlsd.inference.assemble import FeatureAssembler
from mlsd.inference.cache import MemoryCache, hash_rows
from mlsd.inference.cached import Freshness, predict_cached_sync
from mlsd.inference.metrics import ServingMetrics
from mlsd.inference.spec import LoadedModel
from mlsd.lab.experiment import Findings, LabContext, Row
from mlsd.lab.replay_world import Replayer, World, day_start, make_world, train_model

QUESTION = (
    "When does caching predictions become dangerous? How does the TTL trade hit rate, latency "
    "and cost saved against stale decisions (a cached decision that differs from a fresh one), "
    "in a quiet period and during card testing, and which invalidation rule (model version, "
    "feature-values key, feature-freshness bound) prevents it?"
)

TTLS = (0, 10, 60, 300, 900, 3600)
QUICK_TTLS = (0, 60, 3600)
#: Share of requests sent again, and the mean delay (s) before the repeat arrives.
REPEAT_SHARE, REPEAT_DELAY_S = 0.25, 120.0
#: Above this stale-decision rate the plot calls caching dangerous (1 in 1,000 decisions).
DANGER = 0.001


@dataclass(frozen=True)
class Rule:
    """One cache design: what keys it, and what invalidates it."""

    name: str
    key: str  # "request" or "features"
    versioned: bool
    freshness: bool


RULES = (
    Rule("request key, TTL only", "request", False, False),
    Rule("request key + version", "request", True, False),
    Rule("request key + version + freshness", "request", True, True),
    Rule("feature-values key + version (mlsd)", "features", True, False),
    Rule("feature-values key + version + freshness", "features", True, True),
)


@dataclass(frozen=True)
class Point:
    """One (period, rule, TTL): what the cache did to the replayed requests."""

    period: str
    rule: str
    ttl_s: int
    requests: int
    hit_rate: float
    stale_rate: float
    stale: int
    frauds_missed: int
    #: Answers after the version change that the old version had filed, and how many of
    #: them decided otherwise than the new version: what keying by version prevents.
    across_version: int
    across_version_stale: int
    mean_latency_us: float
    hit_path_us: float
    miss_path_us: float
    compute_saved: float


@dataclass
class _Arm:
    rule: Rule
    ttl_s: int
    cache: MemoryCache
    hits: int = 0
    stale: int = 0
    missed: int = 0
    across: int = 0
    across_stale: int = 0
    filed_after: set[str] = field(default_factory=set)  # request keys filed by the new version
    requests: int = 0
    hit_s: list[float] = field(default_factory=list)  # the cache calls of a hit
    miss_s: list[float] = field(default_factory=list)  # ... of a miss (the model: features key)


class _Clock:
    """Replayed time in seconds, the caches' clock: the TTL counts simulated time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _world_config(quick: bool, seed: int) -> SimulatorConfig:
    """The world: card testing over the second part of the period, so the model has seen it."""
    customers, terminals, days = (200, 400, 20) if quick else (1000, 2000, 40)
    base = SimulatorConfig.scaled(customers, terminals, n_days=days, seed=seed)
    burst = CardTesting(
        name="card-testing",
        start=base.start_date + pd.Timedelta(days=days // 2).to_pytimedelta(),
        bursts_per_day=max(10, customers // 5),
        tx_per_burst=10,
        max_amount=2.0,
        gap_seconds=30.0,
    )
    return base.with_changes(scenarios=[burst])


def _traffic(world: World, day: int, rng: np.random.Generator) -> pd.DataFrame:
    """One day's transactions in arrival order, a share of them repeated a little later."""
    start = pd.Timestamp(world.day(day), tz="UTC")
    tx = world.transactions
    rows = tx[
        (tx[schema.TX_DATETIME] >= start) & (tx[schema.TX_DATETIME] < start + pd.Timedelta(days=1))
    ]
    base = pd.DataFrame(
        {
            "customer": rows[schema.CUSTOMER_ID].to_numpy(np.int64),
            "terminal": rows[schema.TERMINAL_ID].to_numpy(np.int64),
            "amount": rows[schema.TX_AMOUNT].to_numpy(np.float64),
            "event_us": rows[schema.TX_DATETIME].dt.as_unit("us").astype("int64").to_numpy(),
            "repeat": False,
        }
    )
    base["arrival_us"] = base["event_us"]
    again = base[rng.random(len(base)) < REPEAT_SHARE].copy()
    again["repeat"] = True
    delay = rng.exponential(REPEAT_DELAY_S, size=len(again)) * 1e6
    again["arrival_us"] = again["event_us"] + delay.astype(np.int64)
    out = pd.concat([base, again], ignore_index=True)
    return out.sort_values(["arrival_us", "repeat"], kind="stable").reset_index(drop=True)


def _replay(
    world: World,
    period: str,
    day: int,
    models: tuple[LoadedModel, LoadedModel],
    ttls: tuple[int, ...],
    rng: np.random.Generator,
    advance: Any,
) -> list[Point]:
    traffic = _traffic(world, day, rng)
    start = day_start(world.day(day))
    replayer = Replayer(world.store, start, start + pd.Timedelta(days=1).to_pytimedelta())
    metrics = ServingMetrics()
    assembler = FeatureAssembler(world.store, metrics)
    clock = _Clock()
    arms = [
        _Arm(rule, ttl, MemoryCache(1_000_000, float(ttl), clock=clock))
        for rule in RULES
        for ttl in ttls
        if ttl > 0
    ]
    feature_s: list[float] = []
    model_s: list[float] = []
    swap_at = int(traffic["arrival_us"].iloc[len(traffic) // 2])
    origin = int(traffic["arrival_us"].iloc[0])
    model = models[0]
    names = model.feature_names
    step = max(1, len(traffic) // 20)
    columns = zip(
        traffic["arrival_us"].tolist(), traffic["event_us"].tolist(), traffic["repeat"].tolist(),
        traffic["customer"].tolist(), traffic["terminal"].tolist(), traffic["amount"].tolist(),
        strict=True,
    )  # fmt: skip
    for i, (arrival, event_us, repeat, customer, terminal, amount) in enumerate(columns):
        clock.now = (arrival - origin) / 1e6
        if model is models[0] and arrival >= swap_at:
            model = models[1]
            for arm in arms:  # a version change empties the versioned caches (as serving does)
                if arm.rule.versioned:
                    arm.cache.clear_model(models[0].name)
        if not repeat:
            replayer.before(customer, terminal, event_us)
        when = pd.Timestamp(arrival * 1000, tz="UTC").to_pydatetime()
        tx = Transaction(i, customer, terminal, amount, when)
        began = time.perf_counter()
        values, _, _, events = assembler.build([tx], names)
        t_features = time.perf_counter() - began
        began = time.perf_counter()
        fresh_score = float(model.predict(values)[0])
        t_model = time.perf_counter() - began
        fresh = fresh_score >= model.threshold
        feature_s.append(t_features)
        model_s.append(t_model)
        request_key = hash_rows(np.array([[customer, terminal, round(amount)]]))
        bound = Freshness([e or 0 for e in events or [None]], 0)
        for arm in arms:
            score, took = _through(arm, model, values, request_key, bound, fresh_score, metrics)
            arm.requests += 1
            swapped, by_request = model is models[1], arm.rule.key == "request"
            if score is None:
                arm.miss_s.append(took)
                if swapped and by_request:
                    arm.filed_after.add(request_key[0])
                continue
            arm.hits += 1
            arm.hit_s.append(took)
            decided = score >= model.threshold
            old = swapped and by_request and request_key[0] not in arm.filed_after
            arm.across += int(old)
            if decided != fresh:
                arm.stale += 1
                arm.missed += int(fresh and not decided)
                arm.across_stale += int(old)
        if i % step == 0:
            advance()
    f_us, m_us = _median_us(feature_s), _median_us(model_s)
    return [_point(period, arm, f_us, m_us) for arm in arms] + [
        _baseline(period, len(feature_s), f_us, m_us)
    ]


def _median_us(seconds: list[float]) -> float:
    return float(np.median(seconds)) * 1e6 if seconds else 0.0


def _through(
    arm: _Arm,
    model: LoadedModel,
    values: np.ndarray,
    request_key: list[str],
    bound: Freshness,
    fresh_score: float,
    metrics: ServingMetrics,
) -> tuple[float | None, float]:
    """The arm's cached score (None on a miss) and the time its cache operations took."""
    cache, rule = arm.cache, arm.rule
    key = model.key if rule.versioned else model.name
    fresh = bound if rule.freshness else None
    began = time.perf_counter()
    if rule.key == "features":  # mlsd's own cache step, model call included on a miss
        scores, cached = predict_cached_sync(cache, metrics, values, model, fresh)
        took = time.perf_counter() - began
        return (float(scores[0]) if bool(cached[0]) else None), took
    got = cache.get_many(key, request_key, min_events=fresh.min_events() if fresh else None)
    if got[0] is None:
        events = fresh.events([0]) if fresh else None
        cache.put_many(key, request_key, [fresh_score], events=events)
    return got[0], time.perf_counter() - began


def _point(period: str, arm: _Arm, features_us: float, model_us: float) -> Point:
    """The arm's figures; latency composed of median operation times (robust to a busy
    machine): what the rule does on a hit and on a miss, weighted by its hit rate."""
    rule, n = arm.rule, max(arm.requests, 1)
    hit_us, miss_us = _median_us(arm.hit_s), _median_us(arm.miss_s)
    if rule.key == "features":  # features, then the cache step: a miss adds the model call
        # (composed from the medians, not timed whole: one median each keeps noise out)
        hit_path, miss_path = features_us + hit_us, features_us + hit_us + model_us
    elif rule.freshness:  # the features are read for their event times, then the cache
        hit_path, miss_path = features_us + hit_us, features_us + miss_us + model_us
    else:  # in front of everything: a hit skips the feature lookup too
        hit_path, miss_path = hit_us, miss_us + features_us + model_us
    rate = arm.hits / n
    mean = rate * hit_path + (1.0 - rate) * miss_path
    return Point(
        period, rule.name, arm.ttl_s, arm.requests, rate, arm.stale / n, arm.stale, arm.missed,
        arm.across, arm.across_stale,
        mean, hit_path, miss_path, 1.0 - mean / (features_us + model_us),
    )  # fmt: skip


def _baseline(period: str, n: int, features_us: float, model_us: float) -> Point:
    total = features_us + model_us
    return Point(period, "no cache", 0, n, 0.0, 0.0, 0, 0, 0, 0, total, total, total, 0.0)


def _plot(points: list[Point], ttls: tuple[int, ...]) -> Any:
    def draw(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        periods = list(dict.fromkeys(p.period for p in points))
        fig, axes = plt.subplots(len(periods), 3, figsize=(15, 4.2 * len(periods)), squeeze=False)
        shown = [t for t in ttls if t > 0]
        for row, period in enumerate(periods):
            stale_ax, hit_ax, cost_ax = axes[row]
            for rule in RULES:
                mine = sorted(
                    (p for p in points if p.period == period and p.rule == rule.name),
                    key=lambda p: p.ttl_s,
                )
                style = "--" if rule.key == "features" else "-"
                xs = [p.ttl_s for p in mine]
                stale_ax.plot(
                    xs, [100 * p.stale_rate for p in mine], style, marker="o", label=rule.name
                )
                hit_ax.plot(
                    xs, [100 * p.hit_rate for p in mine], style, marker="o", label=rule.name
                )
                cost_ax.plot(
                    xs, [100 * p.compute_saved for p in mine], style, marker="o", label=rule.name
                )
            stale_ax.axhspan(100 * DANGER, 100.0, color="red", alpha=0.07)
            stale_ax.axhline(100 * DANGER, color="red", lw=0.8)
            stale_ax.text(shown[0], 100 * DANGER * 1.3, "dangerous: > 1 in 1,000 decisions stale",
                          color="red", fontsize=8)  # fmt: skip
            stale_ax.set(xscale="log", yscale="symlog", xlabel="TTL (s)",
                         ylabel="stale decisions (% of requests)",
                         title=f"{period}: stale decisions")  # fmt: skip
            stale_ax.set_ylim(0, 100)
            hit_ax.set(
                xscale="log", xlabel="TTL (s)", ylabel="hit rate (%)", title=f"{period}: hit rate"
            )
            cost_ax.set(xscale="log", xlabel="TTL (s)", ylabel="compute saved (%)",
                        title=f"{period}: feature + model time saved")  # fmt: skip
            for ax in (stale_ax, hit_ax, cost_ax):
                ax.set_xticks(shown, [f"{t:g}" for t in shown])
        axes[0][0].legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    return draw


def _get(points: list[Point], period: str, rule: str, ttl: int) -> Point:
    return next(p for p in points if p.period == period and p.rule == rule and p.ttl_s == ttl)


def _answer(points: list[Point], ttls: tuple[int, ...]) -> str:
    top = max(ttls)
    burst, quiet = "card testing", "quiet"
    naive = _get(points, burst, RULES[0].name, top)
    versioned = _get(points, burst, RULES[1].name, top)
    bounded = _get(points, burst, RULES[2].name, top)
    mlsd_b = _get(points, burst, RULES[3].name, top)
    mlsd_q = _get(points, quiet, RULES[3].name, top)
    naive_q = _get(points, quiet, RULES[0].name, top)
    base_q = _get(points, quiet, "no cache", 0)
    danger = [
        p.ttl_s for p in points
        if p.period == burst and p.rule == RULES[1].name and p.stale_rate > DANGER
    ]  # fmt: skip
    fmax = max(p.stale_rate for p in points if p.rule.startswith("feature"))
    return (
        f"Keyed by the request (card, terminal, amount) with a {top:,} s TTL, a cache answers "
        f"{100 * naive.hit_rate:.1f} % of card-testing requests and {100 * naive.stale_rate:.2f} % "
        f"of all decisions are stale ({naive.frauds_missed} frauds answered legit from the "
        f"cache); in the quiet day {100 * naive_q.stale_rate:.2f} % at a "
        f"{100 * naive_q.hit_rate:.1f} % hit rate. Emptying it on a version change leaves "
        f"{100 * versioned.stale_rate:.2f} % "
        f"stale during card testing (without it, {naive.across_version} answers after the "
        f"promotion were the old version's scores, {naive.across_version_stale} of them another "
        f"decision: the version rule matters only within one TTL of a promotion), above 1 in "
        f"1,000 from a TTL of "
        f"{min(danger) if danger else '-'} s: the burst renews the card's features between "
        f"repeats. The feature-freshness bound (tolerance 0) brings it to "
        f"{100 * bounded.stale_rate:.2f} % ({bounded.stale} stale) at a "
        f"{100 * bounded.hit_rate:.1f} % hit rate. mlsd's feature-values key never served a "
        f"stale decision in either period (worst {100 * fmax:.2f} %, any TTL): a renewed "
        f"feature changes the key, a new version the model key, so only true repeats hit "
        f"({100 * mlsd_q.hit_rate:.1f} % quiet, {100 * mlsd_b.hit_rate:.1f} % card testing at "
        f"{top:,} s), saving {100 * mlsd_q.compute_saved:.1f} % of the feature + model time "
        f"(mean {mlsd_q.mean_latency_us:.0f} µs a request against {base_q.mean_latency_us:.0f} µs "
        f"uncached); the request key saves more ({100 * naive_q.compute_saved:.1f} %, it skips "
        "the feature lookup) and that is exactly what makes it dangerous. On the feature-values "
        "key the freshness bound is a guarantee, not a fix: it also refuses an entry whose "
        "features got a newer event with the same values."
    )


class CachingExperiment:
    """Hit rate, latency, cost saved and stale decisions over TTL and invalidation rule."""

    name = "caching"
    question = QUESTION

    def run(self, ctx: LabContext) -> Findings:
        """Build the world, train two versions, replay a quiet day and a card-testing day."""
        config = _world_config(ctx.quick, ctx.seed)
        ttls = QUICK_TTLS if ctx.quick else TTLS
        with ctx.step("simulate, build features, train", 3) as advance:
            world = make_world(ctx.workdir, config)
            advance()
            n = config.n_days
            train = world.frame(n - 9, 7)  # card testing included: the model has seen it
            advance()
            models = (
                train_model(train, "fraud", 1, seed=ctx.seed, n_estimators=60),
                train_model(train, "fraud", 2, seed=ctx.seed + 1, n_estimators=40, top_share=0.03),
            )
            advance()
        rng = np.random.default_rng(ctx.seed)
        points: list[Point] = []
        try:
            with ctx.step("replay a quiet day and a card-testing day", 42) as advance:
                points += _replay(world, "quiet", n // 2 - 2, models, ttls, rng, advance)
                points += _replay(world, "card testing", n - 1, models, ttls, rng, advance)
        finally:
            world.close()
        table: list[Row] = [
            {
                "period": p.period, "rule": p.rule, "TTL s": p.ttl_s, "requests": p.requests,
                "hit rate %": round(100 * p.hit_rate, 2), "stale %": round(100 * p.stale_rate, 3),
                "frauds missed": p.frauds_missed,
                "old version's": f"{p.across_version} ({p.across_version_stale} stale)",
                "mean µs": round(p.mean_latency_us, 1),
                "hit µs": round(p.hit_path_us, 1), "miss µs": round(p.miss_path_us, 1),
                "saved %": round(100 * p.compute_saved, 1),
            }
            for p in points
        ]  # fmt: skip
        method = (
            f"The simulator's world ({config.n_customers:,} cards, {config.n_terminals:,} "
            f"terminals, {config.n_days} days; a card-testing scenario over the second half: "
            f"{max(10, config.n_customers // 5)} bursts of 10 payments under 2 € a day, ~30 s "
            "apart) is "
            "built into the real feature store (DuckDB offline tables, SQLite online store). "
            "Two LightGBM versions (ONNX Runtime) are trained on 7 days of the second half (card "
            "testing included): version 1 with 60 trees deciding fraud on its top 1 % of "
            "training scores, version 2 (the promotion) with 40 trees and a 3 % alert budget. "
            "A quiet day (two days before the scenario starts) and a card-testing day "
            "(the last) are replayed in time order: each transaction's "
            "own rows are written into the online store just before it is scored (as the demo's "
            f"feed does), and {100 * REPEAT_SHARE:.0f} % of requests are sent again after an "
            f"exponential delay of mean {REPEAT_DELAY_S:.0f} s. The version changes halfway "
            "through each day. Each request is scored fresh through the real `FeatureAssembler` "
            "and model, and through one real `MemoryCache` per (rule, TTL) on a simulated clock: "
            "request-keyed ones with `get_many`/`put_many` (freshness: `Freshness` with "
            "tolerance 0), feature-keyed ones through `predict_cached_sync`, the pipeline's own "
            "cache step. Latency is composed of median measured times (a busy machine's outliers "
            "left out): what the rule does on a hit and on a miss (the feature lookup unless a "
            "request-key hit skips it, its cache calls, the model on a miss; on the "
            "feature-values key a miss is its lookup plus the model call), weighted by its hit "
            "rate; compute saved = 1 - that mean over the uncached feature lookup + model call. "
            f"TTLs: {list(ttls)} s (0 = no cache)."
        )
        return Findings(
            answer=_answer(points, ttls),
            method=method,
            table=table,
            results={"points": [asdict(p) for p in points], "ttls": list(ttls), "danger": DANGER},
            plots={"caching": _plot(points, ttls)},
        )


EXPERIMENT = CachingExperiment()
