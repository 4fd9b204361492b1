"""`mlsd serve`: the online inference service (REST v1 + Open Inference Protocol V2)."""

from __future__ import annotations

import typer


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    model: list[str] = typer.Option(
        ["fraud@champion"], "--model", help="Model to serve, NAME@ALIAS or NAME/VERSION; repeat."
    ),
    max_batch_size: int = typer.Option(64, "--max-batch-size", min=1, max=65536),
    max_delay_ms: float = typer.Option(
        0.0,
        "--max-delay-ms",
        help=(
            "Micro-batch maximum wait (adaptive: flushed at the first loop turn with no new "
            "request); 0 = same loop turn only, <0 = off."
        ),
    ),
    fail_degraded: bool = typer.Option(
        False, "--fail-when-degraded", help="Answer 503 instead of scoring without stored features."
    ),
    tune_process: bool = typer.Option(
        True,
        "--tune/--no-tune",
        help="GC: freeze the loaded heap, collect less often; GIL: switch every 1 ms.",
    ),
    log_level: str = typer.Option("warning", "--log-level"),
) -> None:
    """Serve fraud scores over HTTP with one uvicorn worker."""
    import uvicorn

    from mlsd.inference.batcher import BatchConfig
    from mlsd.inference.host import parse_ref
    from mlsd.serving.app import create_app
    from mlsd.serving.service import ServeOptions
    from mlsd.settings import get_settings

    for ref in model:
        parse_ref(ref)  # a bad reference fails here, with its exit code
    options = ServeOptions(
        models=tuple(model),
        batching=BatchConfig(max_batch_size, max_delay_ms),
        fail_when_degraded=fail_degraded,
        tune_process=tune_process,
    )
    app = create_app(get_settings(), options=options)
    typer.echo(f"mlsd serving {', '.join(model)} on http://{host}:{port} (docs at /docs)")
    uvicorn.run(app, host=host, port=port, workers=1, log_level=log_level)


def register(app: typer.Typer) -> None:
    """Add the `serve` command."""
    app.command("serve")(serve)
