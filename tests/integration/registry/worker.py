"""A separate process that registers versions, for the kill and concurrency tests.

    python worker.py HOME DB_URL COUNT GO_FILE [hang]

Prints READY once set up, waits for GO_FILE to exist (so several workers
start together), then registers COUNT small versions, printing each version
number (no LightGBM import, so workers start fast). With `hang`, the last
registration stops inside its metadata transaction (after the version row is
written, before commit), prints INSIDE and sleeps until killed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any


def main() -> None:
    home, db_url, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    hang = sys.argv[5:] == ["hang"]
    from mlsd.registry import Registry, postgres, sqlite
    from mlsd.registry.environment import current_environment
    from mlsd.registry.testing import sample_lineage, sample_signature
    from mlsd.settings import Settings

    registry = Registry.open(Settings(home=Path(home), registry_db=db_url))
    current_environment()  # warm the per-process cache so workers really overlap
    print("READY", flush=True)
    while not go.exists():
        time.sleep(0.001)
    for i in range(count):
        if hang and i == count - 1:
            for tx_class in (sqlite._SqliteTx, postgres._PgTx):
                _hang_on_tags(tx_class)
        mv = registry.register(
            "fraud",
            {"model.lgb.txt": f"model of process {os.getpid()}, number {i}".encode()},
            flavor="lightgbm",
            signature=sample_signature(),
            lineage=sample_lineage(),
            params={"i": i},
            metrics={"auc_roc": 0.5},
            tags={"worker": str(i)},
        )
        print(mv.version, flush=True)


def _hang_on_tags(tx_class: Any) -> None:
    original = tx_class.run

    def run(self: Any, sql: str, params: Any = ()) -> Any:
        result = original(self, sql, params)
        if sql.startswith("INSERT INTO version_tags"):
            print("INSIDE", flush=True)
            time.sleep(600)
        return result

    tx_class.run = run


if __name__ == "__main__":
    main()
