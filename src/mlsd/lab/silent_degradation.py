"""If your model starts degrading silently, how will you detect it — and what would you log
to debug a model drift incident?

Three of the simulator's injected scenarios from day 50 — an amount shift (30 % of the
customers spend 1.5x: covariate shift), a compromise-rate change (4x the terminals
compromised a day: concept drift, the inputs barely move) and card testing (bursts of
tiny amounts) — each in its own world with a model trained before it, served from day 42
with every prediction logged. Four monitors read the log (`degradation_world`): input
drift, score drift, the label-free estimate (CBPE) and delayed-label performance. For
each: whether and when it fires after the injection, and its false alarms on the quiet
days 42–49 (and, in the full run, on a world with no event at all).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlsd.lab.degradation_world import (
    CHANGE_DAY,
    EVAL_HOURS,
    LABEL_RULE,
    N_DAYS,
    NOISE_FACTOR,
    REFERENCE,
    Timeline,
    run_world,
)
from mlsd.lab.experiment import Findings, LabContext, Row

QUESTION = (
    "If your model starts degrading silently, how will you detect it? And what would you "
    "log to debug a model drift incident?"
)
SCENARIOS = ("amount_shift", "compromise_rate", "card_testing")
MONITORS = ("input drift", "score drift", "CBPE estimate", "delayed labels")
ESTIMATE_DROP = 0.05


def alarms(t: Timeline) -> dict[str, list[tuple[float, int]]]:
    """Per monitor, (hour since day 0 when it fired, window day) of every firing window."""
    out: dict[str, list[tuple[float, int]]] = {m: [] for m in MONITORS}
    for d in t.days:
        closed = 24.0 * (d.day + 1)  # a daily window is read when it ends
        if d.input_psi > t.input_threshold:
            out["input drift"].append((closed, d.day))
        if d.score_psi > t.score_threshold:
            out["score drift"].append((closed, d.day))
        own = t.reference_estimated_auc
        if (
            d.estimated_auc is not None
            and own is not None
            and d.estimated_auc < own - ESTIMATE_DROP
        ):
            out["CBPE estimate"].append((closed, d.day))
    out["delayed labels"] = list(t.label_alarms)
    return out


def summary(t: Timeline) -> list[Row]:
    """One row per monitor: false alarms on the quiet days, first alarm after the change."""
    rows: list[Row] = []
    quiet_days = sum(1 for d in t.days if d.day < CHANGE_DAY)
    changed_days = len(t.days) - quiet_days
    for monitor, fired in alarms(t).items():
        before = [a for a in fired if a[1] < CHANGE_DAY]
        after = [a for a in fired if a[1] >= CHANGE_DAY]
        delay = (after[0][0] - 24.0 * CHANGE_DAY) if after else None
        rows.append(
            {
                "scenario": t.scenario,
                "monitor": monitor,
                "fired": "yes" if after else "no",
                "delay (h)": "—" if delay is None else round(delay, 1),
                "delay (days)": "—" if delay is None else round(delay / 24, 2),
                "windows firing after": f"{len(after)}/{changed_days}",
                "false alarms (quiet days)": f"{len(before)}/{quiet_days}",
            }
        )
    return rows


def estimate_errors(t: Timeline) -> dict[str, float | None]:
    """Mean estimated minus true AUC before and after the change (labelled windows)."""
    out: dict[str, float | None] = {}
    for name, after in (("before", False), ("after", True)):
        errors = [
            d.estimated_auc - d.true_auc
            for d in t.days
            if (d.day >= CHANGE_DAY) == after
            and d.estimated_auc is not None
            and d.true_auc is not None
        ]
        out[name] = sum(errors) / len(errors) if errors else None
    return out


def _plot(timelines: list[Timeline]) -> Any:
    def draw(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(
            len(timelines), 2, figsize=(12, 2.8 * len(timelines)), squeeze=False
        )
        for row, t in zip(axes, timelines, strict=True):
            x = [d.day for d in t.days]
            left, right = row
            left.plot(x, [d.input_psi for d in t.days], label="input drift (max feature PSI)")
            left.plot(x, [d.score_psi for d in t.days], label="score drift (PSI)")
            left.axhline(t.input_threshold, color="C0", ls=":", lw=1)
            left.axhline(t.score_threshold, color="C1", ls=":", lw=1)
            left.set_title(f"{t.scenario}: drift of each day vs the reference week")
            right.plot(x, [d.true_auc for d in t.days], "k.-", label="true AUC (all labels)")
            right.plot(x, [d.estimated_auc for d in t.days], "g.-", label="CBPE estimated AUC")
            right.axhline(
                t.reference_auc - LABEL_RULE.max_drop if LABEL_RULE.max_drop else 0,
                color="k",
                ls=":",
                lw=1,
                label="label trigger threshold",
            )
            after = [h for h, day in t.label_alarms if day >= CHANGE_DAY]
            if after:
                right.axvline(
                    after[0] / 24,
                    color="r",
                    ls="--",
                    lw=1,
                    label="first label trigger on a changed window (when it fired)",
                )
            for hours, day in t.label_alarms:
                if day < CHANGE_DAY:
                    right.plot(
                        [hours / 24],
                        [t.reference_auc],
                        "rx",
                        label=f"false label trigger (window of day {day})",
                    )
            right.set_title(f"{t.scenario}: performance per day")
            for axis in row:
                axis.axvline(CHANGE_DAY, color="grey", lw=2, alpha=0.5)
                axis.set_xlabel("simulated day (grey: injection)")
                axis.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)

    return draw


class SilentDegradationExperiment:
    """Three injected scenarios (and, full run, a world without one) x four monitors."""

    name = "silent-degradation"
    question = QUESTION

    def run(self, ctx: LabContext) -> Findings:
        """One world per scenario, same seed (identical before day 50)."""
        n_customers = 800 if ctx.quick else 3000
        scenarios = [*SCENARIOS] if ctx.quick else [*SCENARIOS, "quiet"]
        timelines = []
        with ctx.step("worlds", len(scenarios)) as advance:
            for scenario in scenarios:
                timelines.append(run_world(scenario, ctx.workdir / scenario, n_customers, ctx.seed))
                advance()
        table = [row for t in timelines for row in summary(t)]
        errors = {t.scenario: estimate_errors(t) for t in timelines}
        return Findings(
            answer=_answer(timelines, errors),
            method=_method(n_customers, scenarios),
            table=table,
            results={
                "n_customers": n_customers,
                "timelines": [asdict(t) for t in timelines],
                "alarms": {t.scenario: alarms(t) for t in timelines},
                "estimate_error": errors,
                "summary": table,
            },
            plots={"timeline": _plot(timelines)},
        )


def _first(t: Timeline, monitor: str) -> str:
    after = [a for a in alarms(t)[monitor] if a[1] >= CHANGE_DAY]
    if not after:
        return "never"
    return f"{(after[0][0] - 24.0 * CHANGE_DAY) / 24:.1f} days"


def _answer(timelines: list[Timeline], errors: dict[str, dict[str, float | None]]) -> str:
    def err(name: str, when: str) -> str:
        value = errors[name][when]
        return "—" if value is None else f"{value:+.3f}"

    parts = []
    for t in timelines:
        if t.scenario == "quiet":
            continue
        firsts = ", ".join(f"{m} {_first(t, m)}" for m in MONITORS)
        parts.append(
            f"**{t.scenario}** (first alarm after the injection): {firsts}; CBPE minus true AUC "
            f"{err(t.scenario, 'before')} before, {err(t.scenario, 'after')} after."
        )
    quiet = {
        m: sum(1 for t in timelines for a in alarms(t)[m] if a[1] < CHANGE_DAY) for m in MONITORS
    }
    n_quiet = sum(1 for d in timelines[0].days if d.day < CHANGE_DAY)
    parts.append(
        f"False alarms on the {n_quiet} quiet days (identical in every world): "
        + ", ".join(f"{m} {quiet[m] // len(timelines)}" for m in MONITORS)
        + "."
    )
    world = next((t for t in timelines if t.scenario == "quiet"), None)
    if world is not None:
        auc = {
            when: [d.true_auc for d in world.days if (d.day >= CHANGE_DAY) == after and d.true_auc]
            for when, after in (("before", False), ("after", True))
        }
        parts.append(
            "In the world with no event, windows from day 50 on firing: "
            + ", ".join(
                f"{m} {sum(1 for a in alarms(world)[m] if a[1] >= CHANGE_DAY)}" for m in MONITORS
            )
            + f" (its true AUC: mean {sum(auc['before']) / len(auc['before']):.3f} on days "
            f"42-49, {sum(auc['after']) / len(auc['after']):.3f} after)."
        )
    parts.append(
        "So: input and score drift catch what moves the inputs within days, CBPE moves only "
        "with the scores, and a change in P(fraud | inputs) — new compromised terminals, "
        "card testing — shows reliably only in the labels, more than a week late. What to "
        "log: "
        "every prediction with its model version, variant, feature values, score, decision "
        "and the transaction, customer and terminal ids and time (the prediction log here), "
        "so drift, the estimate and the label join are all computed from the log afterwards."
    )
    return " ".join(parts)


def _method(n_customers: int, scenarios: list[str]) -> str:
    return (
        f"{len(scenarios)} simulated worlds ({', '.join(scenarios)}), {n_customers:,} "
        f"customers, {N_DAYS} days, the same seed (identical before day {CHANGE_DAY}); the "
        "handbook's features from the real feature store (point in time); a LightGBM model "
        "(ONNX, as served) trained on days 0–27 with its alert-budget threshold on 28–34 "
        f"(`mlsd.lab.world`). Reference week days {REFERENCE[0]}–{REFERENCE[1] - 1}: the "
        "reference profile (`build_profile`), the isotonic calibration of the scores against "
        "their labels, the reference AUC. Days 42.. are logged to a real Parquet prediction "
        "log and every monitor reads it back: input drift = largest feature PSI of a daily "
        "window (`mlsd.monitoring.drift`, the calendar feature left out), score drift = the "
        f"score's PSI, both firing above {NOISE_FACTOR}x the largest PSI of a reference day "
        "against the other six; CBPE (`mlsd.monitoring.cbpe`) fires when a day's estimated "
        f"AUC is {ESTIMATE_DROP} below the reference week's estimate; delayed labels = "
        f"`performance_windows` every {EVAL_HOURS} h with the labels landed by then "
        "(7-day delay, from the dataset folder) and the `auc_drop` trigger "
        f"(AUC {LABEL_RULE.max_drop} below the reference, at least {LABEL_RULE.min_frauds} "
        f"frauds and {LABEL_RULE.min_coverage:.0%} of the window labelled). A daily window "
        "is read when it ends: a delay of 1 day means the first day's window fired."
    )


EXPERIMENT = SilentDegradationExperiment()
