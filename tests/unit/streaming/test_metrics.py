"""`observe_many` counts as one `observe` per value does."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from mlsd.streaming.metrics import EVENT_LATENCY_BUCKETS, observe_many


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for m in registry.collect()
        for s in m.samples
        if not s.name.endswith("_created")
    }


def test_observe_many_is_observe_per_value() -> None:
    values = np.random.default_rng(2).exponential(2.0, 5000)
    values[:10] = EVENT_LATENCY_BUCKETS[:10]  # on a bound: counted in it (le)
    one, many = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("lat", "x", ["p"], registry=one, buckets=EVENT_LATENCY_BUCKETS)
    h2 = Histogram("lat", "x", ["p"], registry=many, buckets=EVENT_LATENCY_BUCKETS)
    for v in values.tolist():
        h1.labels("0").observe(v)
    observe_many(h2.labels("0"), values)
    a, b = _samples(one), _samples(many)
    assert a.keys() == b.keys()
    for key in a:
        assert np.isclose(a[key], b[key], rtol=1e-12), key
