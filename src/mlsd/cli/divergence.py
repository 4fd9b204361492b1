"""`mlsd rollout divergence`: how a shadow challenger's decisions diverge from the champion's.

Reads the prediction log (read-only), joins each shadow record with the answered record of
the same request, and prints the score distances, the disagreement overall and by segment,
and the dangerous-divergence rule's verdict (the challenger approving what the champion
blocks).
"""

from __future__ import annotations

import json

import typer

from mlsd.cli.predictions import _when


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

    from mlsd.predlog import open_reader
    from mlsd.rollout.divergence import DangerousDivergence, analyse
    from mlsd.rollout.divergence_view import print_verdict, segment_table, summary_table
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
    console.print(summary_table(report, max_rate))
    console.print(segment_table(report))
    print_verdict(console, report, max_rate, alpha)
