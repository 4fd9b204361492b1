"""`mlsd demo`: the main job, every capability end to end on embedded defaults."""

from __future__ import annotations

import typer


def demo(
    seconds: float | None = typer.Option(
        None,
        "--for",
        min=1,
        help="Serve traffic for this many seconds after setup, then stop (default: until Ctrl-C).",
    ),
) -> None:
    """Run mlsd end to end on embedded defaults: simulate, features, train, register, serve."""
    from mlsd.demo.runner import run_demo

    run_demo(seconds=seconds)
