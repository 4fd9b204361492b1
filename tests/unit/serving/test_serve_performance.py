"""`mlsd serve --labels`: transactions scored by the app, their labels landed in a label
table, one refresh of the performance monitor, then `/metrics` and `/ui/data` show it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlsd.features.store import FeatureStore
from mlsd.monitoring.label_table import LabelRow, LabelTable
from mlsd.predlog import ParquetPredictionLog
from mlsd.registry import Registry
from mlsd.serving.app import create_app, install_performance
from mlsd.serving.service import ServeOptions
from mlsd.serving.testing import NOW, sample_transaction
from mlsd.settings import Settings
from tests.unit.serving.conftest import make_service


def _refuse(value: str) -> None:
    raise AssertionError(f"{value} in the JSON")


def test_metrics_and_dashboard_show_performance_once_labels_land(
    settings: Settings, registry: Registry, store: FeatureStore, tmp_path: Path, make_client: Any
) -> None:
    plog = ParquetPredictionLog(tmp_path / "predictions", flush_seconds=60, compact_every_s=None)
    service = make_service(settings, registry, store, prediction_log=plog, dashboard_sample_s=60.0)
    labels = tmp_path / "labels"
    labels.mkdir()  # the labels consumer's folder, before its first label
    monitor = install_performance(service, ServeOptions(labels=str(labels)), start=False)
    service.owned.insert(0, monitor)
    client = make_client(create_app(settings, service=service))
    empty = client.get("/ui/data").json()["performance"]
    assert empty["state"] == "starting"
    assert empty["versions"] == []

    amounts = np.round(np.random.default_rng(4).uniform(5, 400, size=40), 2)
    txs = [
        sample_transaction(transaction_id=5000 + i, customer_id=1 + i % 3, amount=float(a),
                           timestamp=(NOW + timedelta(minutes=i)).isoformat())
        for i, a in enumerate(amounts)
    ]  # fmt: skip
    answer = client.post("/v1/score", json={"transactions": txs})
    assert answer.status_code == 200, answer.text
    scores = np.array([r["score"] for r in answer.json()["results"]])
    # the 6 highest-scored and 2 others were fraud; the last 10 labels have not landed yet
    fraud = np.zeros(40, dtype=int)
    fraud[np.argsort(scores)[-6:]] = 1
    fraud[[0, 1]] = 1
    landed = datetime.now(UTC) - timedelta(seconds=1)
    LabelTable(labels).write(
        [
            LabelRow(5000 + i, int(fraud[i]), landed if i < 30 else landed + timedelta(days=3),
                     NOW + timedelta(minutes=i))
            for i in range(40)
        ]
    )  # fmt: skip

    assert monitor.refresh() == "ok"
    text = client.get("/metrics").text
    found = re.search(
        r'^mlsd_performance_auc\{model="fraud",variant="champion",version="1"\} (\S+)$',
        text, re.M,
    )  # fmt: skip
    assert found is not None, text
    assert float(found.group(1)) == pytest.approx(roc_auc_score(fraud[:30], scores[:30]))
    coverage = 'mlsd_performance_label_coverage{model="fraud",variant="champion",version="1"}'
    assert f"{coverage} 0.75" in text
    samples = [x for x in text.splitlines() if x.startswith(("mlsd_performance", "mlsd_label"))]
    assert samples
    assert not [x for x in samples if x.endswith("NaN")]

    body = client.get("/ui/data")
    perf = json.loads(body.text, parse_constant=_refuse)["performance"]
    assert perf["state"] == "ok"
    assert perf["window_s"] == 86_400.0
    assert perf["labels"] == f"label_table {labels}"
    (row,) = perf["versions"]
    assert (row["model"], row["version"], row["variant"]) == ("fraud", 1, "champion")
    assert row["n_predictions"] == 40
    assert row["n_labelled"] == 30
    assert row["auc"] == pytest.approx(roc_auc_score(fraud[:30], scores[:30]))
    # no amount in the label table: the fraud euros are the logged TX_AMOUNT features
    assert row["fraud_eur"] == pytest.approx(amounts[:30][fraud[:30] == 1].sum(), abs=0.01)
    assert row["estimate_state"] == "no_profile"
    assert row["estimated_auc"] is None


def test_serve_without_a_prediction_log_refuses_labels(
    settings: Settings, registry: Registry, store: FeatureStore, tmp_path: Path
) -> None:
    from mlsd.errors import ConfigError

    service = make_service(settings, registry, store)
    with pytest.raises(ConfigError, match="prediction log"):
        install_performance(service, ServeOptions(labels=str(tmp_path)))
    service.close()


def _mlsd(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = "from mlsd.cli.main import run; run()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "MLSD_HOME": str(home), "PYTHONPATH": ":".join(sys.path)},
    )  # fmt: skip


def test_bad_labels_path_and_window_exit_with_their_codes(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("x")
    out = _mlsd(tmp_path, "serve", "--labels", str(junk), "--port", "1")
    assert out.returncode == 3, out.stderr
    assert "--labels" in out.stderr
    assert "neither a dataset folder" in out.stderr
    out = _mlsd(tmp_path, "serve", "--labels", str(tmp_path), "--performance-window", "1w")
    assert out.returncode == 2, out.stderr
    assert "--performance-window" in out.stderr
    help_text = _mlsd(tmp_path, "serve", "--help").stdout
    for option in ("--labels", "--performance-window", "--performance-every"):
        assert option in help_text
