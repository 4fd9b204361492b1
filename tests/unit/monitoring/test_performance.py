"""Delayed-label performance per window, the CBPE estimate, triggers and gauges."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sklearn.metrics import roc_auc_score

from mlsd.data import schema
from mlsd.errors import NotFoundError, ValidationError
from mlsd.monitoring.cbpe import MissingCalibrationError, calibration_of, estimate
from mlsd.monitoring.performance import (
    FrameLabels,
    RegistryReferences,
    flatten,
    performance_windows,
)
from mlsd.monitoring.performance_metrics import PerformanceCollector
from mlsd.monitoring.triggers import (
    DEFAULT_RULES,
    TriggerRule,
    evaluate_triggers,
    read_jsonl,
    write_jsonl,
)
from mlsd.monitoring.window import NoDataError
from mlsd.predlog import ParquetPredictionLog, ParquetPredictionReader
from mlsd.registry import Registry
from mlsd.registry.profile import fit_calibration
from mlsd.settings import Settings
from tests.unit.monitoring.helpers import register_profiled, register_unprofiled
from tests.unit.monitoring.perf_helpers import DELAY, T0, Stream, register_calibrated, stream

DAY = timedelta(days=1)


@pytest.fixture
def world(tmp_path: Path) -> tuple[Registry, ParquetPredictionReader, FrameLabels, Stream]:
    """fraud/1 calibrated on a reference stream; two days of its predictions logged
    (5,760 a day), labels landing 7 days after each transaction."""
    settings = Settings(home=tmp_path)
    registry = Registry.open(settings)
    register_calibrated(registry, stream(20_000, seed=1, start=T0 - 30 * DAY, first_id=10**6))
    live = stream(2 * 5760, seed=2, every_s=15.0)
    log = ParquetPredictionLog(settings.path("predictions"), compact_every_s=None, journal=False)
    log.append(live.records(1))
    log.close()
    yield (
        registry,
        ParquetPredictionReader(settings.path("predictions")),
        FrameLabels(live.labels()),
        live,
    )
    registry.close()


def _run(world, as_of: datetime, **kw):  # type: ignore[no-untyped-def]
    registry, reader, labels, _ = world
    return flatten(
        performance_windows(
            RegistryReferences(registry), reader, labels, T0, T0 + 2 * DAY, DAY, as_of=as_of,
            top_k=kw.pop("top_k", 10), **kw,
        )
    )  # fmt: skip


def test_labels_count_only_once_landed(world) -> None:  # type: ignore[no-untyped-def]
    early = _run(world, T0 + 2 * DAY)
    assert [r.state for r in early] == ["no_labels", "no_labels"]
    assert all(r.auc is None and r.label_coverage == 0.0 for r in early)
    assert all(r.estimated_auc is not None for r in early), "the estimate needs no label"
    half = _run(world, T0 + DELAY + timedelta(hours=12))
    assert half[0].label_coverage == pytest.approx(0.5, abs=0.01)
    assert half[1].label_coverage == 0.0
    done = _run(world, T0 + DELAY + 2 * DAY)
    assert [r.label_coverage for r in done] == [1.0, 1.0]
    assert done[0].label_lag_seconds == DELAY.total_seconds()


def test_true_metrics_match_sklearn_on_the_joined_rows(world) -> None:  # type: ignore[no-untyped-def]
    _, _, _, live = world
    first = _run(world, T0 + 10 * DAY)[0]
    rows = live.frame.iloc[:5760]
    y, s = rows[schema.TX_FRAUD].to_numpy(), rows["score"].to_numpy()
    assert first.state == "ok"
    assert first.frauds == int(y.sum())
    assert first.auc == pytest.approx(roc_auc_score(y, s))
    blocked = s >= 0.8
    assert first.blocks == int(blocked.sum())
    assert first.fraud_eur_blocked == pytest.approx(
        rows[schema.TX_AMOUNT].to_numpy()[blocked & (y == 1)].sum(), abs=0.01
    )
    assert first.card_precision is not None
    assert 0.0 <= first.card_precision <= 1.0
    # calibrated, no drift: the label-free estimate is close to the truth
    assert first.estimate_error is not None
    assert abs(first.estimate_error) < 0.05


def test_cbpe_follows_covariate_shift_but_misses_concept_drift() -> None:
    reference = stream(30_000, seed=3)
    cal = fit_calibration(reference.frame["score"].to_numpy(), reference.frame[schema.TX_FRAUD])

    def error(s: Stream) -> tuple[float, float]:
        est = estimate(cal, s.frame["score"].to_numpy()).auc
        true = roc_auc_score(s.frame[schema.TX_FRAUD], s.frame["score"])
        assert est is not None
        return est, float(true)

    shifted_est, shifted_true = error(stream(30_000, seed=4, shift=1.0))
    base_est, base_true = error(stream(30_000, seed=5))
    drift_est, drift_true = error(stream(30_000, seed=6, concept_drift=0.03))
    assert abs(shifted_est - shifted_true) < 0.03
    assert abs(base_est - base_true) < 0.03
    assert base_true - drift_true > 0.1, "the new frauds do hurt the model"
    assert abs(drift_est - base_est) < 0.01, "the scores did not move, nor did the estimate"
    assert drift_est - drift_true > 0.1, "so the estimate is wrong by more than 0.1 AUC"


def test_empty_window_unknown_version_and_no_profile(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    registry, reader, labels, _ = world
    refs = RegistryReferences(registry)
    with pytest.raises(NoDataError, match="no prediction"):
        performance_windows(refs, reader, labels, T0 + 5 * DAY, T0 + 6 * DAY, DAY, as_of=T0)
    with pytest.raises(NotFoundError):
        performance_windows(
            refs, reader, labels, T0, T0 + DAY, DAY, as_of=T0, model="fraud", version=9
        )
    with pytest.raises(ValidationError):
        performance_windows(refs, reader, labels, T0 + DAY, T0, DAY, as_of=T0)
    unprofiled = register_unprofiled(registry)
    uncalibrated = register_profiled(registry)
    assert refs.reference("fraud", unprofiled.version).estimate_state == "no_profile"
    assert refs.reference("fraud", uncalibrated.version).estimate_state == "no_calibration"
    with pytest.raises(MissingCalibrationError, match="no calibration"):
        calibration_of(registry.reference_profile(uncalibrated))


def test_a_window_with_one_class_is_an_explicit_state() -> None:
    from mlsd.monitoring.performance import Reference, evaluate_rows, joined

    s = stream(500, seed=7)
    s.frame[schema.TX_FRAUD] = 0
    pred = pd.DataFrame(
        {
            "transaction_id": s.frame[schema.TRANSACTION_ID].astype("Int64"),
            "score": s.frame["score"], "decision": "legit", "ts": s.frame[schema.TX_DATETIME],
            "tx_time": s.frame[schema.TX_DATETIME], "customer_id": s.frame[schema.CUSTOMER_ID],
        }
    )  # fmt: skip
    rows = joined(pred, FrameLabels(s.labels()), T0 + 30 * DAY)
    r = evaluate_rows(rows, ("fraud", 1, ""), (T0, T0 + DAY), T0 + 30 * DAY,
                      Reference(None, None, {}, "no_profile"))  # fmt: skip
    assert r.state == "one_class"
    assert r.auc is None
    assert r.average_precision is None
    assert r.estimated is None
    assert r.estimate_state == "no_profile"
    assert r.block_precision is None
    text = json.dumps(r.to_dict())
    assert "NaN" not in text


def test_triggers_fire_with_evidence_and_round_trip(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    results = _run(world, T0 + 10 * DAY)
    assert evaluate_triggers(results) == [], "a healthy model fires nothing"
    strict = TriggerRule("auc_floor", "auc", below=0.99)
    fired = evaluate_triggers(results, [strict])
    assert len(fired) == 2
    assert fired[0].metric == "auc"
    assert fired[0].threshold == 0.99
    assert fired[0].value == results[0].auc
    assert fired[0].label_coverage == 1.0
    path = tmp_path / "triggers.jsonl"
    assert write_jsonl(fired, path) == 2
    back = read_jsonl(path)
    assert back[0]["rule"] == "auc_floor"
    assert back[0]["window_start"] == T0.isoformat()
    # before labels land, a label-based rule cannot fire
    assert evaluate_triggers(_run(world, T0 + DAY), [strict]) == []
    with pytest.raises(ValidationError, match="unknown metric"):
        TriggerRule("x", "accuracy", below=0.5)
    with pytest.raises(ValidationError, match="exactly one"):
        TriggerRule("x", "auc", below=0.5, above=0.9)
    with pytest.raises(ValidationError, match="exactly one"):
        TriggerRule("x", "auc", below=math.nan)
    assert {r.name for r in DEFAULT_RULES} >= {"auc_drop"}


def test_gauges_use_the_dashboard_names_and_never_nan(world) -> None:  # type: ignore[no-untyped-def]
    collector = PerformanceCollector(lambda: _run(world, T0 + 2 * DAY))
    collector.refresh()
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    assert not _nan_samples(text)
    assert (
        'mlsd_performance_no_data{model="fraud",variant="champion",version="1",what="labels"} 1.0'
        in text
    )
    assert "mlsd_performance_auc{" not in text
    assert "mlsd_performance_estimated_auc{" in text
    assert (
        'mlsd_performance_label_coverage{model="fraud",variant="champion",version="1"} 0.0' in text
    )
    collector.update(_run(world, T0 + 10 * DAY))
    text = generate_latest(registry).decode()
    for name in ("mlsd_performance_auc", "mlsd_performance_ap", "mlsd_label_lag_seconds"):
        assert f'{name}{{model="fraud",variant="champion",version="1"}}' in text
    assert 'what="labels"} 0.0' in text
    assert not _nan_samples(text)
    assert np.isfinite(collector.latest[("fraud", 1, "champion")].auc or math.nan)


def _nan_samples(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#") and "NaN" in line]
