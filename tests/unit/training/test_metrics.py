from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsd.errors import ValidationError
from mlsd.training.metrics import card_precision_at_k, evaluate, mean_metrics

from . import handbook_reference, synthetic


@pytest.mark.parametrize("k", [1, 10, 100])
def test_card_precision_matches_the_handbook(k: int) -> None:
    frame = synthetic.transactions(n_customers=300, n_days=10, seed=3)
    rng = np.random.default_rng(1)
    # informative but noisy scores, with continuous values so that there are no ties
    scores = frame["TX_FRAUD"].to_numpy() * 0.5 + rng.random(len(frame))
    ours = card_precision_at_k(frame, scores, k)
    reference = frame.assign(predictions=scores)
    compromised, per_day, mean = handbook_reference.card_precision_top_k(reference, k)
    assert ours.mean == pytest.approx(mean, abs=1e-12)
    assert list(ours.per_day.values()) == pytest.approx(per_day, abs=1e-12)
    assert list(ours.compromised_per_day.values()) == compromised
    assert 0 < ours.mean <= 1


def test_detected_cards_are_not_counted_twice() -> None:
    stamps = pd.to_datetime(["2018-08-08 10:00", "2018-08-08 11:00", "2018-08-09 10:00"], utc=True)
    frame = pd.DataFrame({"TX_DATETIME": stamps, "CUSTOMER_ID": [1, 2, 1], "TX_FRAUD": [1, 0, 1]})
    result = card_precision_at_k(frame, [0.9, 0.1, 0.9], k=1)
    assert result.per_day == {"2018-08-08": 1.0, "2018-08-09": 0.0}
    kept = card_precision_at_k(frame, [0.9, 0.1, 0.9], k=1, remove_detected=False)
    assert kept.mean == 1.0


def test_evaluate_reports_the_three_metrics() -> None:
    frame = synthetic.transactions(n_customers=100, n_days=5)
    labels = frame["TX_FRAUD"].to_numpy().astype(float)
    perfect = evaluate(frame, labels, top_k=100)
    assert perfect["auc_roc"] == 1.0
    assert perfect["average_precision"] == 1.0
    assert set(perfect) == {"auc_roc", "average_precision", "card_precision_at_100"}
    random = evaluate(frame, np.random.default_rng(0).random(len(frame)))
    assert 0.35 < random["auc_roc"] < 0.65


def test_bad_scores_are_refused() -> None:
    frame = synthetic.transactions(n_customers=50, n_days=3)
    with pytest.raises(ValidationError) as info:
        evaluate(frame, np.zeros(len(frame) - 1))
    assert info.value.field == "scores"
    with pytest.raises(ValidationError):
        evaluate(frame, np.full(len(frame), np.nan))
    with pytest.raises(ValidationError) as info:
        evaluate(frame.assign(TX_FRAUD=0), np.zeros(len(frame)))
    assert info.value.field == "TX_FRAUD"
    with pytest.raises(ValidationError):
        card_precision_at_k(frame, np.zeros(len(frame)), k=0)


def test_mean_metrics() -> None:
    out = mean_metrics([{"a": 1.0}, {"a": 3.0}])
    assert out == {"a": 2.0, "a_std": 1.0}
    assert mean_metrics([]) == {}
