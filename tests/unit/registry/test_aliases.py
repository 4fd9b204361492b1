from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlsd.errors import ConflictError
from mlsd.registry import AliasMove
from mlsd.registry.aliases import rollback_target
from mlsd.registry.models import MoveKind


def move(frm: int | None, to: int | None, kind: MoveKind = "set") -> AliasMove:
    return AliasMove(
        name="m",
        alias="champion",
        from_version=frm,
        to_version=to,
        at=datetime.now(UTC),
        kind=kind,
        reason="",
        actor="t",
    )


def test_rollback_goes_to_the_previous_version() -> None:
    assert rollback_target([move(None, 1), move(1, 2), move(2, 3)]) == 2


def test_repeated_rollbacks_walk_further_back() -> None:
    history = [move(None, 1), move(1, 2), move(2, 3), move(3, 2, "rollback")]
    assert rollback_target(history) == 1


def test_a_move_after_a_rollback_is_undone_first() -> None:
    history = [move(None, 1), move(1, 2), move(2, 1, "rollback"), move(1, 5, "promote")]
    assert rollback_target(history) == 1


def test_nothing_to_roll_back_to_is_a_conflict() -> None:
    with pytest.raises(ConflictError):
        rollback_target([move(None, 1)])
    with pytest.raises(ConflictError):
        rollback_target([move(None, 1), move(1, 2), move(2, 1, "rollback")])
    with pytest.raises(ConflictError):
        rollback_target([])


def test_a_deleted_alias_rolls_back_to_its_last_version() -> None:
    assert rollback_target([move(None, 1), move(1, 2), move(2, None, "delete")]) == 2
