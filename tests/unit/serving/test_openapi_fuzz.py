"""schemathesis over /openapi.json, in process: no 5xx and no answer outside the spec.

Each operation gets a bounded number of generated cases (valid and invalid
bodies, paths and queries), run against the ASGI app with its models loaded.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mlsd.serving.app import create_app
from mlsd.serving.service import Service
from mlsd.settings import Settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 25
SERVED = {"name": "fraud", "version": "1"}


@pytest.mark.slow
def test_every_operation_conforms_to_the_spec(settings: Settings, service: Service) -> None:
    app = create_app(settings.model_copy(update={"admin_token": "fuzz"}), service=service)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:

        @given(case=operation.as_strategy(), served=st.booleans())
        @hypothesis_settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any, served: bool) -> None:
            if served and case.path_parameters:  # half the cases name the served model
                case.path_parameters = {
                    **case.path_parameters,
                    **{k: v for k, v in SERVED.items() if k in case.path_parameters},
                }
            case.call_and_validate(checks=CHECKS, headers={"Authorization": "Bearer fuzz"})

        run()
