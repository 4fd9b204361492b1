"""How do you detect that a shadow model's predictions diverge from production in dangerous
ways — how soon, and how often does the alarm fire for nothing?

A simulated fraud world (`mlsd.lab.world`: simulator, feature store, LightGBM, ONNX
Runtime) with a card-testing scenario starting mid-way. The champion is trained on days
that include it; four challengers shadow it on the two weeks that follow: A/A (the champion
itself), a retrained copy (same days, another seed: as good, not identical), the champion
fed with two inputs swapped (a serving bug), and a model trained before the scenario began.
Their records go through the prediction log's encoding and the real champion/shadow join
(`mlsd.rollout.pairs`), then the divergence analysis and the dangerous-divergence rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.lab.experiment import Findings, LabContext, Row
from mlsd.lab.world import Model, World, build_world, train_model
from mlsd.predlog.record import PredictionRecord, finish_frame, to_table
from mlsd.rollout.divergence import (
    DangerousDivergence,
    DivergenceAlert,
    DivergenceReport,
    analyse,
)
from mlsd.rollout.pairs import pairs
from mlsd.stats import wilson
from mlsd.stats.rate_test import rate_boundary

QUESTION = (
    "How do you detect if shadow model predictions diverge from production in dangerous "
    "ways — how many requests until the alert fires, and how often does it fire for "
    "nothing (A/A)?"
)
SWAPPED = ("TX_AMOUNT", "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW")
MAX_RATE, ALPHA = 0.2, 0.01
PER = 100_000  # false alarms are counted per this many requests


@dataclass(frozen=True)
class Size:
    """The world and the simulation effort."""

    customers: int
    terminals: int
    days: int
    drift_day: int
    train_until: int
    runs: int


QUICK = Size(500, 1000, 70, 35, 55, 500)
FULL = Size(1500, 3000, 84, 42, 69, 5000)


def _records(world: World, rows: pd.DataFrame, model: Model, variant: str,
             swap: bool = False) -> list[PredictionRecord]:  # fmt: skip
    """What the log observer writes for `rows` scored by `model` as `variant`."""
    values = world.matrix(rows)
    if swap:
        i, j = (world.features.index(f) for f in SWAPPED)
        values[:, [i, j]] = values[:, [j, i]]
    scores = model.scores(values)
    names = tuple(world.features)
    return [
        PredictionRecord(
            f"r{tid}", ts, "fraud", model.name, row, score,
            "fraud" if score >= model.threshold else "legit", model.threshold, 1.0, False,
            names, "score", variant, int(tid), int(cid), int(term), ts,
        )
        for tid, cid, term, ts, row, score in zip(
            rows[schema.TRANSACTION_ID], rows[schema.CUSTOMER_ID], rows[schema.TERMINAL_ID],
            rows[schema.TX_DATETIME], world.matrix(rows).tolist(), scores.tolist(), strict=True,
        )
    ]  # fmt: skip


def _log(records: list[PredictionRecord]) -> pd.DataFrame:
    """The records as a log read returns them (scored when they happened: a replay)."""
    return finish_frame(to_table(records).to_pandas())


def _stream_alarms(
    flags: np.ndarray, block_share: float, runs: int, requests: int, rng: np.random.Generator
) -> np.ndarray:
    """Requests until the rule fires on `runs` resampled streams of `requests` requests
    (NaN: never), each champion block's approval drawn from `flags`."""
    blocks = rng.binomial(requests, block_share, size=runs)
    width = int(blocks.max()) if runs else 0
    if width == 0 or flags.size == 0:
        return np.full(runs, np.nan)
    hits = rng.choice(flags.astype(np.int64), size=(runs, width)).cumsum(axis=1)
    crossed = hits >= rate_boundary(width, MAX_RATE, ALPHA)[None, :]
    crossed[np.arange(width)[None, :] >= blocks[:, None]] = False  # past this stream's end
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1) + 1.0, np.nan)
    return first / block_share  # the k-th block comes after about k / share requests


def _series(found: pd.DataFrame) -> dict[str, list[float]]:
    """The running approval share and -log10 p after each trial (blocked card-day)."""
    rule = DangerousDivergence(MAX_RATE, ALPHA)
    p, where = rule.p_values(found)
    approved = (found["challenger_decision"].to_numpy()[where] != "fraud").cumsum()
    return {
        "requests": (where + 1).astype(float).tolist(),
        "approved_share": (approved / np.arange(1, where.size + 1)).tolist(),
        "minus_log10_p": (-np.log10(np.maximum(p, 1e-300))).tolist(),
    }


def _plot(series: dict[str, dict[str, list[float]]], alerts: dict[str, float]) -> Any:
    def draw(path: Any) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
        for name, s in series.items():
            (line,) = left.plot(s["requests"], s["approved_share"], label=name)
            right.plot(s["requests"], np.minimum(s["minus_log10_p"], 12), label=name,
                       color=line.get_color())  # fmt: skip
            if math.isfinite(alerts.get(name, math.nan)):
                right.axvline(alerts[name], color=line.get_color(), lw=0.8, ls=":")
        left.axhline(MAX_RATE, color="red", lw=0.8, ls="--", label=f"limit {MAX_RATE:.0%}")
        left.set(xscale="log", xlabel="requests mirrored", ylim=(0, 1),
                 ylabel="share of blocked cards the challenger approves",
                 title="dangerous divergence, running")  # fmt: skip
        right.axhline(-math.log10(ALPHA), color="red", lw=0.8, ls="--",
                      label=f"alert: p <= {ALPHA}")  # fmt: skip
        right.set(xscale="log", xlabel="requests mirrored", ylabel="-log10 always-valid p",
                  title="sequential test (capped at 12)")  # fmt: skip
        left.legend(fontsize=8)
        right.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    return draw


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def _row(name: str, r: DivergenceReport, flags: np.ndarray, by_block: DivergenceAlert | None,
         resampled: np.ndarray, runs: int) -> Row:  # fmt: skip
    d = r.dangerous
    cards = wilson(int(flags.sum()), flags.size) if flags.size else None
    return {
        "challenger": name, "pairs": r.pairs,
        "disagreement": f"{r.disagreement.estimate:.2%} [{r.disagreement.low:.2%}, "
                        f"{r.disagreement.high:.2%}]",
        "KS": r.ks_statistic, "PSI": r.psi, "champion blocks": r.champion_blocks,
        "approves of blocks": "—" if d is None else f"{_pct(d.estimate)} [{_pct(d.low)}, "
                                                    f"{_pct(d.high)}]",
        "blocked cards": flags.size,
        "approves of blocked cards": "—" if cards is None else f"{_pct(cards.estimate)} "
                                     f"[{_pct(cards.low)}, {_pct(cards.high)}]",
        "alert after (requests, in order)": r.alert.requests if r.alert else "none",
        "alert by block (in order)": by_block.requests if by_block else "none",
        f"streams of {PER:,} alarmed": float(np.isfinite(resampled).mean()),
        "median requests to alert (resampled)": float(np.nanmedian(resampled))
        if np.isfinite(resampled).any() else "—",
        "runs": runs,
    }  # fmt: skip


class ShadowDivergenceExperiment:
    """Requests to a dangerous-divergence alert per challenger; false alarms on A/A."""

    name = "shadow-divergence"
    question = QUESTION

    def run(self, ctx: LabContext) -> Findings:
        """Build the world, shadow four challengers, test, resample."""
        size = QUICK if ctx.quick else FULL
        start = datetime(2018, 4, 1) + pd.Timedelta(days=size.drift_day)
        scenario = {"type": "card_testing", "name": "card-testing",
                    "start": start.date().isoformat(), "bursts_per_day": 3}  # fmt: skip
        with ctx.step("world: simulate, features, train", 4) as advance:
            world = build_world(ctx.workdir, size.customers, size.terminals, size.days,
                                [scenario], ctx.seed)  # fmt: skip
            advance()
            champion = train_model(world, "champion", 0, size.train_until, seed=ctx.seed)
            advance()
            retrained = train_model(world, "retrained", 0, size.train_until, seed=ctx.seed + 1)
            advance()
            stale = train_model(world, "stale", 0, size.drift_day - 1, seed=ctx.seed)
            advance()
        rows = world.days(size.train_until + 1, size.days - 1)
        rows = rows.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID], kind="stable")
        challengers: list[tuple[str, Model, bool]] = [
            ("A/A (the champion)", champion, False), ("retrained (another seed)", retrained, False),
            ("two inputs swapped", champion, True), ("trained before the drift", stale, False),
        ]  # fmt: skip
        records = _records(world, rows, champion, "champion")
        for i, (_, model, swap) in enumerate(challengers):
            records += _records(world, rows, model, f"sd{i}:shadow", swap)
        frame = _log(records)
        rng = np.random.default_rng(ctx.seed)
        rule = DangerousDivergence(MAX_RATE, ALPHA)
        table: list[Row] = []
        series: dict[str, dict[str, list[float]]] = {}
        alerts: dict[str, float] = {}
        found_all: dict[str, Any] = {}
        with ctx.step("challengers: analyse, resample", len(challengers) + 1) as advance:
            for i, (name, _, _) in enumerate(challengers):
                found = pairs(frame, f"sd{i}")
                report = analyse(found, rule)
                trials = rule.trials(found)  # the first block of each card and day
                flags = found["challenger_decision"].to_numpy()[trials] != "fraud"
                trial_share = trials.size / len(found)
                resampled = _stream_alarms(flags, trial_share, size.runs, PER, rng)
                by_block = DangerousDivergence(MAX_RATE, ALPHA, unit="block").check(found)
                table.append(_row(name, report, flags, by_block, resampled, size.runs))
                series[name] = _series(found)
                alerts[name] = float(report.alert.requests) if report.alert else math.nan
                found_all[name] = {
                    "report": report.to_dict(),
                    "card_rate": float(flags.mean()) if flags.size else None,
                    "alert_by_block": by_block.to_dict() if by_block else None,
                    "resampled_alarm_share": float(np.isfinite(resampled).mean()),
                    "resampled_median_requests": float(np.nanmedian(resampled))
                    if np.isfinite(resampled).any() else None,
                }  # fmt: skip
                advance()
            served = frame[frame["variant"] == "champion"]
            share = float((served["decision"] == "fraud").mean())
            exactly = np.r_[np.ones(1), np.zeros(round(1 / MAX_RATE) - 1)].astype(bool)
            boundary = _stream_alarms(exactly, trial_share, size.runs * 4, PER, rng)
            advance()
        table.append({
            "challenger": f"worst case allowed: approves exactly {MAX_RATE:.0%}",
            "pairs": PER, "blocked cards": round(trial_share * PER),
            f"streams of {PER:,} alarmed": float(np.isfinite(boundary).mean()),
            "runs": size.runs * 4,
        })  # fmt: skip
        return self._findings(ctx, size, len(rows), share, trial_share, table, found_all,
                              boundary, series, alerts)  # fmt: skip

    def _findings(self, ctx: LabContext, size: Size, n: int, share: float, trial_share: float,
                  table: list[Row],
                  found: dict[str, Any], boundary: np.ndarray,
                  series: dict[str, dict[str, list[float]]],
                  alerts: dict[str, float]) -> Findings:  # fmt: skip
        names = list(found)
        aa, retrained, swapped = (found[k] for k in names[:3])

        def alert(k: str) -> str:
            a = found[k]["report"]["alert"]
            if a is None:
                return "no alert"
            return (f"alert after {a['requests']:,} requests in request order ({a['approved']}"
                    f" of the first {a['blocks']} blocked cards approved; median over resampled "
                    "streams "
                    f"{_num(found[k]['resampled_median_requests'])})")  # fmt: skip

        def rate(k: str) -> str:
            d, c = found[k]["report"]["dangerous"], found[k]["card_rate"]
            if d is None or c is None:
                return "—"
            return f"{c:.1%} of the blocked cards ({d['estimate']:.1%} of the blocks)"

        def block(k: str) -> str:
            a = found[k]["alert_by_block"]
            return "never" if a is None else f"after {a['requests']:,} requests"

        worst = float(np.isfinite(boundary).mean())
        answer = (
            f"Rule: alert when the challenger approves more than {MAX_RATE:.0%} of the cards "
            f"the champion blocks (one trial per card and day), one-sided sequential test at "
            f"alpha {ALPHA}, checked after every request. Over {n:,} mirrored requests "
            f"({share:.1%} blocked by the champion, {trial_share * n:,.0f} card-days): the "
            f"challenger trained before the card-testing drift approves {rate(names[3])}: "
            f"{alert(names[3])}; the one with two inputs swapped approves {rate(names[2])}: "
            f"{alert(names[2])} — while its score distribution "
            f"barely moves (PSI {swapped['report']['psi']:.3f}, KS "
            f"{swapped['report']['ks_statistic']:.3f}: 'stable' by the usual PSI < 0.1), so a "
            f"distance alone would have let it through. Counting every block instead of every "
            f"card fires sooner ({block(names[3])} and {block(names[2])}), but one card-testing "
            "burst then counts as many independent trials, which the test's guarantee does "
            f"not cover. False alarms per {PER:,} requests: "
            f"A/A (challenger = champion) {aa['resampled_alarm_share']:.3g}, its decisions "
            f"being identical; a retrained copy approving {rate(names[1])} "
            f"{retrained['resampled_alarm_share']:.3g} ({size.runs:,} resampled streams); a "
            f"challenger at exactly the allowed {MAX_RATE:.0%}, the worst case the guarantee "
            f"covers, {worst:.3g} ({size.runs * 4:,} streams; the bound is alpha = {ALPHA})."
        )
        method = (
            f"`mlsd.lab.world`: {size.customers:,} customers, {size.terminals:,} terminals, "
            f"{size.days} days simulated with card testing (3 bursts of 8 small frauds a day) "
            f"from day {size.drift_day}; the handbook's 15 features from the feature store; "
            f"LightGBM (ONNX Runtime) trained on days 0-{size.train_until - 7}, threshold by "
            f"the alert-budget policy on the next 7 days. The stale challenger: trained the "
            f"same way on days 0-{size.drift_day - 1}. Swapped: the champion served with "
            f"{SWAPPED[0]} and {SWAPPED[1]} exchanged. Every challenger shadows every "
            f"request of days {size.train_until + 1}-{size.days - 1}: prediction records "
            "encoded as the log stores them, joined by `mlsd.rollout.pairs`, analysed by "
            "`mlsd.rollout.divergence` (`DangerousDivergence(max_rate="
            f"{MAX_RATE}, alpha={ALPHA})`). 'Alert after' is the first crossing in request "
            "order; 'by block' is the same rule with `unit='block'`. False alarms: streams of "
            f"{PER:,} requests resampled with replacement "
            "from each challenger's own trials (blocked card-days; the k-th counted as k / their "
            "share of requests); a stream that alarms once is stopped, so the share of streams "
            f"that alarmed is the number of false alarms per {PER:,} requests."
        )
        results = {
            "size": size.__dict__, "requests": n, "champion_block_share": share,
            "max_rate": MAX_RATE, "alpha": ALPHA, "challengers": found,
            "boundary_alarm_share": worst, "series": series,
        }  # fmt: skip
        return Findings(answer, method, table, results,
                        plots={"shadow-divergence": _plot(series, alerts)})  # fmt: skip


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


EXPERIMENT = ShadowDivergenceExperiment()
