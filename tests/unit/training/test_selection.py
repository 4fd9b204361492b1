from __future__ import annotations

import pytest

from mlsd.errors import ValidationError
from mlsd.training.config import TrainConfig
from mlsd.training.selection import MEAN_RANK, Candidate, Selection, choose, mean_ranks

KEYS = ("auc_roc", "average_precision", "card_precision_at_100")


def metrics(auc: float, ap: float, cp: float) -> dict[str, float]:
    return dict(zip(KEYS, (auc, ap, cp), strict=True))


def test_mean_ranks_share_ties() -> None:
    rows = [metrics(0.9, 0.6, 0.3), metrics(0.8, 0.7, 0.3), metrics(0.7, 0.5, 0.2)]
    # AUC ranks 1 2 3, AP ranks 2 1 3, CP ranks 1.5 1.5 3
    assert mean_ranks(rows, KEYS) == pytest.approx([4.5 / 3, 4.5 / 3, 3.0])


def test_single_metric_rule_takes_the_highest_mean_first_on_ties() -> None:
    rows = [metrics(0.88, 0.60, 0.30), metrics(0.87, 0.66, 0.31), metrics(0.86, 0.66, 0.32)]
    assert choose(rows, "auc_roc") == 0
    assert choose(rows, "average_precision") == 1
    assert choose(rows, "card_precision_at_100") == 2


def test_mean_rank_prefers_the_all_round_candidate() -> None:
    rows = [
        metrics(0.880, 0.640, 0.310),  # best AUC only: ranks 1 3 3
        metrics(0.870, 0.660, 0.315),  # best AP only: ranks 3 1 2
        metrics(0.878, 0.655, 0.320),  # second, second, best: ranks 2 2 1
    ]
    assert choose(rows, MEAN_RANK) == 2


def test_mean_rank_ties_go_to_the_higher_ap() -> None:
    rows = [metrics(0.88, 0.64, 0.31), metrics(0.87, 0.66, 0.31)]  # ranks 1 2 1.5 / 2 1 1.5
    assert choose(rows, MEAN_RANK) == 1
    assert choose(list(reversed(rows)), MEAN_RANK) == 0


def test_mean_rank_uses_the_configured_k() -> None:
    rows = [
        {"auc_roc": 0.9, "average_precision": 0.6, "card_precision_at_50": 0.2},
        {"auc_roc": 0.8, "average_precision": 0.5, "card_precision_at_50": 0.9},
    ]
    assert choose(rows, MEAN_RANK, top_k=50) == 0
    with pytest.raises(KeyError):
        choose(rows, MEAN_RANK)  # k = 100 is not there


def test_bad_rules_and_empty_grids_are_refused() -> None:
    with pytest.raises(ValidationError) as info:
        choose([metrics(0.9, 0.6, 0.3)], "f1")
    assert info.value.field == "selection_metric"
    with pytest.raises(ValidationError) as empty:
        choose([], MEAN_RANK)
    assert empty.value.field == "grid"


def test_selection_best_follows_the_rule() -> None:
    candidates = [
        Candidate({"n": 1}, [metrics(0.88, 0.64, 0.31), metrics(0.88, 0.64, 0.31)]),
        Candidate({"n": 2}, [metrics(0.87, 0.66, 0.32), metrics(0.87, 0.66, 0.32)]),
    ]
    assert Selection("lightgbm", "auc_roc", candidates).best.params == {"n": 1}
    assert Selection("lightgbm", MEAN_RANK, candidates).best.params == {"n": 2}


def test_config_accepts_the_mean_rank_rule() -> None:
    config = TrainConfig.make(dataset="x", selection_metric="mean_rank")
    assert config.metric_name == MEAN_RANK
