"""`mlsd compress`: bad input gets a message and an exit code, and nothing is registered."""

from __future__ import annotations

import pytest

from mlsd.errors import GateRejectedError, ValidationError
from mlsd.registry import Registry
from mlsd.settings import Settings


def _versions(world: Settings) -> int:
    with Registry.open(world) as registry:
        return len(registry.search(name="fraud"))


def _run(world: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    from mlsd.cli.main import run

    monkeypatch.setenv("MLSD_HOME", str(world.home))
    monkeypatch.setattr("sys.argv", ["mlsd", "compress", *args])
    with pytest.raises(SystemExit) as exited:
        run()
    return int(exited.value.code or 0)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--method", "int8_cubic"], ValidationError.exit_code, "unknown method 'int8_cubic'"),
        (
            ["--method", "distilled_gbm", "--min-ap", "0.999"],
            GateRejectedError.exit_code,
            "fail the accuracy floor",
        ),
        (
            ["--method", "int8_static", "--calibration-rows", "0"],
            ValidationError.exit_code,
            "calibration set is empty",
        ),
        (
            ["--method", "int8_static", "--fraud-share", "0"],
            ValidationError.exit_code,
            "only legitimate rows",
        ),
    ],
)
def test_bad_input_exits_with_its_code_and_registers_nothing(
    world: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    before = _versions(world)
    assert _run(world, monkeypatch, "--from", "fraud@champion", "--quick", *args) == code
    err = capsys.readouterr().err
    assert message in err.replace("\n", " ")
    assert "Traceback" not in err
    assert _versions(world) == before
    if code == GateRejectedError.exit_code:  # the refused run's figures are still reported
        assert (world.home / "reports" / "compress-fraud-v1" / "report.md").is_file()


def test_tree_methods_refuse_a_source_that_is_not_lightgbm(
    world: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An ONNX-only MLP cannot be pruned as trees: the flavor is named, nothing registered."""
    assert (
        _run(world, monkeypatch, "--from", "fraud@champion", "--quick", "--method", "distilled_mlp")
        == 0
    )
    with Registry.open(world) as registry:
        mlp = registry.latest("fraud")
    assert mlp.flavor == "onnx"
    before = _versions(world)
    code = _run(world, monkeypatch, "--from", f"fraud/{mlp.version}", "--method", "fewer_trees")
    assert code == ValidationError.exit_code
    assert "needs a LightGBM source; the source is onnx" in capsys.readouterr().err
    assert _versions(world) == before
