"""One error hierarchy for mlsd.

Every error a user can cause or meet hangs from `MlsdError`. Each kind carries
its HTTP status and CLI exit code, so the CLI and the HTTP API map errors in
one place each (`mlsd.cli.main` and the serving app's exception handler).
"""

from __future__ import annotations

from typing import ClassVar


class MlsdError(Exception):
    """Root of every mlsd error."""

    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str | None]:
        """The error as an API body: its kind, message and offending field."""
        return {"error": type(self).__name__, "message": self.message, "field": self.field}


class ConfigError(MlsdError):
    """Settings or a configuration file make no sense."""

    http_status = 400
    exit_code = 2


class ValidationError(MlsdError):
    """User input is malformed: a wrong type, a missing field, a value out of range."""

    http_status = 422
    exit_code = 2


class NotFoundError(MlsdError):
    """Something named does not exist: a model, a version, a feature, a job."""

    http_status = 404
    exit_code = 3


class ConflictError(MlsdError):
    """The request clashes with stored state: a folder holding other data, a taken name."""

    http_status = 409
    exit_code = 4


class IntegrityError(MlsdError):
    """Stored data failed a check: a checksum mismatch, a missing artifact."""

    http_status = 500
    exit_code = 5


class UnavailableError(MlsdError):
    """A backend did not answer in time or is down."""

    http_status = 503
    exit_code = 6


class AuthError(MlsdError):
    """A missing or wrong credential."""

    http_status = 401
    exit_code = 7


class PayloadTooLargeError(MlsdError):
    """A request body over the configured limit."""

    http_status = 413
    exit_code = 2


class GateRejectedError(MlsdError):
    """A promotion gate or validation gate refused a model."""

    http_status = 409
    exit_code = 8
