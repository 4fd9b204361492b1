"""Feature rows for a model signature: stored features from the online store, request-time
features from the transaction itself.

One online-store round trip per request (shared with concurrent requests by a coalescer),
request-time features computed in process. When the online store fails or its circuit breaker
is open, rows are built on request-time features alone and flagged degraded (or refused with
503 if so configured). Missing or expired stored values get what training filled them with.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from mlsd.data import schema
from mlsd.data.transaction import Transaction
from mlsd.errors import UnavailableError
from mlsd.features import MISSING_VALUE
from mlsd.features.vectors import to_us
from mlsd.inference.breaker import CircuitBreaker
from mlsd.inference.coalescer import Coalescer
from mlsd.inference.metrics import ServingMetrics
from mlsd.inference.offload import Offloader
from mlsd.inference.provided import ProvidedFeatures
from mlsd.inference.request_features import REQUEST_FEATURES
from mlsd.inference.store_probe import StoreProbe

#: (rows (n, k) float32 in signature order, a status per feature per row, degraded, the
#: newest event time (µs) of each row's stored features: None where (or when) not known)
Built = tuple[np.ndarray, list[dict[str, str]], bool, list[int | None] | None]
#: One request's stored features: (row, status per feature, newest event µs or None)
_Row = tuple[np.ndarray, dict[str, str], int | None]


class FeatureSource(Protocol):
    """What scoring needs from the feature store (`mlsd.features` store has it)."""

    def online_vectors(self, requests: Sequence[Mapping[str, Any]], features: Sequence[str]) -> Any:
        """`.values` (n, k) float32 (NaN where missing), `.status` [{feature: status}] and,
        optionally, `.newest_event_us` [µs per row] (the cache's freshness bound reads it)."""
        ...


class _Layout:
    """Where each feature of a signature comes from, worked out once per signature."""

    def __init__(self, names: tuple[str, ...], provided: Sequence[ProvidedFeatures] = ()) -> None:
        self.names = names
        #: (provider, output columns, its columns) for each provider the signature uses
        self.provided: list[tuple[ProvidedFeatures, list[int], list[int]]] = []
        by_provider: set[str] = set()
        for provider in provided:
            mine = {f: i for i, f in enumerate(provider.features)}
            outs = [j for j, n in enumerate(names) if n in mine]
            if outs:
                self.provided.append((provider, outs, [mine[names[j]] for j in outs]))
                by_provider.update(names[j] for j in outs)
        local = set(REQUEST_FEATURES) | by_provider
        self.stored = [n for n in names if n not in local]
        self.stored_columns = [j for j, n in enumerate(names) if n not in local]
        self.request_columns = [j for j, n in enumerate(names) if n in REQUEST_FEATURES]
        self.request = [names[j] for j in self.request_columns]
        self.request_fns = [REQUEST_FEATURES[n] for n in self.request]
        self.request_status = dict.fromkeys(self.request, "request")
        self.missing = {**self.request_status, **dict.fromkeys(self.stored, "missing")}
        self.unavailable = {**self.request_status, **dict.fromkeys(self.stored, "unavailable")}

    def fill(self, values: np.ndarray, txs: Sequence[Transaction], found: np.ndarray) -> None:
        """Write stored (`found`, in `stored` order) and request-time features into `values`."""
        if self.stored:
            values[:, self.stored_columns] = found
        if self.request:
            values[:, self.request_columns] = [[fn(tx) for fn in self.request_fns] for tx in txs]

    def one_row(self, tx: Transaction, found: np.ndarray) -> np.ndarray:
        """`fill` for a single transaction, as (1, k) float32: the same values, bit for bit."""
        row = [0.0] * len(self.names)
        if self.stored:
            for j, value in zip(self.stored_columns, found[0].tolist(), strict=True):
                row[j] = value
        for j, fn in zip(self.request_columns, self.request_fns, strict=True):
            row[j] = fn(tx)
        return np.array([row], dtype=np.float32)


class FeatureAssembler:
    """Builds the feature rows of any model signature from raw transactions.

    One per pipeline, shared by every variant: a challenger with other features gets its
    own layout (worked out once per signature) and its own coalescer, the same store.
    """

    def __init__(
        self,
        features: FeatureSource | None,
        metrics: ServingMetrics,
        *,
        breaker: CircuitBreaker | None = None,
        fail_when_degraded: bool = False,
        probe: StoreProbe | None = None,
        provided: Sequence[ProvidedFeatures] = (),
        offload: Offloader | None = None,
    ) -> None:
        self.features = features
        #: Request-time features of their own components (embedding similarity, ...).
        self.provided = tuple(provided)
        #: Runs the store's calls of the event loop's requests off the loop, with a deadline
        #: (None: called on the loop, for an embedded store that answers in microseconds).
        self.offload = offload
        self.metrics = metrics
        self.breaker = breaker
        self.fail_when_degraded = fail_when_degraded
        #: Tells when the store answers but lost its data (every stored feature missing).
        self.probe = probe
        self._layouts: dict[tuple[str, ...], _Layout] = {}
        self._coalescers: dict[tuple[str, ...], Coalescer[dict[str, Any], _Row]] = {}
        self._lookup_ok = metrics.feature_latency.labels("ok")
        self._breaker_was_open = False
        self._store_was_empty = False

    def _fetch(self, requests: list[dict[str, Any]], stored: list[str]) -> list[_Row]:
        """One store round trip (through the breaker): (row, status, newest event) per request."""
        if self.features is None:  # pragma: no cover - callers check first
            raise UnavailableError("no feature store")
        started = time.perf_counter()
        if self.breaker is not None:
            found = self.breaker.call(self.features.online_vectors, requests, stored)
        else:
            found = self.features.online_vectors(requests, stored)
        return self._rows(found, len(requests), stored, started)

    async def _fetch_off_loop(
        self, requests: list[dict[str, Any]], stored: list[str]
    ) -> list[_Row]:
        """`_fetch` with the store call on the offloader's threads, within its deadline."""
        if self.features is None or self.offload is None:  # pragma: no cover - callers check
            raise UnavailableError("no feature store")
        started = time.perf_counter()
        found = await self.offload.call(self.features.online_vectors, requests, stored)
        return self._rows(found, len(requests), stored, started)

    def _rows(self, found: Any, n: int, stored: list[str], started: float) -> list[_Row]:
        self._lookup_ok.observe(time.perf_counter() - started)  # once per round trip
        values = np.asarray(found.values, dtype=np.float32).reshape(n, len(stored))
        # Missing or expired stored values: what training filled them with, never NaN.
        # (nan_to_num costs ~20 µs on one row, the finiteness check ~2 µs: the common case.)
        if not np.isfinite(values).all():
            values = np.nan_to_num(values, nan=MISSING_VALUE)
        events = getattr(found, "newest_event_us", None)
        if events is None:
            events = [None] * n
        return list(zip(values, found.status, events, strict=True))

    @staticmethod
    def _requests(txs: Sequence[Transaction]) -> list[dict[str, Any]]:
        return [
            {
                schema.CUSTOMER_ID: tx.customer_id,
                schema.TERMINAL_ID: tx.terminal_id,
                schema.TX_DATETIME: tx.timestamp,
            }
            for tx in txs
        ]

    def _lookup(self, txs: Sequence[Transaction], stored: list[str]) -> Built:
        """Stored features now, in the calling thread (async jobs)."""
        n = len(txs)
        if not stored or self.features is None:
            return self._missing(n, stored), [], False, None
        started = time.perf_counter()
        try:
            rows = self._fetch(self._requests(txs), stored)
        except UnavailableError:
            return self._degrade(n, stored, started)
        return self._found(rows)

    async def _lookup_async(self, txs: Sequence[Transaction], stored: list[str]) -> Built:
        """Stored features, in one store call shared with concurrent requests."""
        n = len(txs)
        if not stored or self.features is None:
            return self._missing(n, stored), [], False, None
        key = tuple(stored)
        coalescer = self._coalescers.get(key)
        if coalescer is None:
            if self.offload is not None:  # a network store: never block the event loop
                coalescer = Coalescer(lambda reqs: self._fetch_off_loop(reqs, stored))
            else:
                coalescer = Coalescer(lambda reqs: self._fetch(reqs, stored))
            self._coalescers[key] = coalescer
        started = time.perf_counter()
        try:
            rows = await coalescer.submit(self._requests(txs))
        except UnavailableError:
            return self._degrade(n, stored, started)
        return self._found(rows)

    def _found(self, rows: list[_Row]) -> Built:
        self._breaker_gauge(failed=False)
        values = np.stack([row[0] for row in rows]) if len(rows) > 1 else rows[0][0][None, :]
        degraded = self.probe is not None and self.probe.lost()
        if degraded != self._store_was_empty:  # the gauge moves with the state, not per request
            self._store_was_empty = degraded
            self.metrics.store_empty.set(1 if degraded else 0)
        if degraded:
            if self.fail_when_degraded:
                raise UnavailableError("the online feature store lost its data", field="features")
            self.metrics.degraded.labels("online_store_empty").inc()
        # the events are read only under the freshness bound: no check here, on the hot path
        return values, [row[1] for row in rows], degraded, [row[2] for row in rows]

    def _degrade(self, n: int, stored: list[str], started: float) -> Built:
        self.metrics.feature_latency.labels("unavailable").observe(time.perf_counter() - started)
        self._breaker_gauge(failed=True)
        if self.fail_when_degraded:
            raise UnavailableError("the online feature store is unavailable", field="features")
        self.metrics.degraded.labels("online_store").inc()
        return self._missing(n, stored), [], True, None

    @staticmethod
    def _missing(n: int, stored: list[str]) -> np.ndarray:
        return np.full((n, len(stored)), MISSING_VALUE, dtype=np.float32)

    def _breaker_gauge(self, failed: bool) -> None:
        if self.breaker is None or not (failed or self._breaker_was_open):
            return  # closed and staying closed: nothing to update (the common case)
        is_open = self.breaker.state.value != "closed"
        self._breaker_was_open = is_open
        self.metrics.breaker_open.set(1 if is_open else 0)

    def _layout(self, names: tuple[str, ...]) -> _Layout:
        layout = self._layouts.get(names)
        if layout is None:
            layout = _Layout(names, self.provided)
            self._layouts[names] = layout
        return layout

    def build(self, txs: Sequence[Transaction], names: Sequence[str]) -> Built:
        """The (n, k) feature matrix in `names` order, a status per feature, degraded flag."""
        layout = self._layout(tuple(names))
        return self._assemble(txs, layout, *self._lookup(txs, layout.stored))

    async def build_async(self, txs: Sequence[Transaction], names: Sequence[str]) -> Built:
        """`build`, the store call shared with concurrent requests."""
        layout = self._layout(tuple(names))
        return self._assemble(txs, layout, *await self._lookup_async(txs, layout.stored))

    def _assemble(
        self,
        txs: Sequence[Transaction],
        layout: _Layout,
        found: np.ndarray,
        found_status: list[dict[str, str]],
        degraded: bool,
        events: list[int | None] | None,
    ) -> Built:
        if len(txs) == 1:  # the common request: one plain row, no numpy fancy indexing
            values = layout.one_row(txs[0], found)
        else:
            values = np.empty((len(txs), len(layout.names)), dtype=np.float32)
            layout.fill(values, txs, found)
        if degraded or not found_status:
            template = layout.unavailable if degraded else layout.missing
            statuses = [template] * len(txs)
        else:  # rows in the same states share their status dict: merged once each
            base = layout.request_status
            merged: dict[int, dict[str, str]] = {}
            statuses = []
            for row in found_status:
                status = merged.get(id(row))
                if status is None:
                    status = merged[id(row)] = {**base, **row}
                statuses.append(status)
        if layout.provided:
            statuses = self._provide(txs, layout, values, statuses, degraded)
        return values, statuses, degraded, events

    @staticmethod
    def _provide(
        txs: Sequence[Transaction],
        layout: _Layout,
        values: np.ndarray,
        statuses: list[dict[str, str]],
        degraded: bool,
    ) -> list[dict[str, str]]:
        """Fill the providers' columns in place; each row's status with theirs merged in.

        With the online store down (degraded) or the provider's own store unavailable, its
        features are `unavailable` and get what training filled missing features with.
        """
        requests = [(tx.customer_id, tx.terminal_id, to_us(tx.timestamp)) for tx in txs]
        merged = [dict(st) for st in statuses]
        for provider, outs, cols in layout.provided:
            names = [provider.features[c] for c in cols]
            try:
                if degraded:
                    raise UnavailableError("the online feature store is unavailable")
                got, status = provider.values(requests)
            except UnavailableError:
                values[:, outs] = MISSING_VALUE
                for row in merged:
                    row.update(dict.fromkeys(names, "unavailable"))
                continue
            values[:, outs] = np.asarray(got, dtype=np.float32)[:, cols]
            for row, st in zip(merged, status, strict=True):
                row.update((n, st[n]) for n in names)
        return merged
