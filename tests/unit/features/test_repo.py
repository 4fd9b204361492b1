"""`mlsd features apply PATH`: definitions as Python code, validated before anything is applied.

Each bad definition is a ValidationError whose field names the view and its field, and the
registry keeps what it had (here: the handbook's views).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlsd.cli.main import app
from mlsd.errors import ValidationError
from mlsd.features.repo import check_repo
from mlsd.features.store import FeatureStore
from mlsd.settings import Settings

HEADER = """
from datetime import timedelta
from mlsd.features.aggregations import Aggregation, Derived
from mlsd.features.definitions import Entity, FeatureView
from mlsd.features.sources import Source
customer = Entity("customer", "CUSTOMER_ID")
payments = Source("payments", path={path!r}, timestamp_field={ts!r},
                  field_mapping={{"cust": "CUSTOMER_ID"}})
"""

GOOD = """
spending = FeatureView(
    "spending", customer, "window", ("N", "AVG", "Z"), timedelta(days=7), source=payments,
    aggregations=(Aggregation("N", "count", None, timedelta(days=7)),
                  Aggregation("AVG", "mean", "amount", timedelta(days=7)),
                  Aggregation("SD", "std", "amount", timedelta(days=7))),
    derived=(Derived("Z", "zscore", ("amount", "AVG", "SD")),),
)
"""


@pytest.fixture
def payments(tmp_path: Path) -> Path:
    """One Parquet file of payments under its own column names."""
    frame = pd.DataFrame(
        {
            "cust": [1, 1, 2],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-02"], utc=True),
            "amount": [10.0, 30.0, 5.0],
            "label": ["a", "b", "c"],
        }
    )
    path = tmp_path / "payments.parquet"
    frame.to_parquet(path)
    return path


def _repo(tmp_path: Path, payments: Path, *bodies: str, ts: str = "ts") -> Path:
    folder = tmp_path / "repo"
    folder.mkdir(exist_ok=True)
    head = textwrap.dedent(HEADER.format(path=str(payments), ts=ts))
    (folder / "common.py").write_text(head)
    for i, body in enumerate(bodies):
        (folder / f"views_{i}.py").write_text("from common import *\n" + textwrap.dedent(body))
    return folder


def test_a_folder_applies_and_builds(tmp_path: Path, payments: Path) -> None:
    store = FeatureStore.open(Settings(home=tmp_path / "home"))
    try:
        versions = store.apply_path(_repo(tmp_path, payments, GOOD))
        assert list(versions) == ["spending"]
        report = store.build()  # its own source: no dataset needed
        assert report.rows == {"spending": 3}
        got = store.get_features_as_of(pd.Timestamp("2024-01-03", tz="UTC"), ["N", "AVG", "Z"])
        row = got["spending"].set_index("CUSTOMER_ID").loc[1]
        assert (row["N"], row["AVG"]) == (2.0, 20.0)
        assert row["Z"] == pytest.approx((30.0 - 20.0) / 200.0**0.5)
    finally:
        store.close()


BAD = {
    "missing column": (
        GOOD.replace('"mean", "amount"', '"mean", "amont"'),
        "spending.aggregations.AVG.column",
        "'amont', not a column",
    ),
    "type mismatch": (
        GOOD.replace('"mean", "amount"', '"mean", "label"'),
        "spending.aggregations.AVG.column",
        "mean needs a number, 'label' is VARCHAR",
    ),
    "derived over an unknown aggregate": (
        GOOD.replace('("amount", "AVG", "SD")', '("amount", "AVG", "STDEV")'),
        "spending.derived.Z.args",
        "uses 'STDEV': not an aggregation",
    ),
    "feature neither aggregated nor derived": (
        GOOD.replace('("N", "AVG", "Z")', '("N", "AVG", "ZZ")'),
        "features",
        "neither aggregations nor derived",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_definition_names_view_and_field_and_applies_nothing(
    tmp_path: Path, payments: Path, case: str
) -> None:
    body, field, message = BAD[case]
    store = FeatureStore.open(Settings(home=tmp_path / "home"))
    try:
        before = store.apply()  # the handbook's views are registered
        folder = _repo(tmp_path, payments, body, GOOD.replace('"spending"', '"other"', 1))
        with pytest.raises(ValidationError, match=message) as err:
            store.apply_path(folder)
        assert err.value.field == field
        assert store.registry.current() == before  # nothing half applied
        assert len(store.registry.history()) == len(before)
    finally:
        store.close()


def test_a_window_with_no_time_column(tmp_path: Path, payments: Path) -> None:
    with pytest.raises(ValidationError, match="no time column 'when'") as err:
        check_repo(_repo(tmp_path, payments, GOOD, ts="when"))
    assert err.value.field == "spending.timestamp_field"
    folder = _repo(tmp_path, payments, GOOD, ts="amount")
    with pytest.raises(ValidationError, match="must be a timestamp, is DOUBLE"):
        check_repo(folder)


def test_two_views_with_one_name(tmp_path: Path, payments: Path) -> None:
    twin = GOOD.replace("timedelta(days=7), source", "timedelta(days=8), source")
    with pytest.raises(ValidationError, match="two different views are named so") as err:
        check_repo(_repo(tmp_path, payments, GOOD, twin))
    assert err.value.field == "spending.name"
    check_repo(_repo(tmp_path, payments, GOOD, "from views_0 import spending\n"))  # one view


def test_sql_views_are_checked_and_batch_only(tmp_path: Path, payments: Path) -> None:
    sql = """
    big = FeatureView("big", customer, "sql", ("BIG",), timedelta(days=1), source=payments,
                      sql="SELECT CUSTOMER_ID, ts, (amount > 20)::DOUBLE AS BIG FROM {source}")
    """
    repo = check_repo(_repo(tmp_path, payments, sql))
    assert not repo.views[0].streamable
    store = FeatureStore.open(Settings(home=tmp_path / "home"))
    try:
        store.apply(repo.views)
        assert store.build().rows == {"big": 3}
    finally:
        store.close()
    with pytest.raises(ValidationError, match="returns no feature 'BIG'") as err:
        check_repo(_repo(tmp_path, payments, sql.replace("AS BIG", "AS SMALL")))
    assert err.value.field == "big.features"


def test_cli_apply_path(home: Path, tmp_path: Path, payments: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["features", "apply", str(_repo(tmp_path, payments, GOOD))])
    assert out.exit_code == 0, out.output
    assert "spending: " in out.output
    assert "(new version)" in out.output
    out = runner.invoke(app, ["features", "apply", str(tmp_path / "repo"), "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "spending: " in out.output
    assert "(window, streamable, 3 features)" in out.output
    bad = _repo(tmp_path, payments, BAD["missing column"][0])
    out = runner.invoke(app, ["features", "apply", str(bad)])
    assert isinstance(out.exception, ValidationError)
    assert out.exception.field == "spending.aggregations.AVG.column"
    (bad / "views_0.py").write_text("raise RuntimeError('boom')\n")
    out = runner.invoke(app, ["features", "apply", str(bad)])
    assert isinstance(out.exception, ValidationError)
    assert "failed to import: RuntimeError: boom" in out.exception.message


def test_cli_bad_definitions_exit_2_with_the_message(
    home: Path, tmp_path: Path, payments: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from mlsd.cli.main import run

    bad = _repo(tmp_path, payments, BAD["type mismatch"][0])
    monkeypatch.setattr("sys.argv", ["mlsd", "features", "apply", str(bad)])
    with pytest.raises(SystemExit) as exit_:
        run()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "view 'spending', aggregations.AVG.column" in err
    assert "Traceback" not in err


def test_the_handbook_is_a_definitions_file_like_any_other() -> None:
    from mlsd.features import handbook

    repo = check_repo(Path(handbook.__file__))
    got = {v.name: v.version for v in repo.views}
    assert got == {v.name: v.version for v in handbook.HANDBOOK_VIEWS}
    assert {v.kind for v in repo.views} == {"window", "request"}
