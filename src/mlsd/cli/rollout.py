"""`mlsd rollout ...`: start, status, promote, abort, rollback, history.

The commands write the rollout state in the registry database the settings name; every
`mlsd serve` on that database picks the change up within its poll interval (0.2 s).
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from mlsd.rollout.manage import Rollout, RolloutManager

app = typer.Typer(
    help="Progressive delivery: shadow, A/B, canary and blue-green rollouts of a model.",
    rich_markup_mode=None,
    no_args_is_help=True,
)
JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@contextmanager
def _manager(*, views: bool = False) -> Iterator[RolloutManager]:
    """The manager on the configured registry (and, to start, the served feature views)."""
    from mlsd.registry import Registry
    from mlsd.rollout.manage import RolloutManager
    from mlsd.settings import get_settings

    settings = get_settings()
    registry = Registry.open(settings)
    store = None
    try:
        served = None
        if views:
            from mlsd.features.store import FeatureStore

            store = FeatureStore.open(settings)
            served = store.view_versions
        yield RolloutManager(registry, served)
    finally:
        if store is not None:
            store.close()
        registry.close()


def _print(renderable: Any) -> None:
    from rich.console import Console

    Console().print(renderable)


def _show(rollouts: list[Rollout], as_json: bool) -> None:
    from rich.table import Table

    from mlsd.rollout.view import view

    if as_json:
        import json

        typer.echo(json.dumps([view(r).model_dump(mode="json") for r in rollouts], indent=2))
        return
    table = Table("id", "endpoint", "kind", "state", "champion", "challenger", "step", "share %",
                  "failed checks", "updated")  # fmt: skip
    for r in rollouts:
        rec, spec = r.record, r.spec
        step = f"{rec.step + 1}/{len(spec.steps)}" if spec.kind == "canary" else "-"
        table.add_row(
            rec.id, rec.endpoint, rec.kind, rec.state, str(spec.champion), str(spec.challenger),
            step, f"{rec.share:g}", str(rec.failed_checks), rec.updated_at.strftime("%H:%M:%S"),
        )  # fmt: skip
    _print(table)


@app.command()
def start(
    spec: Path = typer.Argument(..., help="The rollout spec (YAML or JSON file)."),
    as_json: bool = JSON,
) -> None:
    """Start a rollout: checked against the registry and the served features first."""
    from mlsd.rollout.spec import RolloutSpec

    parsed = RolloutSpec.load(spec)
    with _manager(views=True) as manager:
        _show([manager.start(parsed, actor=_actor())], as_json)


@app.command()
def status(
    rollout_id: str | None = typer.Argument(None, help="One rollout (default: all)."),
    active: bool = typer.Option(False, "--active", help="Only running rollouts."),
    as_json: bool = JSON,
) -> None:
    """Where rollouts stand: state, step, challenger share, failed checks."""
    with _manager() as manager:
        found = [manager.get(rollout_id)] if rollout_id else manager.rollouts(active_only=active)
    if not found and not as_json:
        typer.echo("no running rollouts" if active else "no rollouts yet")
        return
    _show(found, as_json)


@app.command()
def promote(rollout_id: str = typer.Argument(..., help="A running rollout.")) -> None:
    """Move the alias to the challenger now and end the rollout."""
    with _manager() as manager:
        _show([manager.promote(rollout_id, actor=_actor())], False)


@app.command()
def abort(rollout_id: str = typer.Argument(..., help="A running rollout.")) -> None:
    """Stop a rollout: all traffic back on the champion, nothing promoted."""
    with _manager() as manager:
        _show([manager.abort(rollout_id, actor=_actor())], False)


@app.command()
def rollback(rollout_id: str = typer.Argument(..., help="A running or promoted rollout.")) -> None:
    """Back to the pinned champion (a promoted rollout moves the alias back)."""
    with _manager() as manager:
        _show([manager.rollback(rollout_id, actor=_actor())], False)


@app.command()
def history(rollout_id: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Every step, check (with its figures) and decision of a rollout."""
    from rich.table import Table

    with _manager() as manager:
        events = manager.history(rollout_id)
    if as_json:
        import json

        typer.echo(json.dumps([e.model_dump(mode="json") for e in events], indent=2))
        return
    table = Table("at", "event", "decision", "share %", "actor", "reason")
    for e in events:
        table.add_row(e.at.strftime("%H:%M:%S.%f")[:-3], e.kind, e.decision, f"{e.share:g}",
                      e.actor, e.reason)  # fmt: skip
    _print(table)


def register(root: typer.Typer) -> None:
    """Attach `mlsd rollout`."""
    root.add_typer(app, name="rollout")
