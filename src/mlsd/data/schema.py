"""Column names and folder layout of the simulated data, shared by every package.

A dataset folder holds:

- `transactions/YYYY-MM-DD.parquet`: one file per day, columns `TX_COLUMNS`;
- `customers.parquet`, `terminals.parquet`: the profile tables;
- `manifest.json`: the configuration, seed, row counts and a content hash.
"""

from __future__ import annotations

from typing import Final

TRANSACTION_ID: Final = "TRANSACTION_ID"  # int64, unique, increasing with time
TX_DATETIME: Final = "TX_DATETIME"  # timestamp[us, tz=UTC]
CUSTOMER_ID: Final = "CUSTOMER_ID"  # int64
TERMINAL_ID: Final = "TERMINAL_ID"  # int64
TX_AMOUNT: Final = "TX_AMOUNT"  # float64, >= 0, rounded to cents
TX_TIME_SECONDS: Final = "TX_TIME_SECONDS"  # int64, seconds since the start date
TX_TIME_DAYS: Final = "TX_TIME_DAYS"  # int64, day index since the start date
TX_FRAUD: Final = "TX_FRAUD"  # int8, 0 or 1
TX_FRAUD_SCENARIO: Final = "TX_FRAUD_SCENARIO"  # int8, 0 genuine, 1..3 handbook, 4+ injected
LABEL_AVAILABLE_AT: Final = "LABEL_AVAILABLE_AT"  # timestamp[us, tz=UTC], when the label is known
INJECTED: Final = "INJECTED"  # string, name of the injected scenario event, "" when none

TX_COLUMNS: Final = (
    TRANSACTION_ID,
    TX_DATETIME,
    CUSTOMER_ID,
    TERMINAL_ID,
    TX_AMOUNT,
    TX_TIME_SECONDS,
    TX_TIME_DAYS,
    TX_FRAUD,
    TX_FRAUD_SCENARIO,
    LABEL_AVAILABLE_AT,
    INJECTED,
)

# Customer segments (customers.parquet; `mlsd.data.segments`): small closed sets of strings.
REGION: Final = "REGION"  # string, the grid quadrant the customer lives in
AGE_BAND: Final = "AGE_BAND"  # string, drawn from the simulator's own stream

TRANSACTIONS_DIR: Final = "transactions"
CUSTOMERS_FILE: Final = "customers.parquet"
TERMINALS_FILE: Final = "terminals.parquet"
MANIFEST_FILE: Final = "manifest.json"
TRANSACTIONS_GLOB: Final = "transactions/*.parquet"
