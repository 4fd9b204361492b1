"""`mlsd registry ...`: list, show, alias, rollback, history, promote, tag, diff, reproduce."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from mlsd.errors import NotFoundError, UnavailableError, ValidationError

if TYPE_CHECKING:
    from mlsd.registry import Registry

app = typer.Typer(
    help="The model registry: versions, aliases, lineage, promotion, rollback.",
    rich_markup_mode=None,  # flags shown as `--json`, `--x / --no-x` (see mlsd.cli.main)
)


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _pairs(items: list[str], field: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValidationError(f"expected KEY=VALUE, got {item!r}", field=field)
        out[key] = value
    return out


def _floats(items: list[str], field: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in _pairs(items, field).items():
        try:
            out[key] = float(value)
        except ValueError:
            raise ValidationError(f"{key}={value!r} is not a number", field=field) from None
    return out


def _uri(positional: str | None, option: str | None) -> str:
    uri = positional or option
    if not uri:
        raise ValidationError(
            "give a model URI, e.g. fraud/3 or --uri models:/fraud@champion", field="uri"
        )
    return uri


URI_OPTION = typer.Option(None, "--uri", help="The same URI as an option.")


@contextmanager
def _registry() -> Iterator[Registry]:
    from mlsd.registry import Registry

    registry = Registry.open()
    try:
        yield registry
    finally:
        registry.close()


def _where() -> str:
    """Which registry the settings name, for messages (never a password)."""
    from urllib.parse import urlsplit

    from mlsd.settings import get_settings

    settings = get_settings()
    url = settings.registry_db
    if not url:
        return str(settings.path("registry", "registry.db").resolve())
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _known(registry: Registry, name: str) -> None:
    """NotFoundError naming the registered models when `name` is not one of them."""
    if registry.search(name, limit=1):
        return
    names = ", ".join(m.name for m in registry.list_models()) or "none yet"
    raise NotFoundError(
        f"no model named {name!r} in the registry at {_where()} (registered: {names})",
        field="name",
    )


def _print(renderable: Any) -> None:
    from rich.console import Console

    Console().print(renderable)


@app.command("list")
def list_(
    name: str | None = typer.Argument(None, help="List this model's versions."),
    tag: str | None = typer.Option(None, "--tag", help="Only versions with KEY or KEY=VALUE."),
    limit: int = typer.Option(50, "--limit", help="At most this many versions."),
) -> None:
    """Registered models, or the versions of one model (and/or with a tag)."""
    from mlsd.registry.render import models_table, versions_table

    with _registry() as registry:
        if name is None and tag is None:
            models = registry.list_models()
            if not models:
                raise NotFoundError(
                    f"no models registered yet in {_where()}: `mlsd train --promote` "
                    "trains and registers one (or set MLSD_HOME / MLSD_REGISTRY_DB)",
                    field="name",
                )
            _print(models_table(models))
            return
        if name is not None:
            _known(registry, name)
        key, _, value = (tag or "").partition("=")
        versions = registry.search(
            name, key or None, value if tag and "=" in tag else None, limit=limit
        )
        if not versions:
            raise NotFoundError(f"no version has the tag {tag!r}", field="tag")
        aliases = {n: registry.aliases(n) for n in {v.name for v in versions}}
        _print(versions_table(versions, aliases))


@app.command()
def show(
    uri: str | None = typer.Argument(None, help="models:/fraud/3, fraud/3 or fraud@champion."),
    uri_option: str | None = URI_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the full record as JSON."),
    requirements: bool = typer.Option(
        False, "--requirements", help="Print the pinned requirements file of its environment."
    ),
    verify: bool = typer.Option(False, "--verify", help="Also check every artifact's sha256."),
) -> None:
    """Everything about one version: lineage, metrics, artifacts, environment and its diff."""
    from mlsd.registry.render import version_table

    with _registry() as registry:
        mv = registry.resolve(_uri(uri, uri_option))
        if verify:
            registry.verify(mv)
        if requirements:
            typer.echo(mv.environment.requirements, nl=False)
        elif as_json:
            typer.echo(mv.model_dump_json(indent=2))
        else:
            _print(version_table(mv, registry.environment_diff(mv)))
            if verify:
                _print(f"[green]{len(mv.artifacts)} artifacts verified[/]")


@app.command()
def alias(
    name: str = typer.Argument(..., help="Model name."),
    alias_name: str = typer.Argument(..., metavar="ALIAS", help="e.g. champion, challenger."),
    version: int | None = typer.Argument(None, help="Version to point at (omit with --delete)."),
    reason: str = typer.Option("", "--reason", help="Why (recorded in the history)."),
    actor: str = typer.Option(None, "--actor", help="Who (default: the current user)."),
    delete: bool = typer.Option(False, "--delete", help="Remove the alias."),
) -> None:
    """Point NAME@ALIAS at VERSION (no gate; use `promote` for a gated move)."""
    with _registry() as registry:
        who = actor or _actor()
        if delete:
            move = registry.delete_alias(name, alias_name, reason=reason, actor=who)
        elif version is None:
            raise ValidationError("give a VERSION or --delete", field="version")
        else:
            move = registry.set_alias(name, alias_name, version, reason=reason, actor=who)
    _print(f"{name}@{alias_name}: {move.from_version} -> {move.to_version}")


@app.command()
def rollback(
    name: str = typer.Argument(..., help="Model name."),
    alias_name: str = typer.Argument("champion", metavar="ALIAS", help="Alias to move back."),
    reason: str = typer.Option("", "--reason", help="Why (recorded in the history)."),
    actor: str = typer.Option(None, "--actor", help="Who (default: the current user)."),
) -> None:
    """Move NAME@ALIAS back to the version it pointed to before its latest move."""
    with _registry() as registry:
        move = registry.rollback(name, alias_name, reason=reason, actor=actor or _actor())
    _print(f"rolled back {name}@{alias_name}: {move.from_version} -> {move.to_version}")


@app.command()
def history(
    name: str = typer.Argument(..., help="Model name."),
    alias_name: str | None = typer.Option(None, "--alias", help="Only this alias."),
    decisions: bool = typer.Option(False, "--decisions", help="Also show gate decisions."),
) -> None:
    """Every alias move (and optionally every promotion decision) of a model."""
    from mlsd.registry.render import decision_table, history_table

    with _registry() as registry:
        _known(registry, name)
        moves = registry.alias_history(name, alias_name)
        if moves:
            _print(history_table(moves))
        else:
            which = f"@{alias_name}" if alias_name else "aliases"
            _print(f"{name} is registered but its {which} never moved (`mlsd registry promote`)")
        if decisions:
            for decision in registry.decisions(name):
                _print(decision_table(decision))


@app.command()
def promote(
    uri: str | None = typer.Argument(None, help="The candidate, e.g. fraud/4."),
    uri_option: str | None = URI_OPTION,
    alias_name: str = typer.Option("champion", "--alias", help="Alias to move."),
    minimum: list[str] = typer.Option([], "--min", help="Floor METRIC=VALUE (repeatable)."),
    max_regression: list[str] = typer.Option(
        [], "--max-regression", help="Allowed drop vs the holder, METRIC=VALUE (repeatable)."
    ),
    force: bool = typer.Option(False, "--force", help="Move even if the gate refuses."),
    reason: str = typer.Option("", "--reason", help="Why (recorded)."),
    actor: str = typer.Option(None, "--actor", help="Who (default: the current user)."),
) -> None:
    """Gated promotion: move ALIAS to the candidate if it passes the metric thresholds.

    Without --min/--max-regression the default gate applies: no more than 0.005 AUC,
    0.01 AP or 0.01 CP@100 below the current champion. Regressions compare metrics of
    the same test data only: a champion tested on another dataset or period is a refusal
    saying so (`mlsd train --promote` re-scores it on the candidate's test rows instead).
    A refusal exits with code 8 and names every failed bound.
    """
    from mlsd.registry import PromotionGate
    from mlsd.registry.gate import default_gate
    from mlsd.registry.render import decision_table

    floors, drops = _floats(minimum, "min"), _floats(max_regression, "max_regression")
    gate = PromotionGate(min_metrics=floors, max_regression=drops) if floors or drops else None
    with _registry() as registry:
        mv = registry.resolve(_uri(uri, uri_option))
        decision = registry.promote(
            mv.name,
            mv.version,
            gate=gate or default_gate(),
            actor=actor or _actor(),
            reason=reason,
            alias=alias_name,
            force=force,
        )
    _print(decision_table(decision))


@app.command()
def tag(
    uri: str = typer.Argument(..., help="e.g. fraud/3."),
    tags: list[str] = typer.Argument(None, help="KEY=VALUE tags to set."),
    remove: list[str] = typer.Option([], "--remove", help="Tag keys to delete (repeatable)."),
) -> None:
    """Set or remove free tags on a version (e.g. release=v3.2-prod)."""
    with _registry() as registry:
        mv = registry.set_tags(uri, _pairs(tags or [], "tags"), tuple(remove))
    _print(f"{mv.uri}: " + (", ".join(f"{k}={v}" for k, v in mv.tags.items()) or "no tags"))


@app.command()
def diff(
    uri_a: str = typer.Argument(..., help="First version, e.g. fraud/2."),
    uri_b: str = typer.Argument(..., help="Second version, e.g. fraud@champion."),
    show_all: bool = typer.Option(False, "--all", help="Also show rows that are equal."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Metrics, params, lineage and environment of two versions side by side."""
    from mlsd.registry.diff import diff as compare
    from mlsd.registry.render import diff_table

    with _registry() as registry:
        result = compare(registry.resolve(uri_a), registry.resolve(uri_b))
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        _print(diff_table(result, show_all))


@app.command()
def reproduce(
    uri: str | None = typer.Argument(None, help="e.g. fraud/3."),
    uri_option: str | None = URI_OPTION,
) -> None:
    """Retrain from the recorded lineage and report whether the predictions match."""
    from rich.table import Table

    try:
        from mlsd.training.reproduce import reproduce as run_reproduce
    except ModuleNotFoundError as exc:
        if exc.name not in ("mlsd.training", "mlsd.training.reproduce"):
            raise
        raise UnavailableError("reproduce needs mlsd.training.reproduce, not installed") from exc
    with _registry() as registry:
        report = run_reproduce(registry, _uri(uri, uri_option))
    verdict = "[green]predictions match[/]" if report.matches else "[red]predictions differ[/]"
    table = Table(title=f"reproduce {report.uri}: {verdict}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in report.to_dict().items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
    _print(table)
    if not report.matches:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    """Attach `mlsd registry`."""
    root.add_typer(app, name="registry")
