"""The error hierarchy: one root, and each kind maps to a distinct HTTP status and exit code."""

from __future__ import annotations

import inspect

import pytest

from mlsd import errors
from mlsd.errors import MlsdError, NotFoundError, ValidationError


def _kinds() -> list[type[MlsdError]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, MlsdError) and obj is not MlsdError
    ]


@pytest.mark.parametrize("kind", _kinds(), ids=lambda kind: kind.__name__)
def test_every_kind_is_a_user_facing_status(kind: type[MlsdError]) -> None:
    assert 400 <= kind.http_status < 600
    assert kind.exit_code != 0


def test_client_errors_are_4xx() -> None:
    assert ValidationError.http_status == 422
    assert NotFoundError.http_status == 404
    assert errors.AuthError.http_status == 401
    assert errors.PayloadTooLargeError.http_status == 413


def test_to_dict_names_the_field() -> None:
    body = ValidationError("amount must be >= 0", field="TX_AMOUNT").to_dict()
    assert body == {
        "error": "ValidationError",
        "message": "amount must be >= 0",
        "field": "TX_AMOUNT",
    }
