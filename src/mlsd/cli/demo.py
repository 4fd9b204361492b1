"""`mlsd demo`: the main job, every capability end to end on embedded defaults."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    seconds: float | None = typer.Option(
        None,
        "--for",
        min=1,
        help="Replay traffic for at most this many seconds after setup (default: until the "
        "held-out days end, or Ctrl-C).",
    ),
    home: Path | None = typer.Option(
        None,
        "--home",
        help="The demo's own data folder (default: $MLSD_HOME/demo); each run replaces its "
        "datasets and online store.",
    ),
    speed: float | None = typer.Option(
        None,
        "--speed",
        min=1,
        help="Replay at this many times real time (default: as fast as the service answers).",
    ),
    alert_budget: int = typer.Option(
        100, "--alert-budget", min=1, help="Cards the fraud team can check per day."
    ),
    small: bool = typer.Option(
        False, "--small", help="A small world (setup in seconds; noisy metrics): for tests."
    ),
) -> None:
    """Run mlsd end to end: simulate, features, train, register, then replay held-out days
    through the service and report what a fraud team would read."""
    from mlsd.demo.runner import FULL, SMALL, run_demo

    run_demo(
        seconds=seconds,
        home=home,
        size=SMALL if small else FULL,
        speedup=speed,
        alert_budget=alert_budget,
    )
