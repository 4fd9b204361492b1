from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from mlsd.registry import Registry
from mlsd.registry.demo import demo_step
from mlsd.registry.testing import register_sample
from mlsd.settings import Settings


def test_demo_step_verifies_the_champion(home: Path) -> None:
    settings = Settings(home=home)
    buffer = io.StringIO()
    console = Console(file=buffer, width=200)
    assert demo_step(settings, console=console) == {"versions": 0, "aliases": {}}
    with Registry.open(settings) as registry:
        register_sample(registry)
        registry.set_alias("fraud", "champion", 1, reason="demo", actor="demo")
    summary = demo_step(settings, console=console)
    assert summary["champion"] == "models:/fraud/1"
    assert summary["environment_diff"] == {}
    assert "sha256-verified" in buffer.getvalue()
