"""Every boolean flag of every command reads in `--help` the way it is typed, and parses so.

The trap: rich help showed `--quick <bool>` (and `--build  --no-build` in two columns), so
`mlsd train --quick true` looked right and failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from mlsd.cli.main import app


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if hasattr(group, "commands"):  # a group (typer vendors its own click)
        for name, sub in group.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path


ROOT = typer.main.get_command(app)
COMMANDS = list(_commands(ROOT))


def _command(path: tuple[str, ...]) -> Any:
    cmd: Any = ROOT
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def test_every_command_is_walked() -> None:
    assert ("train",) in COMMANDS
    assert ("features", "parity") in COMMANDS
    assert ("registry", "promote") in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_flags_render_and_parse_as_shown(path: tuple[str, ...]) -> None:
    out = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "<bool>" not in out.output
    command = _command(path)
    for param in command.params:
        if param.param_type_name != "option" or not param.is_flag or param.name == "help":
            continue
        shown = " / ".join(["/".join(param.opts), "/".join(param.secondary_opts)]).strip(" /")
        assert shown in out.output, f"{path}: {shown!r} not in help"
        for flag, expected in [(o, True) for o in param.opts] + [
            (o, False) for o in param.secondary_opts
        ]:
            ctx = command.make_context(path[-1], [flag], resilient_parsing=True)
            assert ctx.params[param.name] is expected, f"{path} {flag}"
