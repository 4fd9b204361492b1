"""The README's typical session, run as written (at smaller sizes) in a scratch folder.

The commands are read from README.md, so the README cannot drift from what works. The
sizes shrink (300 customers, 600 terminals, 60 days); everything else is the README's:
the same commands, options, paths (`.mlsd/...` under the working folder), and the
request body of its `curl`. `mlsd serve` runs as a process on a free port.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SMALLER = {"--customers": "300", "--terminals": "600", "--days": "60"}


def session_lines() -> list[str]:
    """The bash block after 'A typical session', continuation lines joined, comments cut."""
    text = README.read_text(encoding="utf-8")
    start = text.index("A typical session")
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block is not None, "README: no bash block after 'A typical session'"
    joined = block.group(1).replace("\\\n", " ")
    lines: list[str] = []
    pending = ""
    for raw in joined.splitlines():
        part = raw if pending else raw.split("  #")[0]
        pending = f"{pending}\n{part}" if pending else part.strip()
        try:
            shlex.split(pending)  # a quoted string may span lines
        except ValueError:
            continue
        if pending:
            lines.append(pending)
        pending = ""
    return lines


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mlsd(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "from mlsd.cli.main import run; run()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _smaller(args: list[str]) -> list[str]:
    return [SMALLER.get(args[i - 1], a) if i else a for i, a in enumerate(args)]


@pytest.fixture
def scratch(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A working folder and an environment without MLSD_* (so `.mlsd` is the home)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSD_")}
    env["COLUMNS"] = "200"
    return tmp_path, env


def _status(url: str) -> int:
    """What `curl -sf` sees: the status, or 0 when nothing listens yet."""
    try:
        return httpx.get(url, timeout=10).status_code
    except httpx.TransportError:
        return 0


def test_the_readme_names_how_to_get_mlsd_on_the_path() -> None:
    lines = session_lines()
    assert lines[0] == "source .venv/bin/activate"
    text = README.read_text(encoding="utf-8")
    assert "/v2/health/ready" in text
    assert "/metrics" in text


@pytest.mark.slow
def test_the_typical_session_runs_as_written(scratch: tuple[Path, dict[str, str]]) -> None:
    cwd, env = scratch
    lines = session_lines()
    server: subprocess.Popen[str] | None = None
    base = ""
    outputs: dict[str, str] = {}
    try:
        for line in lines:
            if line.startswith("source "):
                continue  # the PATH: this test runs `mlsd` through the interpreter at hand
            if line.startswith("until curl"):
                url = re.search(r"localhost:\d+(/\S+?);", line)
                assert url is not None, line
                deadline = time.monotonic() + 60
                while _status(base + url.group(1)) != 200:
                    assert server is not None
                    assert server.poll() is None, "mlsd serve exited"
                    assert time.monotonic() < deadline, "never ready"
                    time.sleep(0.2)
                continue
            if line.startswith("curl"):
                words = shlex.split(line)
                path = re.sub(r"^localhost:\d+", "", words[2])
                body = json.loads(words[words.index("-d") + 1])
                answer = httpx.post(base + path, json=body, timeout=30)
                assert answer.status_code == 200, answer.text
                outputs["curl"] = answer.text
                continue
            for command in line.split("&&"):
                args = shlex.split(command)
                assert args[0] == "mlsd", command
                args = _smaller(args[1:])
                if args[0] == "serve":
                    assert args[-1] == "&"
                    port = str(_free_port())
                    args = [a if a != "8000" else port for a in args[:-1]]
                    base = f"http://127.0.0.1:{port}"
                    code = "from mlsd.cli.main import run; run()"
                    server = subprocess.Popen(
                        [sys.executable, "-c", code, *args, "--no-tune"],
                        cwd=cwd,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        text=True,
                    )
                    continue
                done = _mlsd(args, cwd, env)
                assert done.returncode == 0, (args, done.stdout, done.stderr)
                outputs[" ".join(args[:2])] = done.stdout
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
    assert (cwd / ".mlsd" / "dataset" / "manifest.json").is_file()
    assert "promoted models:/fraud/1 to fraud@champion" in " ".join(
        outputs["train --dataset"].split()
    )
    assert "champion" in outputs["registry history"]
    result = json.loads(outputs["curl"])["results"][0]
    assert result["model"] == "fraud"
    assert 0.0 <= result["score"] <= 1.0
