"""The Fraud Detection Handbook's 15 model inputs (section 3.3), defined once as feature views.

A definition file like any user's (`mlsd features apply PATH` reads such files): declared
window aggregations over the dataset's transactions, a derived ratio for the delayed
terminal risk, request-time transforms. Nothing in mlsd treats these views specially.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from mlsd.data import schema
from mlsd.features.aggregations import Aggregation, Derived
from mlsd.features.definitions import Entity, FeatureView
from mlsd.features.sources import TRANSACTIONS
from mlsd.features.transforms import STANDARD

WINDOWS: Final = (1, 7, 30)
LABEL_DELAY_DAYS: Final = 7

CUSTOMER: Final = Entity("customer", schema.CUSTOMER_ID, "a card holder")
TERMINAL: Final = Entity("terminal", schema.TERMINAL_ID, "a point of sale")

REQUEST_FEATURES: Final = ("TX_AMOUNT", "TX_DURING_WEEKEND", "TX_DURING_NIGHT")


def customer_feature_names(windows: tuple[int, ...] = WINDOWS) -> tuple[str, ...]:
    """Count and mean amount per window, in the handbook's order."""
    names: list[str] = []
    for w in windows:
        names += [f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW", f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"]
    return tuple(names)


def terminal_feature_names(windows: tuple[int, ...] = WINDOWS) -> tuple[str, ...]:
    """Count and fraud rate per delayed window, in the handbook's order."""
    names: list[str] = []
    for w in windows:
        names += [f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW", f"TERMINAL_ID_RISK_{w}DAY_WINDOW"]
    return tuple(names)


HANDBOOK_FEATURES: Final = (
    *REQUEST_FEATURES,
    *customer_feature_names(),
    *terminal_feature_names(),
)

REQUEST_VIEW: Final = FeatureView(
    name="transaction_request",
    entity=None,
    kind="request",
    features=REQUEST_FEATURES,
    ttl=timedelta(0),
    description="amount, weekend (weekday >= 5) and night (hour <= 6, UTC) of the transaction",
    transforms=tuple(STANDARD[f] for f in REQUEST_FEATURES),
)


def _customer_aggregations() -> tuple[Aggregation, ...]:
    out: list[Aggregation] = []
    for w, (n, mean) in zip(WINDOWS, _pairs(customer_feature_names()), strict=True):
        out += [
            Aggregation(n, "count", None, timedelta(days=w)),
            Aggregation(mean, "mean", schema.TX_AMOUNT, timedelta(days=w)),
        ]
    return tuple(out)


def _terminal_aggregations() -> tuple[tuple[Aggregation, ...], tuple[Derived, ...]]:
    aggs: list[Aggregation] = []
    risks: list[Derived] = []
    delay = timedelta(days=LABEL_DELAY_DAYS)
    for w, (n, risk) in zip(WINDOWS, _pairs(terminal_feature_names()), strict=True):
        frauds = f"TERMINAL_ID_NB_FRAUD_{w}DAY_WINDOW"
        aggs += [
            Aggregation(n, "count", None, timedelta(days=w), delay),
            Aggregation(frauds, "sum", schema.TX_FRAUD, timedelta(days=w), delay),
        ]
        risks.append(Derived(risk, "ratio", (frauds, n), default=0.0))
    return tuple(aggs), tuple(risks)


def _pairs(names: tuple[str, ...]) -> list[tuple[str, str]]:
    return list(zip(names[::2], names[1::2], strict=True))


_TERMINAL_AGGS, _TERMINAL_RISKS = _terminal_aggregations()

CUSTOMER_VIEW: Final = FeatureView(
    name="customer_spending",
    entity=CUSTOMER,
    kind="window",
    features=customer_feature_names(),
    ttl=timedelta(days=30),
    source=TRANSACTIONS,
    aggregations=_customer_aggregations(),
    description="per customer: transactions and mean amount in (t - n days, t], current included",
)

TERMINAL_VIEW: Final = FeatureView(
    name="terminal_risk",
    entity=TERMINAL,
    kind="window",
    features=terminal_feature_names(),
    ttl=timedelta(days=30),
    source=TRANSACTIONS,
    aggregations=_TERMINAL_AGGS,
    derived=_TERMINAL_RISKS,
    description="per terminal: transactions and fraud rate in (t - 7 - n days, t - 7 days]",
)

HANDBOOK_VIEWS: Final = (REQUEST_VIEW, CUSTOMER_VIEW, TERMINAL_VIEW)
