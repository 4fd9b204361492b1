"""Alias history arithmetic: where a rollback goes.

A rollback undoes the latest move that has not been undone yet, so repeated
rollbacks walk back through the versions an alias pointed to:

>>> from datetime import UTC, datetime
>>> def mv(frm, to, kind="set"):
...     return AliasMove(name="m", alias="champion", from_version=frm, to_version=to,
...                      at=datetime.now(UTC), kind=kind, reason="", actor="t")
>>> rollback_target([mv(None, 1), mv(1, 2), mv(2, 3)])
2
>>> rollback_target([mv(None, 1), mv(1, 2), mv(2, 3), mv(3, 2, "rollback")])
1
"""

from __future__ import annotations

from collections.abc import Sequence

from mlsd.errors import ConflictError
from mlsd.registry.models import AliasMove


def pointed_stack(history: Sequence[AliasMove]) -> list[int | None]:
    """The versions an alias pointed to, oldest first, with rolled-back moves removed."""
    stack: list[int | None] = []
    for move in history:
        if move.kind == "rollback":
            if stack:
                stack.pop()
        else:
            stack.append(move.to_version)
    return stack


def rollback_target(history: Sequence[AliasMove]) -> int:
    """The version a rollback moves the alias back to (ConflictError when there is none)."""
    stack = pointed_stack(history)
    target = stack[-2] if len(stack) >= 2 else None
    if target is None:
        alias = history[-1].alias if history else "alias"
        raise ConflictError(f"{alias!r} has no earlier version to roll back to", field="alias")
    return target
