from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from mlsd.errors import ValidationError
from mlsd.training.protocol import (
    Split,
    prequential_splits,
    split_frame,
    validation_split,
    with_day,
)

from . import handbook_reference, synthetic


def test_split_periods() -> None:
    split = Split(date(2018, 7, 25))
    assert split.to_dict() == {
        "train_start": "2018-07-25",
        "train_end": "2018-08-01",
        "test_start": "2018-08-08",
        "test_end": "2018-08-15",
    }


def test_split_rejects_nonsense() -> None:
    with pytest.raises(ValidationError) as info:
        Split(date(2018, 7, 25), train_days=0)
    assert info.value.field == "train_days"
    with pytest.raises(ValidationError):
        Split(date(2018, 7, 25), delay_days=-1)
    with pytest.raises(ValidationError):
        prequential_splits(Split(date(2018, 7, 25)), 0)


@pytest.mark.parametrize("delay", [0, 3, 7])
def test_split_matches_the_handbook(delay: int) -> None:
    frame = synthetic.transactions(n_days=30)
    split = Split(date(2018, 4, 5), train_days=7, delay_days=delay, test_days=7)
    train, test = split_frame(frame, split)
    start = pd.Timestamp("2018-04-05", tz="UTC")
    ref_train, ref_test = handbook_reference.get_train_test_set(
        frame, start, delta_train=7, delta_delay=delay, delta_test=7
    )
    assert train["TRANSACTION_ID"].tolist() == ref_train["TRANSACTION_ID"].tolist()
    assert sorted(test["TRANSACTION_ID"]) == sorted(ref_test["TRANSACTION_ID"])
    assert 0 < len(test) < (frame["TX_TIME_DAYS"] >= 4 + 7 + delay).sum()


def test_known_cards_are_removed_from_the_test_days() -> None:
    stamps = pd.to_datetime(
        ["2018-04-01 10:00", "2018-04-02 10:00", "2018-04-03 10:00", "2018-04-04 10:00"], utc=True
    )
    frame = pd.DataFrame(
        {"TX_DATETIME": stamps, "CUSTOMER_ID": [1, 2, 1, 2], "TX_FRAUD": [1, 1, 0, 0]}
    )
    # train day 1, delay day 2, test days 3-4: card 1 known since train, card 2 on day 4
    train, test = split_frame(frame, Split(date(2018, 4, 1), 1, 1, 2))
    assert len(train) == 1
    assert test.empty
    # no delay: card 2's fraud on day 2 (a test day) is not known on day 2 itself
    _, test = split_frame(frame, Split(date(2018, 4, 1), 1, 0, 3))
    assert test["TX_DATETIME"].dt.day.tolist() == [2]
    assert test["CUSTOMER_ID"].tolist() == [2]


def test_prequential_folds_move_back_by_the_test_length() -> None:
    folds = prequential_splits(Split(date(2018, 7, 11)), 3)
    assert [f.train_start for f in folds] == [
        date(2018, 7, 11),
        date(2018, 7, 4),
        date(2018, 6, 27),
    ]


def test_validation_never_touches_test_days() -> None:
    test = Split(date(2018, 7, 25))
    valid = validation_split(test)
    assert valid.train_start == date(2018, 7, 11)
    assert valid.test_end <= test.train_end
    assert valid.test_start == test.train_start


def test_naive_timestamps_are_refused() -> None:
    frame = pd.DataFrame({"TX_DATETIME": pd.to_datetime(["2018-04-01"]), "CUSTOMER_ID": [1]})
    with pytest.raises(ValidationError) as info:
        with_day(frame)
    assert info.value.field == "TX_DATETIME"
