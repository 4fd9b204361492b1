"""Performance with delayed labels, per window of the prediction log, as the labels land.

A fraud label is known days after the transaction (`LABEL_AVAILABLE_AT`). The
prediction log holds each scored transaction's id, score, decision, model version and
variant; joining the labels by transaction id gives the true metrics of a window, but
only with the labels available **as of** the evaluation time: a window evaluated the
next day has almost none, the same window a week later has them all. So every figure
comes with its label coverage (the share of the window's predictions with a label) and
the label lag (how long after the transaction the landed labels arrived).

Per (window, model, version, variant): ROC AUC, average precision, Card Precision@k
(`mlsd.training.metrics`, on the labelled rows), the precision of the blocks (decision
`fraud`), the fraud euros blocked out of the fraud euros labelled, and the label-free
estimate (`mlsd.monitoring.cbpe`) of the same rows with its error once labels exist.

A figure that cannot be computed is None with a `state` saying why, never NaN:
`no_labels` (none landed yet), `one_class` (only genuine rows labelled: AUC undefined),
and for the estimate `no_profile` / `no_calibration`. An empty range is `NoDataError`,
an unknown version `NotFoundError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.errors import NotFoundError, ValidationError
from mlsd.monitoring.cbpe import Estimate, estimate
from mlsd.monitoring.window import LogReader, NoDataError, logged_version
from mlsd.registry.profile import CalibrationProfile, MissingProfileError
from mlsd.training.metrics import card_precision_at_k

LABEL_COLUMNS = (
    schema.TRANSACTION_ID,
    schema.TX_FRAUD,
    schema.LABEL_AVAILABLE_AT,
    schema.TX_AMOUNT,
)
MAX_WINDOWS = 10_000
#: The prediction log's `TX_AMOUNT` feature, beside the predictions `joined` reads: the
#: amount of a label whose source has none (the label table).
LOGGED_AMOUNT = "_logged_amount"


class LabelSource(Protocol):
    """Where labels come from: the rows of `LABEL_COLUMNS` for some transaction ids."""

    def labels(self, transaction_ids: np.ndarray) -> pd.DataFrame:
        """Label rows of those ids that exist (landed or not: `LABEL_AVAILABLE_AT` says)."""
        ...


class FrameLabels:
    """Labels held in memory (a simulated dataset's transactions, a test's frame)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        missing = [c for c in LABEL_COLUMNS if c not in frame.columns]
        if missing:
            raise ValidationError(f"the label frame lacks {missing}", field="labels")
        rows = frame.loc[:, list(LABEL_COLUMNS)]
        rows = rows.drop_duplicates(schema.TRANSACTION_ID).sort_values(schema.TRANSACTION_ID)
        self.frame = rows.reset_index(drop=True)
        self._ids = self.frame[schema.TRANSACTION_ID].to_numpy(dtype=np.int64)

    def labels(self, transaction_ids: np.ndarray) -> pd.DataFrame:
        """Rows of the known ids (one binary search per id)."""
        ids = np.asarray(transaction_ids, dtype=np.int64)
        pos = np.searchsorted(self._ids, ids)
        pos = pos[pos < self._ids.size]
        pos = np.unique(pos[np.isin(self._ids[pos], ids)])
        return self.frame.iloc[pos].reset_index(drop=True)


class DatasetLabels(FrameLabels):
    """The labels of a simulated dataset folder (`mlsd simulate`), read once."""

    def __init__(self, folder: Path) -> None:
        from mlsd.data.io import read_transactions

        if not Path(folder).is_dir():
            raise NotFoundError(f"no dataset folder at {folder} (the labels)", field="dataset")
        super().__init__(read_transactions(Path(folder)))


class LabelTableLabels:
    """The label table `mlsd stream labels` writes from the feedback topic
    (`mlsd.monitoring.label_table`), re-read whenever its set of parts changed (new
    labels landed, a compaction): a long-running monitor sees the labels as they land.

    `label` is TX_FRAUD and `label_time` LABEL_AVAILABLE_AT. The table holds no amount:
    TX_AMOUNT is NaN here, and `performance_windows` takes it from the prediction log's
    `TX_AMOUNT` feature (a request feature every handbook model logs); a prediction
    logged without it counts no fraud euros (and the window says so in its notes).
    """

    def __init__(self, folder: Path) -> None:
        from mlsd.monitoring.label_table import LabelTable

        self.table = LabelTable(Path(folder))
        self._parts: tuple[str, ...] | None = None
        self._labels = FrameLabels(pd.DataFrame({c: [] for c in LABEL_COLUMNS}))

    def _frame(self) -> pd.DataFrame:
        read = self.table.read()
        return pd.DataFrame(
            {
                schema.TRANSACTION_ID: read["TRANSACTION_ID"].to_numpy(dtype=np.int64),
                schema.TX_FRAUD: read["label"].to_numpy(dtype=np.int64),
                schema.LABEL_AVAILABLE_AT: pd.to_datetime(read["label_time"], utc=True),
                schema.TX_AMOUNT: np.full(len(read), np.nan),
            }
        )

    def labels(self, transaction_ids: np.ndarray) -> pd.DataFrame:
        """Rows of the known ids, from the table as it is now."""
        parts = tuple(p.name for p in self.table.parts())
        if parts != self._parts:
            try:
                frame = self._frame()
            except FileNotFoundError:  # a compaction removed a part while it was read
                parts = tuple(p.name for p in self.table.parts())
                frame = self._frame()
            self._labels = FrameLabels(frame)
            self._parts = parts
        return self._labels.labels(transaction_ids)


def labels_kind(folder: Path, option: str = "labels") -> str:
    """ "dataset" for a dataset folder (its `manifest.json`), "label_table" for a label
    table folder (`part-*.parquet` parts, or still empty: no label landed yet); NotFoundError
    naming the option `--{option}` when it is neither. Reads no label."""
    path = Path(folder)
    if not path.is_dir():
        raise NotFoundError(
            f"--{option} {path}: no such folder (a dataset folder from `mlsd simulate`, or "
            "the label table `mlsd stream labels` writes)",
            field=option,
        )
    if (path / schema.MANIFEST_FILE).is_file():
        return "dataset"
    names = [p.name for p in path.iterdir() if not p.name.startswith(".")]
    if all(n.startswith("part-") and n.endswith(".parquet") for n in names):
        return "label_table"
    raise NotFoundError(
        f"--{option} {path} is neither a dataset folder (no {schema.MANIFEST_FILE}) nor a "
        "label table (it holds files other than part-*.parquet)",
        field=option,
    )


def open_labels(folder: Path, option: str = "labels") -> DatasetLabels | LabelTableLabels:
    """The label source of a folder (`labels_kind`): a dataset's labels (read now), or
    the label table (read as it changes)."""
    if labels_kind(folder, option) == "dataset":
        return DatasetLabels(Path(folder))
    return LabelTableLabels(Path(folder))


@dataclass(frozen=True)
class Reference:
    """What a version brings to its evaluation: calibration, threshold, reference figures."""

    calibration: CalibrationProfile | None
    threshold: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    """Reference values by metric name ("auc", "average_precision", "recall",
    "estimated_auc"): what a trigger's `max_drop` compares with (the registered test /
    validation figures; the estimate of the profile's 1,001 test-score quantiles)."""
    estimate_state: str = "ok"
    """"ok", "no_profile" or "no_calibration"."""


class ReferenceSource(Protocol):
    """The `Reference` of a version (NotFoundError for an unknown one)."""

    def reference(self, model: str, version: int) -> Reference:
        """Look the version up."""
        ...


class RegistryReferences:
    """References from a `mlsd.registry.Registry`: its profile, threshold and test AUC."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self._cache: dict[tuple[str, int], Reference] = {}

    def reference(self, model: str, version: int) -> Reference:
        """The version's reference, looked up once."""
        key = (model, version)
        if key not in self._cache:
            mv = self.registry.get(model, version)  # NotFoundError for an unknown version
            threshold = None if mv.threshold is None else float(mv.threshold.value)
            validation = {} if mv.threshold is None else mv.threshold.validation
            found = {
                "auc": mv.metrics.get("auc_roc"),
                "average_precision": mv.metrics.get("average_precision"),
                "recall": validation.get("recall"),
            }
            metrics = {k: float(v) for k, v in found.items() if v is not None}
            try:
                profile = self.registry.reference_profile(mv)
            except MissingProfileError:
                self._cache[key] = Reference(None, threshold, metrics, "no_profile")
            else:
                cal = profile.calibration
                state = "ok" if cal is not None else "no_calibration"
                if cal is not None and len(profile.score_quantiles) > 1:  # the test scores
                    own = estimate(cal, np.asarray(profile.score_quantiles)).auc
                    if own is not None:
                        metrics["estimated_auc"] = own
                self._cache[key] = Reference(cal, threshold, metrics, state)
        return self._cache[key]


@dataclass(frozen=True)
class WindowPerformance:
    """One (window, model, version, variant) evaluated with the labels as of `as_of`."""

    model: str
    version: int
    variant: str
    start: datetime
    end: datetime
    as_of: datetime
    n_predictions: int
    n_labelled: int
    label_coverage: float
    frauds: int
    state: str
    """"ok", "no_labels" (none landed) or "one_class" (no fraud, or no genuine, labelled)."""
    auc: float | None
    average_precision: float | None
    card_precision: float | None
    top_k: int
    blocks: int
    block_precision: float | None
    recall: float | None
    """Share of the labelled frauds that were blocked (None: no fraud labelled)."""
    fraud_eur: float
    fraud_eur_blocked: float
    label_lag_seconds: float | None
    """Median time from transaction to label over the labels landed (None: none)."""
    label_lag_max_seconds: float | None
    estimate_state: str
    estimated: Estimate | None
    estimated_on_labelled: float | None
    """The estimate's AUC on the labelled rows only: what `estimate_error` compares."""
    reference: dict[str, float]
    """The version's reference figures (`Reference.metrics`)."""
    notes: list[str] = field(default_factory=list)

    @property
    def estimated_auc(self) -> float | None:
        """The label-free AUC estimate of the whole window."""
        return None if self.estimated is None else self.estimated.auc

    @property
    def estimate_error(self) -> float | None:
        """Estimated minus true AUC on the same (labelled) rows, once labels landed."""
        if self.auc is None or self.estimated_on_labelled is None:
            return None
        return self.estimated_on_labelled - self.auc

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (times as ISO strings)."""
        out = asdict(self)
        for key in ("start", "end", "as_of"):
            out[key] = getattr(self, key).isoformat()
        out["estimated_auc"] = self.estimated_auc
        out["estimate_error"] = self.estimate_error
        return out


def joined(predictions: pd.DataFrame, labels: LabelSource, as_of: datetime) -> pd.DataFrame:
    """`predictions` with TX_FRAUD, TX_AMOUNT, LABEL_AVAILABLE_AT and `labelled` (landed
    by `as_of`); rows without a transaction id or a known label stay unlabelled."""
    frame = predictions.copy()
    ids = frame["transaction_id"]
    known = ids.notna().to_numpy()
    found = labels.labels(ids[known].astype("int64").to_numpy())
    found = found.drop_duplicates(schema.TRANSACTION_ID).set_index(schema.TRANSACTION_ID)
    at = found.index.get_indexer(pd.Index(ids.fillna(-1).astype("int64").to_numpy()))
    hit = at >= 0
    take = np.where(hit, at, 0)
    for column in (schema.TX_FRAUD, schema.TX_AMOUNT):
        values = found[column].to_numpy(dtype=np.float64) if len(found) else np.zeros(1)
        frame[column] = np.where(hit, values[take] if len(found) else np.nan, np.nan)
    if LOGGED_AMOUNT in frame.columns:  # a label source without amounts: the request's
        logged = frame.pop(LOGGED_AMOUNT).to_numpy(dtype=np.float64, na_value=np.nan)
        amount = frame[schema.TX_AMOUNT].to_numpy(dtype=np.float64)
        frame[schema.TX_AMOUNT] = np.where(hit & np.isnan(amount), logged, amount)
    stamps = pd.to_datetime(found[schema.LABEL_AVAILABLE_AT], utc=True) if len(found) else None
    landed = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
    if stamps is not None and hit.any():
        landed[hit] = stamps.to_numpy()[at[hit]]
    frame[schema.LABEL_AVAILABLE_AT] = landed
    frame["labelled"] = (landed.notna() & (landed <= pd.Timestamp(as_of))).to_numpy()
    return frame


def _lag(rows: pd.DataFrame) -> tuple[float | None, float | None]:
    if rows.empty:
        return None, None
    when = rows["tx_time"].where(rows["tx_time"].notna(), rows["ts"])
    lag = (rows[schema.LABEL_AVAILABLE_AT] - when).dt.total_seconds().to_numpy(dtype=np.float64)
    return float(np.median(lag)), float(lag.max())


def evaluate_rows(
    rows: pd.DataFrame,
    key: tuple[str, int, str],
    window: tuple[datetime, datetime],
    as_of: datetime,
    reference: Reference,
    *,
    top_k: int = 100,
) -> WindowPerformance:
    """The performance of one group's joined rows (`joined`)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    lab = rows[rows["labelled"]]
    y = lab[schema.TX_FRAUD].to_numpy(dtype=np.int64) if len(lab) else np.empty(0, np.int64)
    s = lab["score"].to_numpy(dtype=np.float64)
    frauds = int(y.sum())
    state = "no_labels" if len(lab) == 0 else "ok" if 0 < frauds < len(lab) else "one_class"
    auc = ap = cp = None
    notes: list[str] = []
    if state == "ok":
        auc = float(roc_auc_score(y, s))
        ap = float(average_precision_score(y, s))
        if lab["customer_id"].notna().all() and lab["tx_time"].notna().all():
            cards = pd.DataFrame(
                {
                    schema.CUSTOMER_ID: lab["customer_id"].astype("int64").to_numpy(),
                    schema.TX_FRAUD: y,
                    schema.TX_DATETIME: lab["tx_time"].to_numpy(),
                }
            )
            cp = card_precision_at_k(cards, s, top_k).mean
        else:
            notes.append("records without customer or transaction time: no Card Precision")
    blocked = lab["decision"].to_numpy() == "fraud"
    amount = lab[schema.TX_AMOUNT].to_numpy(dtype=np.float64) if len(lab) else np.empty(0)
    fraud = y == 1
    no_amount = int(np.isnan(amount[fraud]).sum())
    if no_amount:
        notes.append(f"{no_amount} labelled frauds without an amount: not in the fraud EUR")
    amount = np.nan_to_num(amount, nan=0.0)
    unjoinable = int(rows["transaction_id"].isna().sum())
    if unjoinable:
        notes.append(f"{unjoinable} predictions without a transaction id never get a label")
    median_lag, max_lag = _lag(lab)
    est = on_labelled = None
    if reference.calibration is not None:
        est = estimate(reference.calibration, rows["score"].to_numpy(), reference.threshold)
        if state == "ok":
            on_labelled = estimate(reference.calibration, s).auc
    n = len(rows)
    return WindowPerformance(
        model=key[0], version=key[1], variant=key[2], start=window[0], end=window[1],
        as_of=as_of, n_predictions=n, n_labelled=len(lab),
        label_coverage=len(lab) / n if n else 0.0, frauds=frauds, state=state,
        auc=auc, average_precision=ap, card_precision=cp, top_k=top_k,
        blocks=int(blocked.sum()),
        block_precision=float(fraud[blocked].mean()) if blocked.any() else None,
        recall=float(blocked[fraud].mean()) if fraud.any() else None,
        fraud_eur=round(float(amount[fraud].sum()), 2),
        fraud_eur_blocked=round(float(amount[fraud & blocked].sum()), 2),
        label_lag_seconds=median_lag, label_lag_max_seconds=max_lag,
        estimate_state=reference.estimate_state, estimated=est,
        estimated_on_labelled=on_labelled, reference=dict(reference.metrics), notes=notes,
    )  # fmt: skip


def frame_performance(
    references: ReferenceSource,
    rows: pd.DataFrame,
    window: tuple[datetime, datetime],
    as_of: datetime,
    *,
    top_k: int = 100,
) -> list[WindowPerformance]:
    """One result per (model, version, variant) of one window's `joined` predictions."""
    if rows.empty:
        return []
    out = []
    for (name, logged, variant), group in rows.groupby(["model", "version", "variant"]):
        version = logged_version(logged)
        ref = references.reference(str(name), version)
        out.append(
            evaluate_rows(
                group, (str(name), version, str(variant)), window, as_of, ref, top_k=top_k
            )
        )
    return out


def _logged_amounts(features: pd.Series) -> np.ndarray:
    """Each record's `TX_AMOUNT` feature (NaN where it has none)."""
    key = schema.TX_AMOUNT

    def one(value: Any) -> float:
        found = value.get(key) if isinstance(value, dict) else None
        return np.nan if found is None else float(found)

    return np.fromiter((one(v) for v in features), dtype=np.float64, count=len(features))


def performance_windows(
    references: ReferenceSource,
    reader: LogReader,
    labels: LabelSource,
    start: datetime,
    end: datetime,
    every: timedelta,
    *,
    as_of: datetime,
    model: str | None = None,
    version: int | None = None,
    top_k: int = 100,
) -> list[tuple[datetime, datetime, list[WindowPerformance]]]:
    """Tumbling windows of `every` over [start, end) of the log, labels as of `as_of`.

    A window without predictions has an empty list; a range without any is `NoDataError`;
    an unknown version raises `NotFoundError` before anything is computed.
    """
    if end <= start:
        raise ValidationError(f"the window ends ({end}) before it starts ({start})", field="to")
    if every <= timedelta(0):
        raise ValidationError("a window must last more than 0 s", field="window")
    if (end - start) / every > MAX_WINDOWS:
        raise ValidationError(f"more than {MAX_WINDOWS} windows", field="window")
    if top_k < 1:
        raise ValidationError("k must be at least 1", field="top_k")
    frame = reader.read(start, end)
    what = ""
    if model is not None and not frame.empty:
        frame = frame[frame["model"] == model]
        what = f" of model {model!r}"
    if version is not None:
        if model is not None:
            references.reference(model, version)  # an unknown version: NotFoundError
        if not frame.empty:
            frame = frame[frame["version"].astype(str) == str(version)]
        what += f" version {version}"
    if frame.empty:
        raise NoDataError(f"no prediction{what} logged in {start} .. {end}", field="window")
    for name, logged in frame[["model", "version"]].drop_duplicates().itertuples(index=False):
        references.reference(str(name), logged_version(logged))  # unknown: fail before any work
    if "features" in frame.columns:
        frame = frame.assign(**{LOGGED_AMOUNT: _logged_amounts(frame["features"])})
    rows = joined(frame.drop(columns=["features"], errors="ignore"), labels, as_of)
    out = []
    at = start
    while at < end:
        stop = min(at + every, end)
        part = rows[(rows["ts"] >= at) & (rows["ts"] < stop)]
        out.append((at, stop, frame_performance(references, part, (at, stop), as_of,
                                                top_k=top_k)))  # fmt: skip
        at = stop
    return out


def flatten(
    windows: Sequence[tuple[datetime, datetime, list[WindowPerformance]]],
) -> list[WindowPerformance]:
    """Every result of `performance_windows`, in window order."""
    return [r for _, _, results in windows for r in results]
