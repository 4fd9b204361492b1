"""Notices an online store that lost its data, so scoring says so instead of quietly
answering on fill values.

A Redis restarted empty (no persistence, a failover to an empty replica, a FLUSHALL) still
answers every lookup, with every stored feature missing. The materialization watermark of
each served view lives in the same store, so it is gone too: a view whose watermark was
seen and has vanished means the store lost its data. Checked at most once per
`interval_s` on the scoring path (one small read), so it costs nothing per request; with
`submit` (a network store, read from the event loop) the read runs on another thread and
`lost()` answers from the last read, so a stalled store never blocks scoring here either.
The first read is made when the probe is built (at the service's start), so what the
store held then is known before any request.

Both changes are alert events: one WARNING record each, whose message starts with the
event's stable name (`online_store_lost`, `online_store_restored`) and which carries it
as `record.event` (with `record.alert = True` and `record.views`), for a log shipper's
alert rule; the gauge `mlsd_online_store_empty` says the same to Prometheus.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from mlsd.errors import MlsdError

log = logging.getLogger(__name__)

#: The alert events' names: stable, for alert rules on the log.
STORE_LOST = "online_store_lost"
STORE_RESTORED = "online_store_restored"


class StoreProbe:
    """`lost()` is True while a view's watermark seen earlier is missing from the store.

    >>> marks = {"customer_spending": 5}
    >>> probe = StoreProbe(lambda: dict(marks), interval_s=0.0)
    >>> probe.lost()
    False
    >>> marks["customer_spending"] = None  # the store came back empty
    >>> probe.lost(), probe.views_lost
    (True, ['customer_spending'])
    >>> marks["customer_spending"] = 9  # `mlsd features materialize` repaired it
    >>> probe.lost()
    False
    """

    def __init__(
        self,
        watermarks: Callable[[], Mapping[str, int | None]],
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        submit: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self._watermarks = watermarks
        self.interval_s = interval_s
        self._submit = submit
        self._checking = False
        self._clock = clock
        self._next = 0.0
        self._seen: set[str] = set()
        self.views_lost: list[str] = []
        # the watermarks as they are at start, read here, off the scoring path: with only a
        # background first read, a store emptied before that read ran would never have been
        # seen full, and so never be reported lost
        self._check()

    def lost(self) -> bool:
        """Whether the store lost its data (probed again when `interval_s` has passed)."""
        now = self._clock()
        if now < self._next:
            return bool(self.views_lost)
        self._next = now + self.interval_s
        if self._submit is None:
            self._check()
        elif not self._checking:  # one read in flight at most
            self._checking = True
            self._submit(self._check_in_background)
        return bool(self.views_lost)

    def _check_in_background(self) -> None:
        try:
            self._check()
        finally:
            self._checking = False

    def _check(self) -> None:
        try:
            marks = self._watermarks()
        except MlsdError:  # the store is down: the breaker's business, not this probe's
            return
        present = {view for view, mark in marks.items() if mark is not None}
        gone = sorted(self._seen - present)
        if gone and not self.views_lost:
            log.warning(
                "%s: the online store lost its data (no watermark for %s): requests are "
                "scored degraded until `mlsd features materialize` refills it",
                STORE_LOST, ", ".join(gone),
                extra={"event": STORE_LOST, "alert": True, "views": gone},
            )  # fmt: skip
        elif self.views_lost and not gone:
            log.warning(
                "%s: the online store holds its data again: %s",
                STORE_RESTORED, ", ".join(self.views_lost),
                extra={"event": STORE_RESTORED, "alert": True, "views": list(self.views_lost)},
            )  # fmt: skip
        self.views_lost = gone
        self._seen |= present
