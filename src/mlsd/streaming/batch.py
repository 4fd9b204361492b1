"""The batch twin of the stream processor: `mlsd score-batch`, the nightly path.

Scores a day (or a range of days) of a dataset's Parquet transactions with the same model
the stream serves, and through the same `ScoringPipeline` (routing, model, decision at the
version's threshold, observers), but with the features computed in batch: the feature
store's point-in-time join over its DuckDB-built offline tables (`get_training_set`, what
training reads), filled where missing as training fills them. Writes one Parquet file of
scores per day (`TRANSACTION_ID`, `CUSTOMER_ID`, `TX_DATETIME`, score, decision, model,
version; replaced whole on a rerun) and, optionally, logs every prediction under
`batch-{transaction_id}` with entry point `batch` (a rerun logs only the rows not logged
yet by the same variant).

The offline join sees each transaction's own row (the customer windows count the current
payment); so does the processor with its window features (the default,
`mlsd.streaming.window_features`), and the two agree bit for bit. Without them the
processor reads the online store, which holds what was materialized before the payment
arrived: docs/streaming.md has the measured gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.data.io import read_transactions
from mlsd.data.transaction import Transaction
from mlsd.errors import ConflictError, ValidationError
from mlsd.features.source import dataset_identity, read_source, short
from mlsd.features.store import FeatureStore
from mlsd.inference.assemble import FeatureAssembler
from mlsd.inference.endpoint import HostedEndpoint
from mlsd.inference.host import ModelHost, parse_ref
from mlsd.inference.log_observer import PredictionLogObserver
from mlsd.inference.metrics import ServingMetrics
from mlsd.inference.observers import ScoringRequest
from mlsd.inference.pipeline import ScoringPipeline, default_variant
from mlsd.predlog import PredictionLog, make_prediction_log
from mlsd.registry import Registry
from mlsd.settings import Settings
from mlsd.training.dataset import ENTITY_COLUMNS, training_frame

#: The columns of a score file, in order.
SCORE_COLUMNS = (
    schema.TRANSACTION_ID, schema.CUSTOMER_ID, schema.TX_DATETIME,
    "score", "decision", "model", "version",
)  # fmt: skip

Progress = Callable[[int, int], None]


@dataclass
class BatchReport:
    """What one `score-batch` run did."""

    rows: int = 0
    frauds: int = 0
    model: str = ""
    version: int = 0
    files: list[Path] = field(default_factory=list)
    logged: int = 0
    feature_seconds: float = 0.0
    scoring_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        """Rows scored per second of the whole run (features, scoring, writing)."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def check_offline_source(store: FeatureStore, dataset_dir: Path) -> None:
    """ConflictError unless the offline tables of every batch view were built from
    `dataset_dir` (scoring another dataset's days would join features of other payments)."""
    wanted = dataset_identity(dataset_dir)
    for req in store.batch_requests():
        folder = store.offline.folder(req.view.name, req.version)
        held = read_source(folder) if folder.is_dir() else None
        if held != wanted:
            raise ConflictError(
                f"the offline table of {req.view.name} was built from {short(held)}, not from "
                f"{short(wanted)}: run `mlsd features build {dataset_dir}` first "
                "(or score-batch --build)",
                field="dataset",
            )


def batch_features(
    store: FeatureStore, transactions: pd.DataFrame, features: tuple[str, ...]
) -> np.ndarray:
    """The model inputs of `transactions` (in their order) as training computes them:
    float32, signature order, missing values filled with `MISSING_VALUE`."""
    frame = training_frame(store, transactions, list(features))  # sorted by TRANSACTION_ID
    order = pd.Index(frame[schema.TRANSACTION_ID]).get_indexer(transactions[schema.TRANSACTION_ID])
    if (order < 0).any():
        raise ValidationError("transaction ids are not unique", field=schema.TRANSACTION_ID)
    rows = frame[list(features)].to_numpy(dtype=np.float32)[order]
    return np.ascontiguousarray(rows)


def to_transactions(frame: pd.DataFrame) -> list[Transaction]:
    """The rows of a transactions frame as `Transaction`s, in order."""
    stamps = frame[schema.TX_DATETIME].dt.to_pydatetime().tolist()
    return [
        Transaction(int(t), int(c), int(m), float(a), ts)
        for t, c, m, a, ts in zip(
            frame[schema.TRANSACTION_ID].tolist(), frame[schema.CUSTOMER_ID].tolist(),
            frame[schema.TERMINAL_ID].tolist(), frame[schema.TX_AMOUNT].tolist(), stamps,
            strict=True,
        )
    ]  # fmt: skip


def score_frame(
    pipeline: ScoringPipeline,
    store: FeatureStore,
    transactions: pd.DataFrame,
    *,
    model: str | None = None,
    chunk: int = 50_000,
    request_id: str = "batch",
    logged: set[tuple[str, str]] | None = None,
) -> tuple[pd.DataFrame, float, float]:
    """Score `transactions` through `pipeline` with batch features: the score table (in
    the rows' order), and the seconds spent on features and on scoring."""
    missing = [c for c in ENTITY_COLUMNS if c not in transactions.columns]
    if missing:
        raise ValidationError(f"the transactions lack {missing}", field=missing[0])
    parts: list[pd.DataFrame] = []
    t_features = t_scoring = 0.0
    for start in range(0, len(transactions), chunk):
        rows = transactions.iloc[start : start + chunk]
        route = pipeline.route(ScoringRequest(request_id, "batch", model=model))
        names = route.primary.endpoint.current().feature_names
        began = time.perf_counter()
        values = batch_features(store, rows, names)
        t_features += time.perf_counter() - began
        began = time.perf_counter()
        txs = to_transactions(rows)
        request = ScoringRequest(
            request_id=f"{request_id}-{start}",
            entry="batch",
            transactions=txs,
            values=values,
            model=model,
            row_ids=[f"batch-{tx.transaction_id}" for tx in txs],
            logged=logged,
        )
        scored = pipeline.score_sync(request)
        t_scoring += time.perf_counter() - began
        part = pd.DataFrame(
            {
                schema.TRANSACTION_ID: rows[schema.TRANSACTION_ID].to_numpy(np.int64),
                schema.CUSTOMER_ID: rows[schema.CUSTOMER_ID].to_numpy(np.int64),
                schema.TX_DATETIME: rows[schema.TX_DATETIME].to_numpy(),
                "score": scored.scores.astype(np.float64),
                "decision": scored.decisions,
                "model": scored.model.name,
                "version": np.int64(scored.model.version),
            }
        )
        parts.append(part)
    if not parts:
        empty = {c: pd.Series(dtype="object") for c in SCORE_COLUMNS}
        return pd.DataFrame(empty), t_features, t_scoring
    return pd.concat(parts, ignore_index=True), t_features, t_scoring


def write_scores(scores: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One Parquet file per day, `out_dir/YYYY-MM-DD.parquet`, each replaced atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    days = scores[schema.TX_DATETIME].dt.strftime("%Y-%m-%d")
    files = []
    for day, rows in scores.groupby(days, sort=True):
        path = out_dir / f"{day}.parquet"
        tmp = out_dir / f".{day}.parquet.tmp"
        rows.to_parquet(tmp, index=False)
        tmp.replace(path)
        files.append(path)
    return files


def score_batch(
    settings: Settings,
    dataset_dir: Path,
    start: date | str | None = None,
    end: date | str | None = None,
    *,
    model_ref: str = "fraud@champion",
    out_dir: Path | None = None,
    log_predictions: bool = False,
    build: bool = False,
    chunk: int = 50_000,
) -> BatchReport:
    """Score the days start..end (inclusive) of `dataset_dir`; scores under `out_dir`
    (default `MLSD_HOME/scores`), predictions logged if asked."""
    began = time.perf_counter()
    dataset_dir = Path(dataset_dir)
    transactions = read_transactions(dataset_dir, start, end)
    name, alias, version = parse_ref(model_ref)
    report = BatchReport()
    store = FeatureStore.open(settings)
    registry = Registry.open(settings)
    predictions: PredictionLog | None = None
    try:
        if build:
            store.build(dataset_dir)
        check_offline_source(store, dataset_dir)
        host = ModelHost(registry, served_views=store.view_versions)
        host.load(model_ref)
        metrics = ServingMetrics()
        # every request carries its feature rows: the assembler never reads the online store
        pipeline = ScoringPipeline(FeatureAssembler(None, metrics), metrics)
        endpoint = HostedEndpoint(host, name, alias, version=version, metrics=metrics)
        pipeline.add_endpoint(name, default_variant(endpoint, alias, version))
        logged: set[tuple[str, str]] | None = None
        if log_predictions:
            predictions = make_prediction_log(settings)
            pipeline.add_observer(PredictionLogObserver(predictions), critical=True)
            logged = predictions.logged_ids("batch-")  # a rerun logs only what is new
        before = len(logged or ())
        scores, report.feature_seconds, report.scoring_seconds = score_frame(
            pipeline, store, transactions, model=name, chunk=chunk, logged=logged
        )
        if predictions is not None:
            predictions.flush()
            report.logged = len(predictions.logged_ids("batch-")) - before
        report.files = write_scores(scores, out_dir or settings.path("scores"))
        report.rows = len(scores)
        report.frauds = int((scores["decision"] == "fraud").sum()) if len(scores) else 0
        loaded = endpoint.current()
        report.model, report.version = loaded.name, loaded.version
    finally:
        if predictions is not None:
            predictions.close()
        registry.close()
        store.close()
    report.seconds = time.perf_counter() - began
    return report
