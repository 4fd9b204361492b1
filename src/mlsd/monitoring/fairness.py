"""Fairness by customer segment: false declines, recall and flag rate per region or age band.

The prediction log's answered rows (shadow rows declined no one) are joined by transaction
id to the transactions' labels, counting only the labels known at the evaluation time
(`LABEL_AVAILABLE_AT <= as_of`), and to the customers' segments (`mlsd.data.segments`).
Per segment of one model version:

- false-positive rate: the share of genuine transactions declined (a false decline);
- recall: the share of frauds declined;
- flag rate: the share of transactions declined, whatever their label.

The per-segment rates are Fairlearn's `MetricFrame` with its own `false_positive_rate`,
`true_positive_rate` and `selection_rate`, so the figures mean what a Fairlearn user reads;
each carries a Wilson interval. The gap of a metric is the highest segment minus the lowest
(Fairlearn's `difference(method="between_groups")`) over the segments with at least
`min_support` rows in the metric's denominator. Two figures say how sure it is, both by
**bootstrap** with a fixed seed, stratified by segment (each segment's four confusion cells
redrawn from a multinomial of its size, which is exactly resampling its rows with
replacement, in milliseconds; Fairlearn's own `n_boot` resamples the frame through pandas:
118 s for 200 resamples of 50,000 rows on this machine):

- a 95 % percentile interval of the gap, each segment resampled at its own rates;
- a p-value of "no gap": segments of the same sizes all drawn at the pooled rates, the
  share of their max - min at least as large as the one observed.

Read the p-value to decide whether a gap is more than noise, and the interval for how
large it is: a max - min is never negative and noise alone makes it positive, so its
interval excludes 0 even between segments drawn at random. A bootstrap rather than
Newcombe's interval for the two extreme segments, because they were chosen after looking.

Nothing is NaN: a rate without a denominator is None ("no data"), a gap without two
comparable segments is None with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.data.segments import SEGMENTS
from mlsd.errors import UnavailableError, ValidationError
from mlsd.monitoring.labels import LABEL_COLUMNS, known_by, read_datasets
from mlsd.monitoring.segment_bootstrap import (
    FN,
    FP,
    TN,
    TP,
    hits_and_support,
    permuted,
    resampled,
    spreads,
)
from mlsd.monitoring.window import NoDataError
from mlsd.predlog.summary import labelled
from mlsd.stats import Interval, wilson

BY: Final[dict[str, str]] = {"region": schema.REGION, "age_band": schema.AGE_BAND}
METRICS: Final = ("false_positive_rate", "recall", "flag_rate")
FRAUD_DECISION: Final = "fraud"
#: The variant suffix of shadow rows (`mlsd.rollout.pairs.SHADOW_SUFFIX`, a sibling package).
SHADOW_SUFFIX: Final = ":shadow"


@dataclass(frozen=True)
class SegmentRates:
    """One segment's labelled rows, counts and rates (None: no denominator)."""

    segment: str
    labelled: int
    frauds: int
    flagged: int
    false_positives: int
    caught: int
    false_positive_rate: Interval | None
    recall: Interval | None
    flag_rate: Interval | None


@dataclass(frozen=True)
class Gap:
    """Highest minus lowest segment of one metric, with its bootstrap interval."""

    metric: str
    gap: float | None
    low: float | None
    high: float | None
    highest: str | None
    lowest: str | None
    compared: list[str]
    #: Share of gaps at least this large among segments drawn at the pooled rate (no gap).
    p_value: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class FairnessReport:
    """The segments of one model version over a window, as of an evaluation time."""

    model: str
    version: str
    by: str
    start: datetime | None
    end: datetime | None
    as_of: datetime
    scored: int
    labelled: int
    unlabelled: int
    segments: list[SegmentRates]
    gaps: list[Gap]
    interval: str
    n_boot: int
    seed: int
    min_support: int
    notes: list[str] = field(default_factory=list)

    def gap(self, metric: str) -> Gap:
        """The gap of one metric."""
        return next(g for g in self.gaps if g.metric == metric)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        out = asdict(self)
        for key in ("start", "end", "as_of"):
            out[key] = None if out[key] is None else out[key].isoformat()
        return out


def segment_labels(
    transactions: pd.DataFrame, customers: pd.DataFrame, as_of: datetime
) -> pd.DataFrame:
    """The transactions whose label is known by `as_of`, with their customer's segments."""
    missing = [c for c in (schema.REGION, schema.AGE_BAND) if c not in customers.columns]
    if missing:
        raise NoDataError(
            f"the customer table has no segment columns {missing}: it was simulated before "
            "segments existed, or imported; simulate it again (mlsd simulate / mlsd demo)",
            field="labels",
        )
    known = known_by(transactions, as_of)
    segments = customers[[schema.CUSTOMER_ID, schema.REGION, schema.AGE_BAND]]
    return known[LABEL_COLUMNS].merge(segments, on=schema.CUSTOMER_ID, how="left")


def read_labels(folders: Sequence[Path], as_of: datetime) -> pd.DataFrame:
    """`segment_labels` of one or more dataset folders (history and replayed days, say)."""
    transactions, customers = read_datasets(folders)
    return segment_labels(transactions, customers, as_of)


def _answered(frame: pd.DataFrame, model: str | None, version: int | str | None) -> pd.DataFrame:
    if frame.empty:
        return frame
    rows = frame[~frame["variant"].astype(str).str.endswith(SHADOW_SUFFIX)]
    if model is not None:
        rows = rows[rows["model"] == model]
    if version is not None:
        rows = rows[rows["version"].astype(str) == str(version)]
    return rows


def window_fairness(
    frame: pd.DataFrame,
    labels: pd.DataFrame,
    by: str,
    *,
    as_of: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    model: str | None = None,
    version: int | str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    min_support: int = 10,
) -> list[FairnessReport]:
    """One report per (model, version) answering in a log read, largest first.

    `labels` is `segment_labels(...)`. Raises NoDataError when no answered prediction is
    in `frame`, or none of them has a label known by `as_of`.
    """
    column = segment_column(by)
    if n_boot < 100:
        raise ValidationError("n_boot must be at least 100", field="n_boot")
    if min_support < 1:
        raise ValidationError("min_support must be at least 1", field="min_support")
    rows = _answered(frame, model, version)
    what = "" if model is None else f" of model {model!r}"
    what += "" if version is None else f" version {version}"
    span = f"{start or 'the beginning'} .. {end or 'now'}"
    if rows.empty:
        raise NoDataError(f"no answered prediction{what} logged in {span}", field="window")
    reports = []
    for (name, logged), group in rows.groupby(["model", "version"], sort=False):
        joined = labelled(group, labels)
        with_id = int(group["transaction_id"].notna().sum())
        report = _report(joined, column, n_boot=n_boot, seed=seed, min_support=min_support)
        notes = []
        if with_id < len(group):
            notes.append(f"{len(group) - with_id:,} predictions carry no transaction id "
                         "(bare tensors): left out")  # fmt: skip
        outside = int((~joined[column].isin(SEGMENTS[column])).sum()) if len(joined) else 0
        if outside:
            notes.append(f"{outside:,} labelled rows have a customer without a known segment: "
                         "left out")  # fmt: skip
        answered = group[(group["endpoint"] == "score") & group["transaction_id"].notna()]
        scored = int(answered["transaction_id"].nunique())
        reports.append(
            FairnessReport(
                model=str(name),
                version=str(logged),
                by=by,
                start=start,
                end=end,
                as_of=as_of,
                scored=scored,
                labelled=len(joined),
                unlabelled=scored - len(joined),
                notes=notes,
                **report,
            )
        )
    if not any(r.labelled for r in reports):
        scored = sum(r.scored for r in reports)
        raise NoDataError(
            f"{scored:,} predictions{what} in {span}, none with a label known by "
            f"{as_of.isoformat()} (labels land days after their transaction): nothing to "
            "measure yet",
            field="as_of",
        )
    return sorted(reports, key=lambda r: r.scored, reverse=True)


def segment_column(by: str) -> str:
    """The customer column of a segment name (ValidationError for another name)."""
    if by not in BY:
        raise ValidationError(f"--by: expected one of {', '.join(BY)}, not {by!r}", field="by")
    return BY[by]


def _report(
    joined: pd.DataFrame, column: str, *, n_boot: int, seed: int, min_support: int
) -> dict[str, Any]:
    """Segments and gaps of one version's labelled rows."""
    names = SEGMENTS[column]
    common = {"interval": INTERVAL, "n_boot": n_boot, "seed": seed, "min_support": min_support}
    rows = joined[joined[column].isin(names)] if len(joined) else joined
    if rows.empty:
        empty = [SegmentRates(s, 0, 0, 0, 0, 0, None, None, None) for s in names]
        gaps = [
            Gap(m, None, None, None, None, None, [], reason="no labelled rows") for m in METRICS
        ]
        return {"segments": empty, "gaps": gaps, **common}
    fraud = rows[schema.TX_FRAUD].astype(int).to_numpy() == 1
    declined = (rows["decision"] == FRAUD_DECISION).to_numpy()
    segment = rows[column].astype(str).to_numpy()
    seg_ix = pd.Categorical(segment, categories=list(names)).codes.astype(np.int64)
    cell = 2 * fraud.astype(np.int64) + declined.astype(np.int64)
    # one row of cells per customer: the unit the bootstrap resamples
    customer, _ = pd.factorize(rows[schema.CUSTOMER_ID].to_numpy())
    clusters = np.zeros((int(customer.max()) + 1, 4), dtype=np.int64)
    np.add.at(clusters, (customer, cell), 1)
    cluster_seg = np.zeros(len(clusters), dtype=np.int64)
    cluster_seg[customer] = seg_ix  # a customer has one segment
    cells = np.zeros((len(names), 4), dtype=np.int64)
    np.add.at(cells, (seg_ix, cell), 1)
    rates = _metric_frame(cells, names)
    segments = [_segment(name, cells[i], rates.get(name, {})) for i, name in enumerate(names)]
    rng = np.random.default_rng(seed)
    boot = resampled(clusters, cluster_seg, len(names), rng, n_boot)
    null = permuted(clusters, cluster_seg, len(names), rng, n_boot)
    gaps = [_gap(m, names, cells, segments, boot, null, min_support) for m in METRICS]
    return {"segments": segments, "gaps": gaps, **common}


INTERVAL: Final = (
    "percentile bootstrap of customers, stratified by segment, 95 %; p-value: segments "
    "permuted among customers"
)


def _metric_frame(cells: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Fairlearn's rates per segment, {segment: {metric: value}}, from the confusion cells.

    Each segment's four cells go in as four rows weighted by their counts: the same rates
    as one row per transaction, in milliseconds whatever the window's size (per row,
    Fairlearn took 3.2 s for 19,870 rows).
    """
    try:
        from fairlearn.metrics import (
            MetricFrame,
            false_positive_rate,
            selection_rate,
            true_positive_rate,
        )
    except ModuleNotFoundError:
        raise UnavailableError(
            "fairness metrics need Fairlearn: pip install 'mlsd[monitoring]'", field="fairlearn"
        ) from None
    seg, cell = np.nonzero(cells)  # the cells that hold rows
    weight = cells[seg, cell].astype(np.float64)
    metrics = {
        "false_positive_rate": false_positive_rate,
        "recall": true_positive_rate,
        "flag_rate": selection_rate,
    }
    mf = MetricFrame(
        metrics=metrics,
        y_true=(cell >= FN).astype(np.int64),  # cells 2 and 3 are frauds
        y_pred=(cell % 2).astype(np.int64),  # cells 1 and 3 are declined
        sensitive_features=pd.Series(np.asarray(names)[seg], name="segment"),
        sample_params={name: {"sample_weight": weight} for name in metrics},
    )
    by_group: pd.DataFrame = mf.by_group
    return {
        str(key): {str(m): float(v) for m, v in row.items()} for key, row in by_group.iterrows()
    }


def _segment(name: str, c: np.ndarray, rates: dict[str, float]) -> SegmentRates:
    legit, frauds, n = int(c[TN] + c[FP]), int(c[FN] + c[TP]), int(c.sum())
    flagged = int(c[FP] + c[TP])

    def rate(metric: str, hits: int, denominator: int) -> Interval | None:
        if denominator == 0:
            return None
        w = wilson(hits, denominator)
        # the estimate is Fairlearn's; the counts give the same figure
        return Interval(rates.get(metric, w.estimate), w.low, w.high, w.confidence)

    return SegmentRates(
        segment=name, labelled=n, frauds=frauds, flagged=flagged,
        false_positives=int(c[FP]), caught=int(c[TP]),
        false_positive_rate=rate("false_positive_rate", int(c[FP]), legit),
        recall=rate("recall", int(c[TP]), frauds),
        flag_rate=rate("flag_rate", flagged, n),
    )  # fmt: skip


def _gap(
    metric: str,
    names: Sequence[str],
    cells: np.ndarray,
    segments: list[SegmentRates],
    boot: np.ndarray,
    null: np.ndarray,
    min_support: int,
) -> Gap:
    _, support = hits_and_support(metric, cells)
    keep = [i for i in range(len(names)) if support[i] >= min_support]
    compared = [names[i] for i in keep]
    if len(keep) < 2:
        what = {"recall": "frauds", "false_positive_rate": "genuine transactions"}
        need = what.get(metric, "labelled transactions")
        return Gap(metric, None, None, None, None, None, compared,
                   reason=f"fewer than 2 segments with at least {min_support} {need}")  # fmt: skip
    values = np.array([getattr(segments[i], metric).estimate for i in keep])
    hi, lo = int(np.argmax(values)), int(np.argmin(values))
    gap = float(values[hi] - values[lo])
    low, high = np.quantile(spreads(metric, boot[:, keep]), [0.025, 0.975])
    # segments are shuffled among all customers; the compared ones are read off
    no_gap = spreads(metric, null[:, keep])
    p_value = float((1 + np.count_nonzero(no_gap >= gap - 1e-12)) / (1 + no_gap.size))
    return Gap(
        metric=metric, gap=gap, low=float(low), high=float(high), highest=compared[hi],
        lowest=compared[lo], compared=compared, p_value=p_value,
    )  # fmt: skip


def gauges_text(reports: Sequence[FairnessReport]) -> str:
    """`mlsd_fairness_gap{model,version,by,metric}` and its interval bounds, in Prometheus'
    text format; a gap without data is absent, never NaN. Labels are a closed set."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    labels = ["model", "version", "by", "metric"]
    gap = Gauge("mlsd_fairness_gap", "highest minus lowest segment", labels, registry=registry)
    low = Gauge("mlsd_fairness_gap_low", "bootstrap 2.5 % bound", labels, registry=registry)
    high = Gauge("mlsd_fairness_gap_high", "bootstrap 97.5 % bound", labels, registry=registry)
    pvalue = Gauge("mlsd_fairness_gap_pvalue", "bootstrap p-value of no gap", labels,
                   registry=registry)  # fmt: skip
    rows = Gauge("mlsd_fairness_labelled_rows", "labelled rows", labels[:3], registry=registry)
    for r in reports:
        rows.labels(r.model, r.version, r.by).set(r.labelled)
        for g in r.gaps:
            if g.gap is None or g.low is None or g.high is None:
                continue
            key = (r.model, r.version, r.by, g.metric)
            gap.labels(*key).set(g.gap)
            low.labels(*key).set(g.low)
            high.labels(*key).set(g.high)
            if g.p_value is not None:
                pvalue.labels(*key).set(g.p_value)
    return generate_latest(registry).decode()
