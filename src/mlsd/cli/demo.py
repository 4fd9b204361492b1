"""`mlsd demo`: the main job, every capability end to end on embedded defaults."""

from __future__ import annotations

import typer


def demo(
    seconds: float | None = typer.Option(
        None, "--for", help="Stop by itself after this many seconds (default: run until Ctrl-C)."
    ),
) -> None:
    """Run mlsd end to end on embedded defaults: simulate, features, train, register, serve."""
    from mlsd.demo.runner import run_demo

    run_demo(seconds=seconds)
