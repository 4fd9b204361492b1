"""Does looking at an A/B test every hour inflate its false positives, and does the mSPRT
keep them at alpha — at what cost in power and duration?

By simulation, on the statistics the rollout analysis itself uses (`mlsd.stats`): two arms
of a fraud model's block rate (2 % of transactions blocked; the challenger +10 % relative
under the alternative), 1,000 transactions per arm per hour. The fixed-horizon z-test is
planned by the calculator for 80 % power; it is then read either once, at its horizon (as
planned), or every hour and stopped at the first p < 0.05 (as dashboards invite). The
mSPRT is read every hour too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlsd.lab.experiment import Findings, LabContext, Row
from mlsd.stats import plan, proportion_pvalues, z_test_pvalues
from mlsd.stats.sample_size import first_look, simulate_counts

QUESTION = (
    "An A/B test of a new fraud model is checked every hour: how much does peeking inflate "
    "the false-positive rate of a fixed-horizon test, and does a sequential test "
    "(mSPRT, always-valid p-values) keep it at alpha — at what cost in power and duration?"
)
BASELINE, MDE, PER_HOUR, ALPHA = 0.02, 0.002, 1000, 0.05
#: Horizons the mSPRT is given, in multiples of the fixed horizon.
FACTORS = (1.0, 2.0, 3.0)


def _curves(sa: Any, sb: Any, n: Any, tau: float) -> tuple[Any, Any]:
    """Hour of the first rejection per run: peeked z-test, mSPRT."""
    peek = first_look(z_test_pvalues(sa, n, sb, n) < ALPHA)
    seq = first_look(proportion_pvalues(sa, n, sb, n, tau) <= ALPHA)
    return peek, seq


def _share(first: Any, hours: Any) -> float:
    return float((first <= hours).mean())


def _median(first: Any, hours: float) -> float:
    """Median hour of decision among the runs that decided within `hours`."""
    decided = first[first <= hours]
    return float(np.median(decided)) if decided.size else math.nan


def _plot(hours: int, horizon: int, h0: dict[str, Any], h1: dict[str, Any]) -> Any:
    def draw(path: Any) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = np.arange(1, hours + 1)
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
        panels = ((left, h0, "no difference: false positives"),
                  (right, h1, f"+{MDE / BASELINE:.0%} block rate: power"))  # fmt: skip
        for ax, data, title in panels:
            ax.plot(t, [_share(data["peek"], h) for h in t], label="z-test, peeked hourly")
            ax.plot(t, [_share(data["msprt"], h) for h in t], label="mSPRT, read hourly")
            ax.step([horizon, hours], [data["once"]] * 2, where="post",
                    label="z-test read once at its horizon")  # fmt: skip
            ax.axvline(horizon, color="grey", lw=0.8, ls=":")
            ax.set(xlabel="hours since start", ylabel="share of runs rejected so far",
                   title=title)  # fmt: skip
        left.axhline(ALPHA, color="red", lw=0.8, ls="--", label=f"alpha = {ALPHA}")
        left.legend(fontsize=8)
        right.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    return draw


class ABTestExperiment:
    """False positives and power of a peeked fixed-horizon test against the mSPRT."""

    name = "ab-test"
    question = QUESTION

    def run(self, ctx: LabContext) -> Findings:
        """Simulate both hypotheses, look every hour."""
        runs = 400 if ctx.quick else 4000
        design = plan(BASELINE, MDE, PER_HOUR, alpha=ALPHA, runs=200 if ctx.quick else 1000,
                      seed=ctx.seed)  # fmt: skip
        horizon = math.ceil(design.fixed_hours)
        hours = round(horizon * max(FACTORS))
        tau = design.msprt_tau
        rng = np.random.default_rng(ctx.seed)
        found: dict[str, dict[str, Any]] = {}
        with ctx.step("simulated A/B tests", 2) as advance:
            for name, effect in (("h0", 0.0), ("h1", MDE)):
                sa, sb, n = simulate_counts(BASELINE, BASELINE + effect, PER_HOUR, hours, runs,
                                            rng)  # fmt: skip
                peek, seq = _curves(sa, sb, n, tau)
                once = z_test_pvalues(sa[:, horizon - 1], n[:, horizon - 1], sb[:, horizon - 1],
                                      n[:, horizon - 1])  # fmt: skip
                found[name] = {"peek": peek, "msprt": seq, "once": float((once < ALPHA).mean())}
                advance()
        h0, h1 = found["h0"], found["h1"]
        median = _median(h1["msprt"], hours)
        table: list[Row] = [
            {"test": "z-test read once at its horizon", "looks": 1,
             "false-positive rate": h0["once"], "power": h1["once"],
             "median hours to a decision (H1)": float(horizon)},
            {"test": "z-test peeked every hour", "looks": horizon,
             "false-positive rate": _share(h0["peek"], horizon),
             "power": _share(h1["peek"], horizon),
             "median hours to a decision (H1)": _median(h1["peek"], horizon)},
        ]  # fmt: skip
        for factor in FACTORS:
            limit = round(horizon * factor)
            table.append({
                "test": f"mSPRT read every hour, up to {factor:g}x the horizon", "looks": limit,
                "false-positive rate": _share(h0["msprt"], limit),
                "power": _share(h1["msprt"], limit),
                "median hours to a decision (H1)": _median(h1["msprt"], limit),
            })  # fmt: skip
        peek_fpr = _share(h0["peek"], horizon)
        seq_fpr = _share(h0["msprt"], hours)
        answer = (
            f"Peeking every hour at a fixed-horizon z-test planned for {horizon} h "
            f"({design.fixed_n_per_arm:,} transactions per arm) and stopping at the first "
            f"p < {ALPHA} gives false positives in {peek_fpr:.1%} of A/A runs, "
            f"{peek_fpr / ALPHA:.1f}x the nominal {ALPHA:.0%} (read once, as planned: "
            f"{h0['once']:.1%}). The mSPRT read every hour stays at {seq_fpr:.1%} over "
            f"{hours} h ({max(FACTORS):g}x the horizon). The price is power at the same "
            f"horizon: {_share(h1['msprt'], horizon):.0%} for the mSPRT against "
            f"{h1['once']:.0%} for the planned z-test; given {max(FACTORS):g}x the horizon it "
            f"reaches {_share(h1['msprt'], hours):.0%}, deciding in a median "
            f"{median:.0f} h when the effect is there. {runs:,} simulated tests per "
            "hypothesis."
        )
        method = (
            f"Each run draws the hourly blocks of two arms of {PER_HOUR:,} transactions per "
            f"hour (binomial, block rate {BASELINE:.0%}; under the alternative the challenger "
            f"blocks {BASELINE + MDE:.1%}, +{MDE / BASELINE:.0%}). "
            f"`mlsd.stats.plan` gives the fixed horizon for 80 % power at alpha {ALPHA} "
            f"(pooled two-proportion z-test); the mSPRT (`mlsd.stats.proportion_pvalues`, "
            f"normal mixture with tau = the MDE = {tau:g}) is read after every hour. A run "
            "counts as rejected once any look rejected: that is what stopping at the first "
            f"significant look does. {runs:,} runs under each hypothesis, seed {ctx.seed}."
        )
        results = {
            "plan": design.to_dict(), "runs": runs, "horizon_hours": horizon,
            "peeked_fpr": peek_fpr, "once_fpr": h0["once"], "msprt_fpr": seq_fpr,
            "once_power": h1["once"], "msprt_power_at_horizon": _share(h1["msprt"], horizon),
            "msprt_power_3x": _share(h1["msprt"], hours), "msprt_median_hours": median,
        }  # fmt: skip
        return Findings(answer, method, table, results,
                        plots={"ab-test": _plot(hours, horizon, h0, h1)})  # fmt: skip


EXPERIMENT = ABTestExperiment()
