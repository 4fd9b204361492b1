"""The demo's monitoring step: drift injected into live traffic, and the alert it raises.

A real `mlsd serve` app (live drift on, alert rules from a file, the `/ui` dashboard) scores
two windows of the held-out days' transactions: first as they are, then with every amount
multiplied by `SHIFT` (a unit or currency bug upstream: the transactions, customers and
times are the same). Each window is compared with the champion's reference profile (its
training data's bins, stored at registration); the rules are the shipped ones
(`deploy/monitoring/drift-rules.yml`) with `for_seconds: 0`, so one window is enough to fire
in a demo (a deployment holds them for 10 minutes). What the step prints is read back from
the running server: its alert events and its dashboard data (`GET /ui/data`). The step
does not write the prediction log, so the replay's log (and its figures above) stay the
replay's.

Transactions are sampled across the held-out days, not taken in a row, and sent as over the
following week: each keeps its time of day, and their days are spread evenly over that
week (a window of a few hours', or of two weekdays', traffic differs from the training
data on the weekend and night flags alone). That is after every feature row the online
store holds, so each is served the customer's and terminal's latest features.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from mlsd.errors import UnavailableError
from mlsd.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

#: Rows per drift window (the server closes a window when it holds this many).
WINDOW_ROWS = 2_000
MIN_ROWS = 200
#: What the injected fault multiplies every amount by.
SHIFT = 3.0
RULES = [
    {"name": "feature-drift-major", "metric": "psi", "feature": "*", "above": 0.25,
     "for_seconds": 0, "severity": "critical",
     "description": "a feature's distribution moved a lot from the training data"},
    {"name": "score-drift", "metric": "score_psi", "above": 0.1, "for_seconds": 0,
     "severity": "warning", "description": "the score distribution moved"},
]  # fmt: skip
WAIT_S = 30.0  # for a window to close on a busy machine


def _bodies(rows: pd.DataFrame, scale: float) -> list[dict[str, Any]]:
    from mlsd.data import schema

    return [
        {"transaction_id": int(t), "customer_id": int(c), "terminal_id": int(k),
         "amount": round(float(a) * scale, 2), "timestamp": ts.isoformat()}
        for t, c, k, a, ts in zip(
            rows[schema.TRANSACTION_ID], rows[schema.CUSTOMER_ID], rows[schema.TERMINAL_ID],
            rows[schema.TX_AMOUNT], rows[schema.TX_DATETIME], strict=True,
        )
    ]  # fmt: skip


def _windows(http: Any) -> list[dict[str, Any]]:
    data = http.get("/ui/data").json()
    series = data["drift"]["series"]
    return list(series[0]["windows"]) if series else []


def _send_window(http: Any, bodies: list[dict[str, Any]], closed: int) -> dict[str, Any]:
    """Score one window's transactions; wait until the server closed its drift window."""
    for lo in range(0, len(bodies), 500):
        http.post("/v1/score", json={"transactions": bodies[lo : lo + 500]}).raise_for_status()
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        windows = _windows(http)
        if len(windows) > closed:
            return windows[-1]
        time.sleep(0.2)
    raise UnavailableError(f"the server closed no drift window in {WAIT_S:.0f} s")


def drift_step(settings: Settings, traffic: pd.DataFrame, console: Console) -> dict[str, Any]:
    """Serve two windows (normal, then shifted amounts); print drift and alerts; return them."""
    import httpx
    import pandas as pd

    from mlsd.data import schema
    from mlsd.serving.app import create_app
    from mlsd.serving.demo import wait_ready
    from mlsd.serving.server import BackgroundServer
    from mlsd.serving.service import ServeOptions

    rules = settings.path("monitoring/demo-drift-rules.yml")
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text(yaml.safe_dump({"rules": RULES}, sort_keys=False), encoding="utf-8")
    rows = min(WINDOW_ROWS, len(traffic) // 2)  # the small demo replays fewer
    if rows < MIN_ROWS:
        raise UnavailableError(f"{len(traffic)} held-out transactions: too few for two windows")
    rng = np.random.default_rng(0)
    picked = traffic.iloc[rng.permutation(len(traffic))[: 2 * rows]].copy()
    # sent as over the next week: each keeps its time of day, the days are spread evenly
    days = 7 + np.arange(len(picked)) % 7
    picked[schema.TX_DATETIME] = picked[schema.TX_DATETIME] + pd.to_timedelta(days, unit="D")
    normal = _bodies(picked.iloc[:rows], 1.0)
    shifted = _bodies(picked.iloc[rows:], SHIFT)
    options = ServeOptions(
        models=("fraud@champion",), monitor_drift=True, drift_window_rows=rows,
        drift_window_s=3600.0, alert_rules=str(rules), watch_rollouts=False,
        dashboard_sample_s=0.5, log_predictions=False,
    )  # fmt: skip
    server = BackgroundServer(create_app(settings, options=options))
    server.start()
    wait_ready(server.url, server)  # stops the server and raises if it never gets ready
    headers = {"x-api-key": settings.api_key} if settings.api_key else {}
    if settings.admin_token:
        headers["authorization"] = f"Bearer {settings.admin_token}"
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30.0) as http:
            console.print(
                f"serving fraud@champion at {server.url} with live drift ({rows:,}-row "
                f"windows) and two alert rules; dashboard page: {server.url}/ui"
            )
            before = _send_window(http, normal, 0)
            firing_before = _firing(http)
            after = _send_window(http, shifted, 1)
            firing = _firing(http)
    finally:
        server.stop()
    console.print(_table(before, after))
    new = [e for e in firing if (e["rule"], e["feature"]) not in
           {(b["rule"], b["feature"]) for b in firing_before}]  # fmt: skip
    for event in firing:
        console.print(
            f"[red]ALERT[/] {event['rule']} ({event['severity']}) firing for "
            f"{event['feature'] or 'the score'}: {event['metric']} {event['value']:.2f} > "
            f"{event['threshold']:g}" + ("" if event in new else ", since window 1")
        )
    if not new:
        console.print("[yellow]no new alert fired[/] on the shifted window")
    amount = schema.TX_AMOUNT
    console.print(
        f"The amounts were multiplied by {SHIFT:g} in the second window only: its {amount} "
        f"PSI is {after['psi'].get(amount, 0):.2f} against {before['psi'].get(amount, 0):.2f} "
        "in the first (above 0.25 is a major shift), and the scores followed. "
        + _first_window(firing_before, before["rows"])
        + "The server logged each alert as it fired (the lines above the table); its "
        f"dashboard data (/ui/data, what the /ui page draws) held {len(firing)} firing."
    )
    return {"before": before, "after": after, "firing_before": firing_before, "firing": firing}


def _firing(http: Any) -> list[dict[str, Any]]:
    return list(http.get("/ui/data").json()["alerts"]["firing"])


def _first_window(fired: list[dict[str, Any]], rows: int) -> str:
    if not fired:
        return "The first window, traffic as it came, fired nothing. "
    names = ", ".join(e["feature"] or "the score" for e in fired)
    return (
        f"The first window, traffic as it came, already fired on {names}: in a world this "
        f"small, {rows:,} transactions served on the replay's last state differ from the "
        "training test week there too (a true alarm about the world, not about the fault). "
    )


def _table(before: dict[str, Any], after: dict[str, Any]) -> Table:
    table = Table(title="live drift against the champion's training data (PSI per window)")
    table.add_column("", overflow="fold")
    table.add_column("window 1 as sent", justify="right")
    table.add_column(f"window 2 amounts x{SHIFT:g}", justify="right")
    moved = sorted(after["psi"], key=lambda f: -(after["psi"][f] or 0.0))[:4]
    for name in moved:
        table.add_row(name, _f(before["psi"].get(name)), _f(after["psi"].get(name)))
    table.add_row("score", _f(before["score_psi"]), _f(after["score_psi"]))
    table.add_row("joint (PCA error)", _f(before["joint_psi"]), _f(after["joint_psi"]))
    table.add_row("rows", f"{before['rows']:,}", f"{after['rows']:,}")
    return table


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
