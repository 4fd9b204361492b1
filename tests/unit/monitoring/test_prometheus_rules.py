"""deploy/prometheus/mlsd-rules.yml: valid, and its alerts fire as its unit tests say; the
Prometheus and Alertmanager configs in deploy/ are valid.

Needs `promtool` (Debian: `apt-get install prometheus`). Without it the test skips, unless
MLSD_REQUIRE_SERVERS=1 (CI), where it fails: CI must not pass by skipping.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVERS, need_tool

RULES = Path(__file__).parents[3] / "deploy" / "prometheus"

pytestmark = pytest.mark.promtool


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (apt-get install prometheus)"
        if REQUIRE_SERVERS:
            pytest.fail(message + " (MLSD_REQUIRE_SERVERS=1)")
        pytest.skip(message)
    return found


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=RULES, capture_output=True, text=True, timeout=60, check=False
    )


def test_rules_are_valid(promtool: str) -> None:
    checked = run(promtool, "check", "rules", "mlsd-rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout


def test_rule_unit_tests_pass(promtool: str) -> None:
    tested = run(promtool, "test", "rules", "mlsd-rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_wrong_expectation_fails(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: expecting another PSI in the annotation is refused."""
    text = (RULES / "mlsd-rules.test.yml").read_text()
    broken = text.replace("TX_AMOUNT drifted (PSI 0.40)", "TX_AMOUNT drifted (PSI 0.41)")
    assert broken != text
    (tmp_path / "mlsd-rules.yml").write_text((RULES / "mlsd-rules.yml").read_text())
    (tmp_path / "broken.test.yml").write_text(broken)
    tested = subprocess.run(
        [promtool, "test", "rules", "broken.test.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert tested.returncode != 0
    assert "PSI 0.40" in tested.stdout + tested.stderr


def test_the_prometheus_config_is_valid(promtool: str) -> None:
    """deploy/prometheus/prometheus.yml, with the rule file it names."""
    checked = run(promtool, "check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout


@pytest.mark.prometheus
def test_the_alertmanager_config_is_valid(tmp_path: Path) -> None:
    amtool = need_tool("amtool", "prometheus-alertmanager")
    config = RULES.parent / "alertmanager" / "alertmanager.yml"
    checked = subprocess.run(
        [amtool, "check-config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(config.read_text().replace("receiver: mlsd-webhook", "receiver: nobody"))
    refused = subprocess.run(
        [amtool, "check-config", str(broken)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
