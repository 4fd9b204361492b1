"""`mlsd rollout ...` and `/admin/rollouts`: the commands work, and bad input is refused
with the field named while the running rollout stays as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlsd.cli.main import app
from mlsd.errors import ConflictError, MlsdError, NotFoundError, ValidationError
from mlsd.registry import Registry
from mlsd.serving.app import create_app
from mlsd.serving.service import Service
from mlsd.serving.testing import register_tiny_model
from mlsd.settings import Settings

ADMIN = {"Authorization": "Bearer t0ken"}
CANARY = {"id": "c1", "kind": "canary", "champion": 1, "challenger": 2, "steps": [5, 50, 100]}


@pytest.fixture
def admin(settings: Settings, service: Service, make_client: Any) -> Any:
    return make_client(create_app(settings.model_copy(update={"admin_token": "t0ken"}),
                                  service=service))  # fmt: skip


@pytest.fixture
def unservable(registry: Registry, artifacts: dict[int, dict[str, bytes]]) -> int:
    """fraud/3, trained on a feature view version the store does not serve."""
    return register_tiny_model(registry, artifacts[1], {"customer_spending": "f" * 64}).version


def test_the_admin_api_runs_a_rollout(admin: Any, service: Service) -> None:
    started = admin.post("/admin/rollouts", json=CANARY, headers=ADMIN)
    assert started.status_code == 201, started.text
    assert (started.json()["state"], started.json()["share"]) == ("running", 5.0)
    assert [layer.name for layer in service.pipeline.layers] == ["rollout:c1"], "applied at once"
    got = admin.get("/admin/rollouts/c1", headers=ADMIN).json()
    assert (got["steps"], got["exposed_requests"]) == ([5.0, 50.0, 100.0], 0)
    promoted = admin.post("/admin/rollouts/c1/promote", headers=ADMIN).json()
    assert promoted["state"] == "promoted"
    assert service.host.get("fraud", alias="champion").version == 2
    assert not service.pipeline.layers
    back = admin.post("/admin/rollouts/c1/rollback", headers=ADMIN).json()
    assert back["state"] == "rolled_back"
    assert service.host.registry.aliases("fraud")["champion"] == 1  # type: ignore[attr-defined]
    history = admin.get("/admin/rollouts/c1/history", headers=ADMIN).json()
    assert [e["kind"] for e in history] == ["start", "promote", "rollback"]
    assert admin.get("/admin/rollouts", headers=ADMIN).status_code == 200
    assert admin.get("/admin/rollouts").status_code == 401


def _bad_bodies(unservable: int) -> list[tuple[Any, int, str]]:
    return [
        ({**CANARY, "kind": "ab", "weights": {"champion": 60, "challenger": 30}}, 422, "weights"),
        ({**CANARY, "challenger": 9}, 404, "challenger"),
        ({**CANARY, "challenger": unservable}, 409, "challenger"),
        ({**CANARY, "champion": 2, "challenger": 1}, 409, "champion"),
        ({**CANARY, "endpoint": "nope"}, 404, "endpoint"),
        ({**CANARY, "id": "c2"}, 409, "endpoint"),  # a second rollout on the endpoint
        ("{not json: [", 422, "spec"),
        ({**CANARY, "steps": [5, 50]}, 422, "steps"),
    ]


def test_bad_input_is_a_4xx_naming_the_field(admin: Any, service: Service, unservable: int) -> None:
    assert (
        admin.post("/admin/rollouts", json={**CANARY, "id": "c0"}, headers=ADMIN).status_code == 201
    )
    for body, status, field in _bad_bodies(unservable):
        sent = (
            admin.post("/admin/rollouts", content=body, headers=ADMIN)
            if isinstance(body, str)
            else admin.post("/admin/rollouts", json=body, headers=ADMIN)
        )
        assert (sent.status_code, sent.json()["field"]) == (status, field), (body, sent.text)
    running = admin.get("/admin/rollouts/c0", headers=ADMIN).json()
    assert (running["state"], running["share"]) == ("running", 5.0), "untouched"
    assert [layer.name for layer in service.pipeline.layers] == ["rollout:c0"]
    assert admin.post("/admin/rollouts/c0/abort", headers=ADMIN).status_code == 200
    refused = admin.post("/admin/rollouts/c0/promote", headers=ADMIN)
    assert (refused.status_code, refused.json()["field"]) == (409, "state")
    assert "aborted" in refused.json()["message"]
    assert admin.get("/admin/rollouts/nope", headers=ADMIN).status_code == 404


@pytest.fixture
def cli(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "250")
    return CliRunner()


def _run(cli: CliRunner, *args: str) -> Any:
    return cli.invoke(app, ["rollout", *args])


def _error(cli: CliRunner, *args: str) -> MlsdError:
    result = _run(cli, *args)
    assert isinstance(result.exception, MlsdError), result.output
    return result.exception


def test_the_cli_runs_a_rollout_and_refuses_bad_input(
    cli: CliRunner, tmp_path: Path, registry: Registry, unservable: int
) -> None:
    assert _run(cli, "status").output.strip() == "no rollouts yet"
    spec = tmp_path / "c1.yaml"
    spec.write_text("id: c1\nkind: canary\nchampion: 1\nchallenger: 2\nsteps: [5, 50, 100]\n")
    started = _run(cli, "start", str(spec))
    assert started.exit_code == 0, started.output
    assert "running" in started.output
    for body, kind, field in [
        ({**CANARY, "id": "c2"}, ConflictError, "endpoint"),
        ({**CANARY, "challenger": unservable, "id": "c3"}, ConflictError, "challenger"),
        ({**CANARY, "challenger": 9}, NotFoundError, "challenger"),
        ({**CANARY, "kind": "ab", "weights": {"champion": 50, "challenger": 40}}, ValidationError,
         "weights"),
    ]:  # fmt: skip
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(body))
        error = _error(cli, "start", str(bad))
        assert (type(error), error.field) == (kind, field), error.message
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: [unclosed\n")
    assert _error(cli, "start", str(broken)).field == "spec"
    assert _error(cli, "start", str(tmp_path / "missing.yaml")).field == "spec"
    status = json.loads(_run(cli, "status", "c1", "--json").output)
    assert (status[0]["state"], status[0]["share"]) == ("running", 5.0)
    assert _run(cli, "abort", "c1").exit_code == 0
    refused = _error(cli, "promote", "c1")
    assert (type(refused), refused.field) == (ConflictError, "state")
    history = _run(cli, "history", "c1")
    assert "start" in history.output
    assert "abort" in history.output
    assert _error(cli, "history", "nope").exit_code == NotFoundError.exit_code


def test_the_cli_exit_code_and_message(registry: Registry, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({**CANARY, "kind": "ab", "weights": {"champion": 1, "challenger": 2}})
    )
    done = subprocess.run(
        [sys.executable, "-m", "mlsd.cli.main", "rollout", "start", str(bad)],
        capture_output=True, text=True, env={**os.environ}, check=False,
    )  # fmt: skip
    assert done.returncode == ValidationError.exit_code
    assert "weights: must sum to 100" in done.stderr
    assert "Traceback" not in done.stderr
