"""The feature store's step of `mlsd demo`: apply, build, materialize, check parity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlsd.features.store import FeatureStore
from mlsd.settings import Settings


def demo_step(dataset_dir: Path, settings: Settings | None = None) -> dict[str, Any]:
    """Build the handbook features of a dataset, materialize them and check parity.

    Parity checks the online store serving reads (live), so a store holding another
    dataset's rows cannot pass; `rebuilt` says why materialization started afresh.
    """
    store = FeatureStore.open(settings)
    try:
        versions = store.apply()
        build = store.build(Path(dataset_dir))
        mat = store.materialize()
        parity = store.live_parity(sample=100)
        return {
            "versions": versions,
            "offline_rows": build.rows,
            "build_seconds": round(build.seconds, 2),
            "online_rows_written": mat.rows_written,
            "materialize_seconds": round(mat.seconds, 2),
            "watermark": mat.end.isoformat(),
            "parity_compared": parity.compared,
            "parity_agreement": parity.agreement,
            "parity_store": parity.store,
            "parity_problems": parity.problems,
            "rebuilt": mat.rebuilt,
        }
    finally:
        store.close()
