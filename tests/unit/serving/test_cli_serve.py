"""`mlsd serve`: options, and a bad model reference refused before anything starts."""

from __future__ import annotations

import subprocess
import sys


def _mlsd(*args: str) -> subprocess.CompletedProcess[str]:
    code = "from mlsd.cli.main import run; run()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


def test_serve_help_lists_the_options() -> None:
    out = _mlsd("serve", "--help")
    assert out.returncode == 0, out.stderr
    for option in ("--port", "--model", "--max-batch-size", "--max-delay-ms"):
        assert option in out.stdout


def test_bad_model_reference_exits_with_the_validation_code() -> None:
    out = _mlsd("serve", "--model", "fraud", "--port", "1")
    assert out.returncode == 2
    assert "model" in out.stderr


def test_serve_help_names_the_dashboard() -> None:
    out = _mlsd("serve", "--help")
    assert out.returncode == 0, out.stderr
    for text in ("--no-ui", "--ui-sample-s", "/ui"):
        assert text in out.stdout
