from __future__ import annotations

from pathlib import Path

from mlsd.registry import Registry
from mlsd.settings import Settings
from mlsd.training.demo import demo_step


def test_demo_step_trains_registers_and_promotes(tmp_path: Path, dataset_dir: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    summary = demo_step(dataset_dir, settings)
    assert summary["uri"] == "models:/fraud/1"
    assert summary["promoted"] is True
    assert Path(summary["pr_curve"]).is_file()
    assert 0.5 < summary["metrics"]["auc_roc"] <= 1.0
    registry = Registry.open(settings)
    try:
        assert registry.aliases("fraud") == {"champion": 1}
    finally:
        registry.close()
