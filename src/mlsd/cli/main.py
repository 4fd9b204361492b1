"""Entry point of the `mlsd` command: sub-commands and the one error-to-exit-code map.

Sub-command modules import heavy libraries inside their functions, so that
`mlsd --help` stays fast.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from mlsd import __version__
from mlsd.errors import MlsdError

app = typer.Typer(
    name="mlsd",
    help="mlsd: a production ML system in one pip install, and a lab that measures its trade-offs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # plain help: rich help shows flags as `--quick <bool>` and `--build  --no-build`, which
    # reads as if they took a value; plain help shows `--quick` and `--build / --no-build`
    rich_markup_mode=None,
)
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlsd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """mlsd: features, registry, serving, rollouts, streaming, monitoring and a lab."""


def _register() -> None:
    """Attach every sub-command. Each module owns one concept."""
    from mlsd.cli import (
        ab,
        batch,
        compress,
        demo,
        divergence,
        features,
        importing,
        lab,
        monitor,
        predictions,
        registry,
        rollout,
        serve,
        simulate,
        stream,
        train,
    )
    from mlsd.cli import worker as job_worker

    app.command("simulate")(simulate.simulate)
    # a rollout's measurements live under `mlsd rollout` beside its controls
    rollout.app.command("divergence")(divergence.divergence)
    rollout.app.command("ab")(ab.ab)
    rollout.app.command("plan")(ab.ab_plan)
    commands = (importing, features, train, registry, compress, rollout, serve, job_worker, lab)
    for module in (*commands, predictions, monitor, stream, batch):
        module.register(app)
    app.command("demo")(demo.demo)


_register()


#: Driver modules of the optional backends, and the extra that installs each.
DRIVER_EXTRAS = {
    "redis": "redis",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "boto3": "s3",
    "botocore": "s3",
    "nats": "nats",
    "confluent_kafka": "kafka",
    "ray": "ray",
    "river": "monitoring",
}


def _fail(message: str, code: int) -> None:
    from rich.markup import escape

    # soft_wrap: one line however narrow the terminal, so it greps and pastes whole
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def run() -> None:
    """Run the CLI, turning every `MlsdError` into a message and its exit code.

    Typer's standalone mode already maps usage errors (exit 2) and Ctrl-C (exit 130).
    Two more failures a user causes get one line instead of a traceback: a backend
    URL whose driver extra is not installed (exit 6, like UnavailableError) and an
    `MLSD_*` setting that does not parse (exit 2, like ConfigError).
    """
    import pydantic

    from mlsd.errors import ConfigError, UnavailableError

    try:
        app()
    except MlsdError as exc:
        where = f" (field: {exc.field})" if exc.field else ""
        _fail(f"{exc.message}{where}", exc.exit_code)
    except ModuleNotFoundError as exc:
        root = (exc.name or "").partition(".")[0]
        if root not in DRIVER_EXTRAS:
            raise
        extra = DRIVER_EXTRAS[root]
        _fail(
            f"the configured backend needs the {root!r} driver, not installed: "
            f"pip install 'mlsd[{extra}]'",
            UnavailableError.exit_code,
        )
    except pydantic.ValidationError as exc:
        if exc.title != "Settings":
            raise
        problems = "; ".join(
            f"MLSD_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        _fail(f"invalid settings: {problems}", ConfigError.exit_code)


if __name__ == "__main__":
    run()
