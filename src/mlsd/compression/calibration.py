"""Calibration sets for static int8: which rows the activation ranges are read from.

Static quantization fixes each activation's int8 range from the calibration rows: a value
outside it is clipped. Frauds are the rows with the extreme amounts and risks, so a set of
a few legitimate rows gives ranges that clip exactly the rows that matter. A good set is
stratified: `fraud_share` of frauds (oversampled above their base rate), enough rows.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mlsd.compression.variant import Calibration, calibration_hash
from mlsd.errors import ValidationError


def calibration_set(
    X: NDArray[np.float32],
    y: NDArray[np.int32],
    *,
    rows: int,
    fraud_share: float | None = None,
    legit_only: bool = False,
    seed: int = 0,
    require_both_classes: bool = True,
) -> tuple[NDArray[np.float32], Calibration]:
    """`rows` rows of (X, y): legit only, stratified at `fraud_share`, or at the base rate.

    ValidationError for an empty set, and (unless `require_both_classes` is off, as the lab
    does to show the damage) for a set of one class only.
    """
    if rows < 1 or len(X) == 0:
        raise ValidationError(
            f"the calibration set is empty ({rows} rows asked of {len(X)})", field="calibration"
        )
    rng = np.random.default_rng(seed)
    frauds, legit = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if legit_only:
        n_fraud = 0
    elif fraud_share is None:
        n_fraud = round(rows * len(frauds) / len(y))
    else:
        n_fraud = round(rows * fraud_share)
    n_fraud = min(n_fraud, len(frauds))
    n_legit = min(rows - n_fraud, len(legit))
    chosen = np.concatenate(
        [rng.choice(frauds, n_fraud, replace=False), rng.choice(legit, n_legit, replace=False)]
    )
    chosen.sort()
    values, labels = X[chosen], y[chosen]
    if len(values) == 0:
        raise ValidationError("the calibration set is empty", field="calibration")
    if require_both_classes and len(np.unique(labels)) < 2:
        only = "legitimate" if labels[0] == 0 else "fraudulent"
        raise ValidationError(
            f"the calibration set holds only {only} rows ({len(labels)}): ranges read from one "
            "class clip the other's values; include frauds (a stratified set)",
            field="calibration",
        )
    how = (
        "legit only"
        if legit_only
        else ("base rate" if fraud_share is None else f"stratified, {fraud_share:.0%} frauds")
    )
    return values, Calibration(
        len(values), int(labels.sum()), calibration_hash(values, labels), how
    )


def describe(calibration: Calibration | None) -> str:
    """`2,048 rows (205 frauds, stratified, 10% frauds)`."""
    if calibration is None:
        return "none"
    return f"{calibration.rows:,} rows ({calibration.frauds:,} frauds, {calibration.how})"
