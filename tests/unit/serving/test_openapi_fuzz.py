"""schemathesis over /openapi.json, in process, with every check: 0 failures, 0 answers 5xx.

The same engine `st run --checks all` drives (examples, coverage and fuzzing phases:
valid and invalid bodies, paths, queries, undeclared methods, missing headers), against the
ASGI app with its models loaded; deterministic (derandomized, no example database) and
bounded (a few cases per operation), so it stays well under a minute.

Three runs, each on a fresh service: the read and scoring operations with generated model
names (nearly all unknown: 404 before any body is read); the same with every path naming
the served `fraud` / version 1, so bodies reach the model; and the admin operations that
change what is served (load, unload, move an alias), apart: schemathesis reuses names it
read in answers, so it does unload `fraud@champion`, after which readiness is rightly 503.

Three allowances, only where a static spec cannot speak, all for valid data answered 422:
a V2 tensor whose value count or shape does not fit the served model's signature
(`[n, 15]`) on `/infer`; a job `path` naming no Parquet file in the data folder on
`/v1/jobs` (its rows are the `/v1/score` transactions, checked there without allowance);
and a rollout spec sent as YAML text (any string to the spec) that is not a spec, on
`POST /admin/rollouts`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

from mlsd.serving.app import create_app
from mlsd.serving.service import Service
from mlsd.settings import Settings

EXAMPLES = 12
SERVED = {"name": "fraud", "version": "1"}
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # schemathesis' defaults


MUTATING = r"^/admin/(models/(load|unload)|aliases)$"
RUNS = ["generated-names", "served-model", "admin-mutations"]


def _config(run: str) -> SchemathesisConfig:
    data: dict[str, Any] = {
        "seed": 20261201,
        "suppress-health-check": ["all"],
        "workers": 1,
        "headers": {"Authorization": "Bearer fuzz"},
        "checks": {"enabled": True},
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "operations": [  # schemathesis reuses `fraud` read in answers: every run needs them
            {
                "include-path-regex": "/infer$|^/v1/jobs$|^/admin/rollouts$",
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "422"]}},
            }
        ],
    }
    if run == "served-model":
        data["parameters"] = {"path.name": SERVED["name"], "path.version": SERVED["version"]}
    skip = "exclude-path-regex" if run == "admin-mutations" else "include-path-regex"
    data["operations"].append({skip: MUTATING, "enabled": False})
    return SchemathesisConfig.from_dict(data)


def _run(app: Any, run: str) -> tuple[list[str], Counter[int], int]:
    """Failures (one line each), statuses answered and cases run."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=_config(run))
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    cases = 0
    for event in from_schema(schema).execute():
        if isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"engine error: {getattr(event, 'info', event)}")
        if not isinstance(event, events.ScenarioFinished):
            continue
        cases += len(event.recorder.cases)
        for interaction in event.recorder.interactions.values():
            if interaction.response is not None:
                statuses[interaction.response.status_code] += 1
        for case_id, checks in event.recorder.checks.items():
            for check in checks:
                if check.failure_info is not None:
                    failure = check.failure_info.failure
                    step = event.recorder.cases[case_id].value
                    failures.append(
                        f"{event.recorder.label} [{check.name}] {failure.title}: "
                        f"{failure.message.splitlines()[0] if failure.message else ''} "
                        f"-- {step.method} {step.formatted_path} body={str(step.body)[:200]}"
                    )
    return sorted(set(failures)), statuses, cases


@pytest.mark.slow
@pytest.mark.parametrize("run", RUNS)
def test_every_operation_conforms_to_the_spec(
    settings: Settings, service: Service, run: str
) -> None:
    app = create_app(settings.model_copy(update={"admin_token": "fuzz"}), service=service)
    failures, statuses, cases = _run(app, run)
    assert cases > (30 if run == "admin-mutations" else 200), cases
    assert failures == [], "\n".join(failures)
    assert not [status for status in statuses if status >= 500], statuses


NAMES = ["fraud", "f", "fraud.v2", "a.b.c", "a-b_c", "a.", "0", "9" * 64, "9" * 65, "a..b",
         ".a", "-a", "_a", "a b", "a/b", "", "fraud@x", "é"]  # fmt: skip
ALIASES = ["champion", "c", "c-1_2", "x" * 32, "x" * 33, "Champion", "1st", "", "a.b", "a b"]


@pytest.mark.parametrize("name", NAMES)
def test_the_specs_model_name_is_the_registrys(name: str) -> None:
    """`AliasMoveRequest.name` (and `ModelRef`'s name part) take what the registry takes."""
    from pydantic import ValidationError as PydanticError

    from mlsd.errors import ValidationError
    from mlsd.registry.names import check_name
    from mlsd.serving.schemas import AliasMoveRequest, ModelRef

    try:
        check_name(name)
        registry = True
    except ValidationError:
        registry = False
    try:
        AliasMoveRequest(name=name, alias="champion", version=1)
        ModelRef(model=f"{name}@champion")
        ModelRef(model=f"{name}/3")
        spec = True
    except PydanticError:
        spec = False
    assert spec == registry


@pytest.mark.parametrize("alias", ALIASES)
def test_the_specs_alias_is_the_registrys(alias: str) -> None:
    from pydantic import ValidationError as PydanticError

    from mlsd.errors import ValidationError
    from mlsd.registry.names import check_alias
    from mlsd.serving.schemas import AliasMoveRequest, ModelRef

    try:
        check_alias(alias)
        registry = True
    except ValidationError:
        registry = False
    try:
        AliasMoveRequest(name="fraud", alias=alias, version=1)
        ModelRef(model=f"fraud@{alias}")
        spec = True
    except PydanticError:
        spec = False
    assert spec == registry
