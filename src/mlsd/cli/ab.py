"""`mlsd rollout ab` and `mlsd rollout plan`: an A/B rollout's arms against the delayed labels.

Per arm (each answering variant of the rollout in the prediction log): precision of blocks,
recall, false-positive rate, fraud € caught and missed, cards flagged per day; then the
challenger against the champion with Newcombe intervals and the mSPRT's always-valid
p-values (safe to read every hour). Labels come from a dataset folder (its transactions'
TX_FRAUD), optionally only those known by `--as-of` (LABEL_AVAILABLE_AT). To be moved
under `mlsd rollout` once that group exists.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mlsd.cli.predictions import _when


def _pct(interval: dict[str, float] | None) -> str:
    if interval is None:
        return "—"
    return f"{interval['estimate']:.2%} [{interval['low']:.2%}, {interval['high']:.2%}]"


def ab(
    rollout: str = typer.Argument(..., help="The A/B (or canary) rollout id."),
    labels: Path = typer.Option(..., "--labels", help="Dataset folder holding the labels."),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Only labels known by then (ISO time; default: all)."
    ),
    since: str | None = typer.Option(None, "--since", help="ISO time (UTC if no zone)."),
    until: str | None = typer.Option(None, "--until", help="ISO time, exclusive."),
    tau: float = typer.Option(
        0.01, "--tau", help="mSPRT mixture scale: the absolute difference worth finding."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Per-arm figures of a rollout against the labels, and the sequential comparison."""
    from rich.console import Console
    from rich.table import Table

    from mlsd.data import schema
    from mlsd.data.io import is_dataset, read_transactions
    from mlsd.errors import NotFoundError
    from mlsd.predlog import open_reader
    from mlsd.rollout.arms import arm_metrics, compare_arms
    from mlsd.settings import get_settings

    known = _when(as_of, "as_of")
    start, end = _when(since, "since"), _when(until, "until")
    if not is_dataset(labels):
        raise NotFoundError(f"{labels} is not a dataset folder (no manifest.json)",
                            field="labels")  # fmt: skip
    truth = read_transactions(labels)
    if known is not None:
        truth = truth[truth[schema.LABEL_AVAILABLE_AT] <= known]
    columns = [schema.TRANSACTION_ID, schema.CUSTOMER_ID, schema.TX_DATETIME, schema.TX_AMOUNT,
               schema.TX_FRAUD]  # fmt: skip
    truth = truth[columns]
    reader = open_reader(get_settings())
    try:
        frame = reader.read(start, end)
    finally:
        reader.close()
    arms = arm_metrics(frame, truth, rollout)
    names = [a.variant for a in arms]
    comparison = None
    champion, challenger = f"{rollout}:champion", f"{rollout}:challenger"
    if champion in names and challenger in names:
        comparison = compare_arms(frame, truth, champion, challenger, tau=tau).to_dict()
    if as_json:
        payload = {"arms": [a.to_dict() for a in arms], "comparison": comparison}
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    table = Table(title=f"rollout {rollout}: arms against the labels")
    for column in (
        "arm",
        "labelled",
        "frauds",
        "blocked",
        "precision",
        "recall",
        "false-positive rate",
        "fraud € caught",
        "fraud € missed",
        "cards/day",
    ):
        table.add_column(column)  # fmt: skip
    for a in (x.to_dict() for x in arms):
        table.add_row(
            a["variant"], f"{a['labelled']:,}", f"{a['frauds']:,}", f"{a['flagged']:,}",
            _pct(a["precision"]), _pct(a["recall"]), _pct(a["false_positive_rate"]),
            f"{a['caught_eur']:,.2f}", f"{a['missed_eur']:,.2f}",
            f"{a['cards_flagged_per_day']:.1f}",
        )  # fmt: skip
    console = Console()
    console.print(table)
    if comparison is not None:
        console.print(
            f"challenger − champion: false-positive rate "
            f"{_pct(comparison['false_positive_rate_diff'])} (always-valid p "
            f"{comparison['false_positive_rate_p']:.3g}); recall "
            f"{_pct(comparison['recall_diff'])} (p {comparison['recall_p']:.3g})"
        )


def ab_plan(
    baseline: float = typer.Option(..., "--baseline", help="The champion's rate, e.g. 0.02."),
    mde: float = typer.Option(..., "--mde", help="Smallest difference worth finding (absolute)."),
    per_hour: float = typer.Option(..., "--per-hour", help="Requests per arm per hour."),
    alpha: float = typer.Option(0.05, "--alpha", help="False-positive rate."),
    power: float = typer.Option(0.8, "--power", help="Power of the fixed-horizon test."),
    tau: float | None = typer.Option(None, "--tau", help="mSPRT mixture scale (default: mde)."),
    runs: int = typer.Option(500, "--runs", help="Simulated mSPRT runs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """How long an A/B test needs: fixed horizon, and the mSPRT by simulation."""
    from mlsd.stats import plan

    p = plan(baseline, mde, per_hour, alpha=alpha, power=power, tau=tau, runs=runs)

    def hours(value: float) -> str:  # NaN: too few runs stopped to say
        return "—" if value != value else f"{value:,.0f} h"

    if as_json:
        typer.echo(json.dumps(p.to_dict(), indent=2))
        return
    typer.echo(
        f"fixed horizon: {p.fixed_n_per_arm:,} per arm = {p.fixed_hours:,.1f} h at "
        f"{p.per_hour:,.0f}/h per arm (z-test read ONCE, power {p.power:.0%})\n"
        f"mSPRT (tau {p.msprt_tau:g}, read as often as you like): power {p.msprt_power:.0%} "
        f"within {p.horizon_hours:,} h; median {hours(p.msprt_median_hours)}, 80 % of runs "
        f"by {hours(p.msprt_p80_hours)} ({p.runs} simulated runs at the effect)"
    )
