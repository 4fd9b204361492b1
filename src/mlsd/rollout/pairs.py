"""Champion/shadow pairs from the prediction log, with the segments they are analysed by.

The shadow layer mirrors a request to the challenger after the champion answered; the log
observer writes one record per row for each, with the same row id (`request_id`) and the
variant naming the role: `{rollout}:shadow` for the shadow, anything else for the row that
answered. Joining the two on the row id gives one pair per mirrored row: both scores, both
decisions, and the feature values the champion was served (the shadow reads its own, but
the segment of a request is what production saw).

Segments, from the served feature values (so any log can be cut the same way, with no
other table):

- amount band: the transaction amount (`TX_AMOUNT`) in bands around the handbook's 220 €
  fraud rule;
- customer: `new` when the customer had no other transaction in the 30 days before
  (`CUSTOMER_ID_NB_TX_30DAY_WINDOW` <= 1, or missing), else `known`; when the model does
  not serve that feature, `new` is the customer's first row in the analysed log window;
- terminal risk band: the terminal's fraud rate over its last 7 known days
  (`TERMINAL_ID_RISK_7DAY_WINDOW`): `none` (0), `low` (< 0.2) or `high`.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from mlsd.errors import NotFoundError, ValidationError

SHADOW_SUFFIX: Final = ":shadow"
AMOUNT: Final = "TX_AMOUNT"
CUSTOMER_COUNT: Final = "CUSTOMER_ID_NB_TX_30DAY_WINDOW"
TERMINAL_RISK: Final = "TERMINAL_ID_RISK_7DAY_WINDOW"
AMOUNT_EDGES: Final = (20.0, 100.0, 220.0)
AMOUNT_BANDS: Final = ("<20 €", "20-100 €", "100-220 €", ">=220 €")
RISK_EDGES: Final = (0.0, 0.2)
RISK_BANDS: Final = ("none", "low", "high")
#: The segment columns of a pairs frame, in the order reports show them.
SEGMENTS: Final = ("amount_band", "customer", "terminal_risk")
PAIR_COLUMNS: Final = (
    "request_id", "ts", "rollout", "transaction_id", "customer_id", "terminal_id",
    "champion_version", "challenger_version", "champion_score", "challenger_score",
    "champion_decision", "challenger_decision", "amount", *SEGMENTS,
)  # fmt: skip


def shadow_rollouts(frame: pd.DataFrame) -> list[str]:
    """The rollout ids that have shadow records in a log read."""
    if frame.empty:
        return []
    variants = frame["variant"].astype(str)
    shadows = variants[variants.str.endswith(SHADOW_SUFFIX)].unique()
    return sorted(v[: -len(SHADOW_SUFFIX)] for v in shadows)


def _feature(features: pd.Series, name: str) -> np.ndarray:
    return np.array([_get(f, name) for f in features], dtype=np.float64)


def _get(features: object, name: str) -> float:
    if isinstance(features, dict):
        value = features.get(name)
        return np.nan if value is None else float(value)
    return np.nan


def pairs(frame: pd.DataFrame, rollout: str | None = None) -> pd.DataFrame:
    """One row per mirrored request of `rollout` (the only shadow rollout in the frame when
    None), oldest first, with the columns `PAIR_COLUMNS`.

    Raises NotFoundError when the frame holds no shadow records (of that rollout), and
    ValidationError when `rollout` is None and several shadow rollouts are logged.
    """
    found = shadow_rollouts(frame)
    if rollout is None:
        if not found:
            raise NotFoundError("no shadow records in the prediction log read", field="rollout")
        if len(found) > 1:
            raise ValidationError(
                f"several shadow rollouts are logged ({', '.join(found)}): name one",
                field="rollout",
            )
        rollout = found[0]
    elif rollout not in found:
        known = ", ".join(found) or "none"
        raise NotFoundError(
            f"no shadow records of rollout {rollout!r} (shadow rollouts logged: {known})",
            field="rollout",
        )
    variants = frame["variant"].astype(str)
    shadow = frame[variants == f"{rollout}{SHADOW_SUFFIX}"]
    primary = frame[~variants.str.endswith(SHADOW_SUFFIX)]
    shadow = shadow.drop_duplicates("request_id", keep="first")
    primary = primary.drop_duplicates("request_id", keep="first")
    joined = primary.merge(shadow, on="request_id", suffixes=("", "_shadow"), how="inner")
    if joined.empty:
        raise NotFoundError(
            f"rollout {rollout!r}: shadow records, but none shares a request id with an "
            "answered one (was the primary's log read in the same window?)",
            field="rollout",
        )
    joined = joined.sort_values("ts", kind="stable").reset_index(drop=True)
    out = pd.DataFrame(
        {
            "request_id": joined["request_id"].astype(str),
            "ts": joined["ts"],
            "rollout": rollout,
            "transaction_id": joined["transaction_id"],
            "customer_id": joined["customer_id"],
            "terminal_id": joined["terminal_id"],
            "champion_version": joined["version"].astype(str),
            "challenger_version": joined["version_shadow"].astype(str),
            "champion_score": joined["score"].astype(np.float64),
            "challenger_score": joined["score_shadow"].astype(np.float64),
            "champion_decision": joined["decision"].astype(str),
            "challenger_decision": joined["decision_shadow"].astype(str),
        }
    )
    add_segments(out, joined["features"])
    return out.loc[:, list(PAIR_COLUMNS)]


def add_segments(out: pd.DataFrame, features: pd.Series) -> None:
    """Add `amount` and the segment columns to `out` from each row's served features."""
    amount = _feature(features, AMOUNT)
    out["amount"] = amount
    band = np.searchsorted(np.array(AMOUNT_EDGES), amount, side="right")
    out["amount_band"] = np.where(np.isnan(amount), "unknown", np.array(AMOUNT_BANDS)[band])
    count = _feature(features, CUSTOMER_COUNT)
    if np.isnan(count).all():  # the model does not serve it: first row in the window
        first = ~out["customer_id"].duplicated(keep="first").to_numpy()
        out["customer"] = np.where(first, "new", "known")
    else:
        out["customer"] = np.where(np.isnan(count) | (count <= 1), "new", "known")
    risk = _feature(features, TERMINAL_RISK)
    level = np.where(risk <= RISK_EDGES[0], 0, np.where(risk < RISK_EDGES[1], 1, 2))
    out["terminal_risk"] = np.where(np.isnan(risk), "unknown", np.array(RISK_BANDS)[level])
