"""Straight ports of the Fraud Detection Handbook's code, used as test oracles only.

`get_train_test_set` (section 3.4), `card_precision_top_k` (section 4.2) and the
feature transformations (section 3.3), kept close to the original pandas code.
"""

# ruff: noqa: SIM300  (kept as the handbook wrote it)
from __future__ import annotations

import datetime

import numpy as np
import pandas as pd


def get_train_test_set(
    transactions_df: pd.DataFrame,
    start_date_training: datetime.datetime,
    delta_train: int = 7,
    delta_delay: int = 7,
    delta_test: int = 7,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    train_df = transactions_df[
        (transactions_df.TX_DATETIME >= start_date_training)
        & (transactions_df.TX_DATETIME < start_date_training + datetime.timedelta(days=delta_train))
    ]
    test_df = []
    known_defrauded_customers = set(train_df[train_df.TX_FRAUD == 1].CUSTOMER_ID)
    start_tx_time_days_training = train_df.TX_TIME_DAYS.min()
    for day in range(delta_test):
        test_df_day = transactions_df[
            transactions_df.TX_TIME_DAYS
            == start_tx_time_days_training + delta_train + delta_delay + day
        ]
        test_df_day_delay_period = transactions_df[
            transactions_df.TX_TIME_DAYS == start_tx_time_days_training + delta_train + day - 1
        ]
        new_defrauded_customers = set(
            test_df_day_delay_period[test_df_day_delay_period.TX_FRAUD == 1].CUSTOMER_ID
        )
        known_defrauded_customers = known_defrauded_customers.union(new_defrauded_customers)
        test_df_day = test_df_day[~test_df_day.CUSTOMER_ID.isin(known_defrauded_customers)]
        test_df.append(test_df_day)
    return train_df, pd.concat(test_df)


def card_precision_top_k(
    predictions_df: pd.DataFrame, top_k: int
) -> tuple[list[int], list[float], float]:
    list_days = sorted(predictions_df["TX_TIME_DAYS"].unique())
    list_detected_compromised_cards: list[int] = []
    card_precision_top_k_per_day_list = []
    nb_compromised_cards_per_day = []
    for day in list_days:
        df_day = predictions_df[predictions_df["TX_TIME_DAYS"] == day]
        df_day = df_day[["predictions", "CUSTOMER_ID", "TX_FRAUD"]]
        df_day = df_day[~df_day.CUSTOMER_ID.isin(list_detected_compromised_cards)]
        nb_compromised_cards_per_day.append(len(df_day[df_day.TX_FRAUD == 1].CUSTOMER_ID.unique()))
        df_day = (
            df_day.groupby("CUSTOMER_ID")
            .max()
            .sort_values(by="predictions", ascending=False)
            .reset_index(drop=False)
        )
        df_day_top_k = df_day.head(top_k)
        detected = list(df_day_top_k[df_day_top_k.TX_FRAUD == 1].CUSTOMER_ID)
        card_precision_top_k_per_day_list.append(len(detected) / top_k)
        list_detected_compromised_cards.extend(detected)
    mean = float(np.array(card_precision_top_k_per_day_list).mean())
    return nb_compromised_cards_per_day, card_precision_top_k_per_day_list, mean
