"""`mlsd worker`: run the jobs of a shared job queue in a process of their own."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from mlsd.serving.service import Service


def worker(
    model: list[str] = typer.Option(
        ["fraud@champion"], "--model", help="Model to score with, NAME@ALIAS or NAME/VERSION."
    ),
    nice: int = typer.Option(
        10, "--nice", min=0, max=19, help="CPU priority below the servers' (0 = the same)."
    ),
) -> None:
    """Score the jobs of the shared job queue (MLSD_JOB_QUEUE=redis://...) in this process.

    Run it beside `mlsd serve --no-job-worker` so batch jobs never slow online scoring.
    Give it the server's settings: it loads the same models, follows the same aliases and
    logs to the prediction log they name (the same data folder, or MLSD_PREDICTION_LOG on
    PostgreSQL, keeps one log).

    On SIGTERM or Ctrl-C it finishes the job it is running, then stops; if killed, its job
    runs again (at its restart on the same data folder, or on another worker once its 5 s
    lease lapses), its rows logged once. Exit code 2 without a shared queue.
    """
    from mlsd.inference.host import parse_ref
    from mlsd.serving.service import ServeOptions
    from mlsd.serving.worker import check_shared_queue, run_worker
    from mlsd.settings import get_settings

    for ref in model:
        parse_ref(ref)
    settings = get_settings()
    check_shared_queue(settings)
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    def _ready(service: Service) -> None:
        typer.echo(f"mlsd worker: scoring jobs of {settings.job_queue} with {', '.join(model)}")

    run_worker(settings, ServeOptions(models=tuple(model)), stop, nice=nice, on_ready=_ready)


def register(app: typer.Typer) -> None:
    """Add the `worker` command."""
    app.command("worker")(worker)
