"""Every experiment of the lab, by name (imported only when run: each pulls heavy libraries)."""

from __future__ import annotations

import importlib

from mlsd.errors import NotFoundError
from mlsd.lab.experiment import Experiment

#: name -> "module:attribute" of its `Experiment`.
EXPERIMENTS: dict[str, str] = {
    "ab-test": "mlsd.lab.ab_test:EXPERIMENT",
    "batch-size": "mlsd.lab.batch_size:EXPERIMENT",
    "canary": "mlsd.lab.canary:EXPERIMENT",
    "compression": "mlsd.lab.compression:EXPERIMENT",
    "latency-budget": "mlsd.lab.latency_budget:EXPERIMENT",
    "quantization": "mlsd.lab.quantization:EXPERIMENT",
    "shadow-divergence": "mlsd.lab.shadow_divergence:EXPERIMENT",
    "caching": "mlsd.lab.caching:EXPERIMENT",
    "embeddings": "mlsd.lab.embeddings:EXPERIMENT",
    "freshness": "mlsd.lab.freshness:EXPERIMENT",
    "skew": "mlsd.lab.skew:EXPERIMENT",
    "silent-degradation": "mlsd.lab.silent_degradation:EXPERIMENT",
}


def experiment_named(name: str) -> Experiment:
    """The experiment called `name`, or a NotFoundError listing the ones there are."""
    target = EXPERIMENTS.get(name)
    if target is None:
        raise NotFoundError(
            f"no lab experiment {name!r}; there are: {', '.join(sorted(EXPERIMENTS))}",
            field="name",
        )
    module, _, attribute = target.partition(":")
    found: Experiment = getattr(importlib.import_module(module), attribute)
    return found
