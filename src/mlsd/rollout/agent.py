"""The rollout agent of one serving process: follows the registry's rollout state, installs
the routing layers, and runs the canary controllers this process holds the lease of.

Every `mlsd serve` process sharing a registry database runs one. A thread polls the rollout
change counter (one integer read, every `poll_s`, 0.2 s by default); when it moved, the agent
reconciles: a new running rollout gets its challenger loaded (pinned) and its layer
installed at the stored share; a changed share is applied; an ended rollout's layer is
removed — after a promotion, only once the host follows the moved alias, so no request goes
back to the old version in between. Sticky buckets hash the rollout id and the customer, so
every process routes a customer to the same arm.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from mlsd.errors import MlsdError
from mlsd.inference.endpoint import Endpoint, VersionEndpoint
from mlsd.inference.host import ModelHost
from mlsd.inference.pipeline import ScoringPipeline
from mlsd.inference.routing import Variant
from mlsd.priority import in_background
from mlsd.registry.models import utcnow
from mlsd.rollout.analysis import CanaryAnalysis, LabelSource
from mlsd.rollout.controller import CanaryController, Decision
from mlsd.rollout.layers import BlueGreenLayer, ShadowLayer, SplitLayer, layer_for
from mlsd.rollout.manage import Rollout, RolloutManager, parsed
from mlsd.rollout.shadow_watch import ShadowWatch

log = logging.getLogger(__name__)

#: The endpoint that scores a challenger version: (model name, version) -> endpoint.
ChallengerEndpoint = Callable[[str, int], Endpoint]
Layer = ShadowLayer | SplitLayer | BlueGreenLayer


@dataclass
class Installed:
    """One rollout carried out in this process."""

    rollout: Rollout
    layer: Layer
    analysis: CanaryAnalysis | None = None
    controller: CanaryController | None = None
    #: A shadow's dangerous-divergence watch, checked every `interval_s` (monotonic time).
    watch: ShadowWatch | None = None
    next_watch: float = 0.0


class RolloutAgent:
    """Keeps this process's routing layers equal to the registry's running rollouts."""

    def __init__(
        self,
        manager: RolloutManager,
        pipeline: ScoringPipeline,
        host: ModelHost,
        *,
        endpoint_for: ChallengerEndpoint | None = None,
        labels: LabelSource | None = None,
        poll_s: float = 0.2,
        control: bool = True,
        holder: str | None = None,
    ) -> None:
        self.manager = manager
        self.pipeline = pipeline
        self.host = host
        #: How a challenger version is served (tests and the lab swap in bad ones).
        self.endpoint_for: ChallengerEndpoint = endpoint_for or self._pinned
        self.labels = labels
        self.poll_s = poll_s
        self.control = control
        self.holder = holder or f"serve-{uuid.uuid4().hex[:12]}"
        self.installed: dict[str, Installed] = {}
        self.errors: dict[str, str] = {}  # rollout id -> why this process cannot carry it out
        self._clock = -1
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- following the registry ---------------------------------------------------------------

    def sync(self, *, force: bool = False) -> bool:
        """Reconcile if the rollout counter moved (or `force`); True if it did."""
        with self._lock:  # a caller returns only once the state it saw is applied
            clock = self.manager.store.rollout_clock()
            if clock == self._clock and not force:
                return False
            self._clock = clock
            self._reconcile()
        return True

    def _reconcile(self) -> None:
        served = set(self.pipeline.endpoint_names())
        running = {
            r.id: r for r in self.manager.store.list_rollouts(active_only=True)
            if r.endpoint in served
        }  # fmt: skip
        for rid in [r for r in self.installed if r not in running]:
            self._finish(rid)
        for rid, record in running.items():
            here = self.installed.get(rid)
            if here is None:
                self._install(parsed(record))
                continue
            here.rollout = Rollout(record, here.rollout.spec)
            if here.controller is not None:
                here.controller.rollout = here.rollout
            if isinstance(here.layer, SplitLayer) and here.layer.share_percent != record.share:
                here.layer.set_share(record.share)
            self._gauge(here.rollout, record.share)

    def _install(self, rollout: Rollout) -> None:
        spec = rollout.spec
        try:
            endpoint = self.endpoint_for(spec.endpoint, spec.challenger)
        except MlsdError as exc:
            if self.errors.get(spec.id) != exc.message:
                log.error("rollout %s: cannot serve the challenger: %s", spec.id, exc.message)
            self.errors[spec.id] = exc.message
            return
        self.errors.pop(spec.id, None)
        layer = layer_for(spec, Variant(f"v{spec.challenger}", endpoint))
        if isinstance(layer, SplitLayer):
            layer.set_share(rollout.record.share)
        here = Installed(rollout, layer)
        if spec.kind == "canary" and isinstance(layer, SplitLayer):
            here.analysis = CanaryAnalysis(spec.id, self.labels)
            self.pipeline.add_observer(here.analysis)
            self.pipeline.add_failure_observer(here.analysis)
            here.controller = CanaryController(self.manager, rollout, layer, here.analysis)
        if spec.kind == "shadow":
            here.watch = ShadowWatch(spec.id)
            here.next_watch = time.monotonic() + spec.interval_s
            self.pipeline.add_observer(here.watch)
        self.pipeline.install(layer)
        self.installed[spec.id] = here
        self._gauge(rollout, rollout.record.share)
        log.info("rollout %s installed (%s, share %s %%)", spec.id, spec.kind, rollout.record.share)

    def _finish(self, rollout_id: str) -> None:
        here = self.installed.pop(rollout_id)
        record = self.manager.store.get_rollout(rollout_id)
        if isinstance(here.layer, SplitLayer):
            here.layer.set_share(0.0)  # at once, before anything slower
        if record.state == "promoted":
            self._follow_alias(here.rollout)
        self.pipeline.uninstall(here.layer.name)
        self._gauge(here.rollout, 0.0)
        if here.analysis is not None:
            self.pipeline.remove_observer(here.analysis)
            self.pipeline.remove_failure_observer(here.analysis)
        if here.watch is not None:
            self.pipeline.remove_observer(here.watch)
        log.info("rollout %s ended here (%s)", rollout_id, record.state)

    def _gauge(self, rollout: Rollout, share: float) -> None:
        metrics = self.pipeline.metrics
        metrics.rollout_share.labels(rollout.record.id, rollout.spec.kind).set(share)

    def _follow_alias(self, rollout: Rollout) -> None:
        """Switch the host to the promoted alias now (the version is loaded: a dict swap)."""
        spec = rollout.spec
        try:
            self.host.refresh()
        except MlsdError as exc:
            log.error("rollout %s: the host did not follow the promotion: %s", spec.id, exc.message)

    def _pinned(self, name: str, version: int) -> Endpoint:
        self.host.load(f"{name}/{version}")
        return VersionEndpoint(self.host.get(name, version=version), self.pipeline.metrics)

    # -- controlling --------------------------------------------------------------------------

    def controller(self, rollout_id: str) -> CanaryController:
        """The controller of a canary installed here (KeyError otherwise)."""
        here = self.installed[rollout_id]
        if here.controller is None:
            raise KeyError(rollout_id)
        return here.controller

    def check(self, rollout_id: str) -> Decision:
        """Run one check of a canary now (holding its lease), then apply what it decided."""
        with self._lock:  # one check at a time, whoever calls (the thread, a test, the API)
            controller = self.controller(rollout_id)
            if not self._lease(controller):
                return "wait"
            decision = controller.check()
            if decision not in ("wait", "gone"):
                self.pipeline.metrics.rollout_decisions.labels(rollout_id, decision).inc()
            self.sync(force=True)
            return decision

    def tick(self) -> None:
        """Check every canary and shadow whose interval is over, if this process holds its
        lease."""
        if not self.control:
            return
        now = time.monotonic()
        for rid, here in list(self.installed.items()):
            try:
                if here.controller is not None and here.controller.due:
                    self.check(rid)
                elif here.watch is not None and now >= here.next_watch:
                    here.next_watch = now + here.rollout.spec.interval_s
                    self.watch_shadow(rid)
            except MlsdError as exc:
                log.warning("rollout %s: check failed: %s", rid, exc.message)

    def watch_shadow(self, rollout_id: str) -> Literal["wait", "abort"]:
        """Apply the dangerous-divergence rule to a shadow's pairs now; on an alert, abort
        the rollout (holding its lease, so one process decides)."""
        with self._lock:
            here = self.installed[rollout_id]
            if here.watch is None:
                raise KeyError(rollout_id)
            alert = here.watch.check()
            if alert is None:
                return "wait"
            now = utcnow()
            hold = timedelta(seconds=max(3.0 * here.rollout.spec.interval_s, 2.0))
            store = self.manager.store
            if not store.take_lease(rollout_id, self.holder, now=now, until=now + hold):
                return "wait"
            reason = (
                f"dangerous divergence ({alert.event}): the challenger approved "
                f"{alert.approved}/{alert.blocks} of the champion's blocked cards after "
                f"{alert.requests} pairs (limit {alert.max_rate:.0%}, p = {alert.p_value:.2g})"
            )
            self.manager.abort(rollout_id, actor=self.holder, reason=reason)
            self.pipeline.metrics.rollout_decisions.labels(rollout_id, "abort").inc()
            self.sync(force=True)
            return "abort"

    def _lease(self, controller: CanaryController) -> bool:
        now = utcnow()
        hold = timedelta(seconds=max(3.0 * controller.rollout.spec.interval_s, 2.0))
        return self.manager.store.take_lease(
            controller.rollout.record.id, self.holder, now=now, until=now + hold
        )

    # -- the thread ---------------------------------------------------------------------------

    def start(self) -> None:
        """Follow the registry (and control canaries) in a thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self.sync(force=True)
        self._thread = threading.Thread(
            target=in_background(self._run), name="mlsd-rollouts", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        last_error = ""
        while not self._stop.wait(self.poll_s):
            try:
                self.sync()
                self.tick()
                last_error = ""
            except Exception as exc:
                message = exc.message if isinstance(exc, MlsdError) else repr(exc)
                if message != last_error:
                    log.warning(
                        "rollout agent: %s", message, exc_info=not isinstance(exc, MlsdError)
                    )
                last_error = message
