"""The divergence report as tables (rich): what `mlsd rollout divergence` and the demo print."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _pct(interval: dict[str, float] | None) -> str:
    if interval is None:
        return "—"
    low, high = 100 * interval["low"], 100 * interval["high"]
    return f"{interval['estimate']:.1%} [{low:.1f}, {high:.1f}]"


def summary_table(report: dict[str, Any], max_rate: float) -> Table:
    """The headline figures of a `DivergenceReport.to_dict()`."""
    head = Table(title=f"shadow rollout {report['rollout']}: challenger vs champion")
    head.add_column("figure", overflow="fold")
    head.add_column("value", overflow="fold")
    rows = [
        ("pairs (mirrored requests)", f"{report['pairs']:,}"),
        ("versions", f"champion {', '.join(report['champion_versions'])}, "
                     f"challenger {', '.join(report['challenger_versions'])}"),
        ("score KS (p)", f"{report['ks_statistic']:.3f} ({report['ks_pvalue']:.2g})"),
        ("score PSI (champion = reference)", f"{report['psi']:.3f}"),
        ("decisions disagree [95 % CI]", _pct(report["disagreement"])),
        ("champion blocks / challenger blocks",
         f"{report['champion_blocks']:,} / {report['challenger_blocks']:,}"),
        ("champion blocks the challenger approves", _pct(report["dangerous"])),
        (f"always-valid p (rate > {max_rate:g})", f"{report['dangerous_p_value']:.3g}"),
    ]  # fmt: skip
    for name, value in rows:
        head.add_row(name, value)
    return head


def segment_table(report: dict[str, Any]) -> Table:
    """Disagreement by segment (amount band, new vs known customer, terminal risk band)."""
    seg = Table(title="by segment")
    for column in ("segment", "value", "pairs", "disagree", "champion blocks", "approved"):
        seg.add_column(column, overflow="fold")
    for s in report["segments"]:
        seg.add_row(s["segment"], s["value"], f"{s['pairs']:,}", _pct(s["disagreement"]),
                    f"{s['champion_blocks']:,}", _pct(s["dangerous"]))  # fmt: skip
    return seg


def print_verdict(console: Console, report: dict[str, Any], max_rate: float, alpha: float) -> None:
    """The dangerous-divergence rule's verdict, one line."""
    alert = report["alert"]
    if alert is None:
        console.print(f"no dangerous divergence (limit {max_rate:.0%}, alpha {alpha:g})")
        return
    console.print(
        f"[bold red]DANGEROUS DIVERGENCE[/] ({alert['event']}): after {alert['requests']:,} "
        f"requests the challenger approved {alert['approved']}/{alert['blocks']} champion "
        f"blocks (limit {max_rate:.0%}, p = {alert['p_value']:.2g}); stop the rollout"
    )
