"""A label-free performance estimate: confidence-based (CBPE, as NannyML's), from scores.

Fraud labels land days after the scores. A calibrated score is a probability of fraud,
so before any label lands the expected confusion matrix at every threshold is known:
a row scoring p counts p of a true positive and 1 − p of a false positive. From it:

- expected ROC AUC: the trapezoid of the expected TPR over the expected FPR, thresholds
  at every distinct score;
- expected average precision: Σ_k p_k · precision@k / Σ p over the rows ranked by score;
- expected precision and recall of the decisions at the version's threshold.

The calibration is the version's (`ReferenceProfile.calibration`: isotonic regression of
the label on the score, fitted at registration on the labelled test rows). scikit-learn's
`IsotonicRegression` fits it; applying it is one `np.interp`. NannyML does the same with
more machinery (its CBPE also fits the calibrator on a reference period) and pulls a
large dependency tree for it; the estimate itself is these few lines.

What it cannot see: it assumes P(fraud | score) is the reference's. Under covariate shift
(the inputs move, the relation holds) it follows the true metric; under **concept drift**
(new frauds the model scores low) the scores barely move, so the estimate stays where it
was while the true AUC falls. Only labels show that (`mlsd.monitoring.performance`).

>>> import numpy as np
>>> from mlsd.registry.profile import fit_calibration
>>> rng = np.random.default_rng(0)
>>> s = rng.uniform(size=20_000)
>>> y = (rng.uniform(size=s.size) < s).astype(int)  # calibrated by construction
>>> est = estimate(fit_calibration(s, y), s, threshold=0.5)
>>> round(est.auc, 2), round(est.precision, 2), round(est.recall, 2)  # true: 0.83, 0.75, 0.75
(0.84, 0.76, 0.75)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mlsd.errors import NotFoundError, ValidationError
from mlsd.registry.profile import CalibrationProfile, ReferenceProfile


class MissingCalibrationError(NotFoundError):
    """The version's profile holds no calibration (registered without labels, or before)."""


@dataclass(frozen=True)
class Estimate:
    """Expected metrics of scored rows; None where the rows give nothing to estimate."""

    n: int
    expected_frauds: float
    auc: float | None
    average_precision: float | None
    precision: float | None
    recall: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return asdict(self)


def calibration_of(profile: ReferenceProfile, where: str = "the version") -> CalibrationProfile:
    """The profile's calibration, or `MissingCalibrationError` saying why there is none."""
    if profile.calibration is None:
        raise MissingCalibrationError(
            f"the reference profile of {where} has no calibration (registered without "
            "labelled scores): no label-free estimate; retrain it to get one",
            field="calibration",
        )
    return profile.calibration


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def estimate(
    calibration: CalibrationProfile, scores: ArrayLike, threshold: float | None = None
) -> Estimate:
    """Expected AUC, AP, and precision / recall at `threshold` of `scores` (see module doc)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValidationError("scores must be one-dimensional", field="scores")
    s = s[np.isfinite(s)]
    p = calibration.calibrated(s)
    n = int(s.size)
    positives = float(p.sum())
    negatives = float(n - positives)
    if n == 0:
        return Estimate(0, 0.0, None, None, None, None)
    order = np.argsort(-s, kind="stable")
    ranked, pr = s[order], p[order]
    tp = np.cumsum(pr)
    fp = np.cumsum(1.0 - pr)
    auc = ap = None
    if positives > 0 and negatives > 0:
        ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))  # tie groups
        tpr = np.concatenate([[0.0], tp[ends] / positives])
        fpr = np.concatenate([[0.0], fp[ends] / negatives])
        auc = float(np.trapezoid(tpr, fpr))
        ap = _expected_ap(tp, ends, positives)
    precision = recall = None
    if threshold is not None:
        flagged = s >= threshold
        caught = float(p[flagged].sum())
        precision = _ratio(caught, float(np.count_nonzero(flagged)))
        recall = _ratio(caught, positives)
    return Estimate(n, positives, auc, ap, precision, recall)


def _expected_ap(tp: NDArray[np.float64], ends: NDArray[np.intp], positives: float) -> float:
    """Σ over tie groups of (expected positives in the group) x precision at its end."""
    counts = ends + 1
    in_group = np.diff(np.concatenate([[0.0], tp[ends]]))
    return float(np.sum(in_group * tp[ends] / counts) / positives)
