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
    rich_markup_mode="rich",
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
    from mlsd.cli import demo, features, predictions, registry, serve, simulate, train

    app.command("simulate")(simulate.simulate)
    for module in (features, train, registry, serve, predictions):
        module.register(app)
    app.command("demo")(demo.demo)


_register()


def run() -> None:
    """Run the CLI, turning every `MlsdError` into a message and its exit code.

    Typer's standalone mode already maps usage errors (exit 2) and Ctrl-C (exit 130).
    """
    try:
        app()
    except MlsdError as exc:
        where = f" (field: {exc.field})" if exc.field else ""
        err_console.print(f"[bold red]error:[/] {exc.message}{where}")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    run()
