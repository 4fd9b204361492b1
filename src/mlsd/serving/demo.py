"""The serving step of `mlsd demo`: start the service, replay traffic to it, report figures.

The traffic is a time-ordered frame of transactions (the held-out days of the demo's
world), released in waves of rows that share no customer or terminal with a request
still in flight; `before_wave` runs before each wave is sent, for the caller to push the
wave's feature updates into the online store. With a `speedup`, transactions leave at
their own timestamps, `speedup` times faster than real time; without, as fast as the
service answers.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.errors import MlsdError, UnavailableError, ValidationError
from mlsd.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console

#: The statuses of a stored feature that mean its value was not served.
NOT_SERVED = ("missing", "expired", "future", "unavailable")


@dataclass(frozen=True)
class DemoFigures:
    """What the demo reports about the service after its traffic.

    Latencies are the client's: one HTTP round trip, measured by the sending thread (the
    prediction log holds the server's own time per request). `degraded` counts requests
    that were not served every stored feature fresh: the store was unavailable, or a
    feature was missing, expired or from the future (the counts per status beside it).
    """

    url: str
    seconds: float
    requests: int
    failed: int
    requests_per_s: float
    client_p50_ms: float
    client_p99_ms: float
    flagged_share: float
    cache_hit_rate: float
    all_present: int
    missing: int
    expired: int
    future: int
    unavailable: int
    degraded: int
    model: str
    replayed: int
    replay_total: int
    replayed_until: str | None


def request_bodies(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """`POST /v1/score` bodies of time-ordered transactions (their own ids and times)."""
    times = frame[schema.TX_DATETIME].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return [
        {"transaction_id": t, "customer_id": c, "terminal_id": k, "amount": a, "timestamp": ts}
        for t, c, k, a, ts in zip(
            frame[schema.TRANSACTION_ID].astype("int64").tolist(),
            frame[schema.CUSTOMER_ID].astype("int64").tolist(),
            frame[schema.TERMINAL_ID].astype("int64").tolist(),
            frame[schema.TX_AMOUNT].astype("float64").tolist(),
            times.tolist(),
            strict=True,
        )
    ]


class _Traffic:
    """A driver thread releasing requests in time order; client threads posting them.

    A transaction is released once no earlier transaction of its customer or terminal is
    still waiting for its answer, right after `before_wave` ran for it: so the feature
    rows pushed for it are the newest of its entities when it is scored, and no request
    is ever served a row computed from a later transaction.
    """

    def __init__(
        self,
        url: str,
        frame: pd.DataFrame,
        headers: dict[str, str],
        before_wave: Callable[[int, int], None] | None,
        speedup: float | None,
        max_in_flight: int = 64,
    ) -> None:
        self.url = url
        self.bodies = request_bodies(frame)
        self.customers = frame[schema.CUSTOMER_ID].astype("int64").tolist()
        self.terminals = frame[schema.TERMINAL_ID].astype("int64").tolist()
        epoch = pd.Timestamp(0, tz="UTC")
        self.times_s = (
            (frame[schema.TX_DATETIME].dt.tz_convert("UTC") - epoch).dt.total_seconds().to_numpy()
        )
        self.headers = headers
        self.before_wave = before_wave
        self.speedup = speedup
        self.max_in_flight = max_in_flight
        self.pending: queue.Queue[int] = queue.Queue()
        self.lock = threading.Lock()
        self.schedule = threading.Condition()
        self.busy_customers: dict[int, int] = {}
        self.busy_terminals: dict[int, int] = {}
        self.in_flight = 0
        self.latencies: list[float] = []
        self.flagged = 0
        self.failed = 0
        self.not_served = dict.fromkeys(NOT_SERVED, 0)
        self.all_present = 0
        self.degraded = 0
        self.released = 0
        self.stop = threading.Event()
        self.done = threading.Event()
        self.error: MlsdError | None = None
        self.threads: list[threading.Thread] = []

    def start(self, clients: int) -> None:
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        self.threads.append(threading.Thread(target=self._drive, daemon=True))
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        with self.schedule:
            self.schedule.notify_all()
        for t in self.threads:
            t.join(timeout=10)
        if self.error is not None:
            raise self.error

    def _blocked(self, i: int, customers: set[int], terminals: set[int]) -> bool:
        c, t = self.customers[i], self.terminals[i]
        return (
            self.busy_customers.get(c, 0) > 0
            or self.busy_terminals.get(t, 0) > 0
            or c in customers
            or t in terminals
        )

    def _next_wave(self, lo: int, due: float) -> int:
        """Wait until row `lo` may go; then the end of the run of rows that may go with it."""
        with self.schedule:
            while not self.stop.is_set() and (
                self._blocked(lo, set(), set()) or self.in_flight >= self.max_in_flight
            ):
                self.schedule.wait(0.1)
            if self.stop.is_set():
                return lo
            hi, customers, terminals = lo, set[int](), set[int]()
            while (
                hi < len(self.bodies)
                and self.in_flight + (hi - lo) < self.max_in_flight
                and float(self.times_s[hi]) <= due
                and not self._blocked(hi, customers, terminals)
            ):
                customers.add(self.customers[hi])
                terminals.add(self.terminals[hi])
                hi += 1
            for i in range(lo, hi):
                c, t = self.customers[i], self.terminals[i]
                self.busy_customers[c] = self.busy_customers.get(c, 0) + 1
                self.busy_terminals[t] = self.busy_terminals.get(t, 0) + 1
            self.in_flight += hi - lo
            return hi

    def _answered(self, i: int) -> None:
        with self.schedule:
            self.busy_customers[self.customers[i]] -= 1
            self.busy_terminals[self.terminals[i]] -= 1
            self.in_flight -= 1
            self.schedule.notify()

    def _drive(self) -> None:
        try:
            began = time.monotonic()
            t0 = float(self.times_s[0]) if len(self.times_s) else 0.0
            lo = 0
            while lo < len(self.bodies) and not self.stop.is_set():
                due = float("inf")
                if self.speedup:
                    due = t0 + (time.monotonic() - began) * self.speedup
                    wait = (float(self.times_s[lo]) - due) / self.speedup
                    if wait > 0:
                        if self.stop.wait(wait):
                            break
                        continue
                hi = self._next_wave(lo, due)
                if hi == lo:
                    break
                if self.before_wave is not None:
                    self.before_wave(lo, hi)
                for i in range(lo, hi):
                    self.pending.put(i)
                self.released = lo = hi
        except MlsdError as exc:  # the store refused a write: re-raised by `join`
            self.error = exc
        finally:
            self.done.set()

    def _run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=5.0, headers=self.headers) as http:
            while not (self.done.is_set() and self.pending.empty()):
                try:
                    i = self.pending.get(timeout=0.05)
                except queue.Empty:
                    continue
                try:
                    self._post(http, self.bodies[i])
                finally:
                    self._answered(i)

    def _post(self, http: Any, body: dict[str, Any]) -> None:
        import httpx

        started = time.perf_counter()
        try:
            response = http.post("/v1/score", json=body)
        except httpx.HTTPError:  # a refused or timed-out request is a failed one: counted
            with self.lock:
                self.latencies.append(time.perf_counter() - started)
                self.failed += 1
            return
        took = time.perf_counter() - started
        result = response.json()["results"][0] if response.is_success else None
        with self.lock:
            self.latencies.append(took)
            if result is None:
                self.failed += 1
                return
            self.flagged += result["decision"] == "fraud"
            states = {s for s in result["features"].values() if s != "request"}
            for state in states & self.not_served.keys():
                self.not_served[state] += 1
            fresh = states == {"present"}
            self.all_present += fresh
            self.degraded += bool(result["degraded"]) or not fresh

    def figures(self, url: str, elapsed: float, model: str, metrics: str) -> DemoFigures:
        with self.lock:
            lat = np.array(self.latencies) * 1000.0 if self.latencies else np.zeros(1)
            n, failed, flagged = len(self.latencies), self.failed, self.flagged
            counts, present, degraded = dict(self.not_served), self.all_present, self.degraded
        released = self.released
        hits, misses = _cache_counts(metrics)
        scored = n - failed
        until = None
        if released:
            until = pd.Timestamp(self.times_s[released - 1], unit="s", tz="UTC").isoformat()
        return DemoFigures(
            url=url,
            seconds=round(elapsed, 2),
            requests=n,
            failed=failed,
            requests_per_s=round(n / elapsed, 1) if elapsed else 0.0,
            client_p50_ms=round(float(np.percentile(lat, 50)), 2),
            client_p99_ms=round(float(np.percentile(lat, 99)), 2),
            flagged_share=round(flagged / scored, 4) if scored else 0.0,
            cache_hit_rate=round(hits / (hits + misses), 4) if hits + misses else 0.0,
            all_present=present,
            missing=counts["missing"],
            expired=counts["expired"],
            future=counts["future"],
            unavailable=counts["unavailable"],
            degraded=degraded,
            model=model,
            replayed=released,
            replay_total=len(self.bodies),
            replayed_until=until,
        )


def _servable(settings: Settings, ref: str, console: Console | None) -> str:
    """`ref`, or the latest version of its model when its alias is not set (yet)."""
    from mlsd.inference.host import parse_ref
    from mlsd.registry import Registry

    name, alias, _ = parse_ref(ref)
    if alias is None:
        return ref
    with Registry.open(settings) as registry:
        if alias in registry.aliases(name):
            return ref
        latest = registry.latest(name).version
    if console is not None:
        console.print(f"[yellow]{name}@{alias} is not set: serving the latest, {name}/{latest}[/]")
    return f"{name}/{latest}"


def wait_ready(url: str, server: Any) -> None:
    """Poll readiness for up to a minute; stop `server` and raise if it never comes."""
    import httpx

    deadline = time.monotonic() + 60
    while True:
        ready = httpx.get(f"{url}/v2/health/ready", timeout=5.0)
        if ready.is_success:
            return
        if "error" in ready.json() or time.monotonic() > deadline:
            server.stop()
            raise UnavailableError(f"the service did not get ready: {ready.json()}")
        time.sleep(0.05)


def demo_step(
    settings: Settings,
    seconds: float | None = 5.0,
    *,
    traffic: pd.DataFrame,
    before_wave: Callable[[int, int], None] | None = None,
    speedup: float | None = None,
    console: Console | None = None,
    model: str = "fraud@champion",
    clients: int = 4,
) -> dict[str, Any]:
    """Serve `model` on a free port and replay `traffic` to it for at most `seconds`
    (None: until the traffic ends or Ctrl-C).

    `traffic` holds transactions sorted by time (`schema` columns); `before_wave(lo, hi)`
    runs before rows [lo, hi) are sent. With a `console`, prints the URL and live figures
    every second. Returns the final figures (`DemoFigures` as a dict).
    """
    import httpx

    from mlsd.serving.app import create_app
    from mlsd.serving.server import BackgroundServer
    from mlsd.serving.service import ServeOptions

    if speedup is not None and speedup <= 0:
        raise ValidationError("the replay speed-up must be positive", field="speedup")
    model = _servable(settings, model, console)
    options = ServeOptions(models=(model,), tune_process=True)  # as `mlsd serve`
    server = BackgroundServer(create_app(settings, options=options))
    server.start()
    wait_ready(server.url, server)
    if console is not None:
        console.print(f"serving [bold]{model}[/] at [link]{server.url}[/]")
    headers = {"x-api-key": settings.api_key} if settings.api_key else {}
    sender = _Traffic(server.url, traffic, headers, before_wave, speedup)
    began = time.monotonic()
    sender.start(clients)
    try:
        while not sender.done.is_set() and (seconds is None or time.monotonic() - began < seconds):
            left = 1.0 if seconds is None else seconds - (time.monotonic() - began)
            sender.done.wait(min(1.0, max(0.0, left)))
            if console is not None:
                console.print(
                    _live_line(sender.figures(server.url, time.monotonic() - began, model, ""))
                )
    except KeyboardInterrupt:  # Ctrl-C ends the replay; the figures so far are reported
        if console is not None:
            console.print("stopped (Ctrl-C)")
    finally:
        try:
            sender.join()
        finally:
            elapsed = time.monotonic() - began
            metrics = httpx.get(f"{server.url}/metrics", timeout=5.0).text
            server.stop()
    return asdict(sender.figures(server.url, elapsed, model, metrics))


def _live_line(live: DemoFigures) -> str:
    """One line a second, under 80 columns."""
    until = (live.replayed_until or "")[:16].replace("T", " ")
    return (
        f"{live.requests:>8,} req {live.requests_per_s:>6,.0f}/s "
        f"p50 {live.client_p50_ms:4.1f} p99 {live.client_p99_ms:5.1f} ms "
        f"flagged {live.flagged_share:4.1%} at {until}"
    )


def _cache_counts(metrics: str) -> tuple[float, float]:
    hits = misses = 0.0
    for line in metrics.splitlines():
        if line.startswith("mlsd_cache_hits_total{"):
            hits += float(line.rsplit(" ", 1)[1])
        elif line.startswith("mlsd_cache_misses_total{"):
            misses += float(line.rsplit(" ", 1)[1])
    return hits, misses
