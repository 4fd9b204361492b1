"""`mlsd rollout divergence`: how a shadow challenger's decisions diverge from the champion's.

Reads the prediction log (read-only), joins each shadow record with the answered record of
the same request, and prints the score distances, the disagreement overall and by segment,
and the dangerous-divergence rule's verdict (the challenger approving what the champion
blocks). To be moved under `mlsd rollout` once that group exists.
"""

from __future__ import annotations

import json

import typer

from mlsd.cli.predictions import _when


def _pct(interval: dict[str, float] | None) -> str:
    if interval is None:
        return "—"
    return f"{interval['estimate']:.2%} [{interval['low']:.2%}, {interval['high']:.2%}]"


def divergence(
    rollout: str | None = typer.Option(
        None, "--rollout", help="The shadow rollout id (default: the only one logged)."
    ),
    since: str | None = typer.Option(None, "--since", help="ISO time (UTC if no zone)."),
    until: str | None = typer.Option(None, "--until", help="ISO time, exclusive."),
    max_rate: float = typer.Option(
        0.2, "--max-rate", help="Alert above this share of champion blocks approved."
    ),
    alpha: float = typer.Option(0.01, "--alpha", help="False-alarm rate of the rule."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Divergence of a shadow challenger from the champion, from the prediction log."""
    from rich.console import Console
    from rich.table import Table

    from mlsd.predlog import open_reader
    from mlsd.rollout.divergence import DangerousDivergence, analyse
    from mlsd.rollout.pairs import pairs
    from mlsd.settings import get_settings

    rule = DangerousDivergence(max_rate=max_rate, alpha=alpha)  # refuses nonsense first
    start, end = _when(since, "since"), _when(until, "until")
    reader = open_reader(get_settings())
    try:
        frame = reader.read(start, end)
    finally:
        reader.close()
    report = analyse(pairs(frame, rollout), rule).to_dict()
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    console = Console()
    head = Table(title=f"shadow rollout {report['rollout']}: challenger vs champion")
    head.add_column("figure")
    head.add_column("value")
    rows = [
        ("pairs (mirrored requests)", f"{report['pairs']:,}"),
        ("versions", f"champion {', '.join(report['champion_versions'])}, "
                     f"challenger {', '.join(report['challenger_versions'])}"),
        ("score KS (p)", f"{report['ks_statistic']:.3f} ({report['ks_pvalue']:.2g})"),
        ("score PSI (champion = reference)", f"{report['psi']:.3f}"),
        ("decisions disagree", _pct(report["disagreement"])),
        ("champion blocks / challenger blocks",
         f"{report['champion_blocks']:,} / {report['challenger_blocks']:,}"),
        ("champion blocks the challenger approves", _pct(report["dangerous"])),
        (f"always-valid p (rate > {max_rate:g})", f"{report['dangerous_p_value']:.3g}"),
    ]  # fmt: skip
    for name, value in rows:
        head.add_row(name, value)
    console.print(head)
    seg = Table(title="by segment")
    for column in ("segment", "value", "pairs", "disagree", "champion blocks", "approved"):
        seg.add_column(column)
    for s in report["segments"]:
        seg.add_row(s["segment"], s["value"], f"{s['pairs']:,}", _pct(s["disagreement"]),
                    f"{s['champion_blocks']:,}", _pct(s["dangerous"]))  # fmt: skip
    console.print(seg)
    alert = report["alert"]
    if alert is None:
        console.print(f"no dangerous divergence (limit {max_rate:.0%}, alpha {alpha:g})")
    else:
        console.print(
            f"[bold red]DANGEROUS DIVERGENCE[/] ({alert['event']}): after {alert['requests']:,} "
            f"requests the challenger approved {alert['approved']}/{alert['blocks']} champion "
            f"blocks (limit {max_rate:.0%}, p = {alert['p_value']:.2g}); stop the rollout"
        )
