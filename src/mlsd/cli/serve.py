"""`mlsd serve`: the online inference service (REST v1 + Open Inference Protocol V2)."""

from __future__ import annotations

import errno
import socket
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlsd.errors import MlsdError, UnavailableError, ValidationError

if TYPE_CHECKING:
    from mlsd.inference.spec import LoadedModel
    from mlsd.serving.service import Service


def check_port(host: str, port: int) -> None:
    """UnavailableError (exit 6) when `host:port` is taken, before anything is loaded.

    Binds the way uvicorn does (SO_REUSEADDR, so a socket in TIME_WAIT does not count).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UnavailableError(
                    f"port {port} on {host} is already in use (another `mlsd serve`?): "
                    "stop it or pick another --port",
                    field="port",
                ) from None
            raise UnavailableError(f"cannot listen on {host}:{port}: {exc}", field="host") from None


def _missing(service: Service, refs: list[str]) -> dict[str, str]:
    """The references the registry cannot resolve yet, with the reason."""
    from mlsd.inference.host import parse_ref

    out: dict[str, str] = {}
    for ref in refs:
        name, alias, version = parse_ref(ref)
        uri = f"models:/{name}@{alias}" if alias else f"models:/{name}/{version}"
        try:
            service.host.registry.resolve(uri)
        except MlsdError as exc:  # not there yet, or the registry is down: both retried
            out[ref] = exc.message
    return out


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    model: list[str] = typer.Option(
        ["fraud@champion"], "--model", help="Model to serve, NAME@ALIAS or NAME/VERSION; repeat."
    ),
    max_batch_size: int = typer.Option(64, "--max-batch-size", min=1, max=65536),
    max_delay_ms: float = typer.Option(
        0.0,
        "--max-delay-ms",
        help=(
            "Micro-batch maximum wait (adaptive: flushed at the first loop turn with no new "
            "request); 0 = same loop turn only, <0 = off."
        ),
    ),
    fail_degraded: bool = typer.Option(
        False, "--fail-when-degraded", help="Answer 503 instead of scoring without stored features."
    ),
    tune_process: bool = typer.Option(
        True,
        "--tune/--no-tune",
        help=(
            "GC: freeze the loaded heap, collect less often; GIL: switch every 1 ms; "
            "background threads at nice 10."
        ),
    ),
    monitor_drift: bool = typer.Option(
        True, "--drift/--no-drift", help="Live drift against each version's reference profile."
    ),
    drift_window_rows: int = typer.Option(
        5000, "--drift-window-rows", min=1, help="Rows per live drift window (mlsd_drift_*)."
    ),
    alert_rules: str | None = typer.Option(
        None, "--alert-rules", help="YAML alert rules on live drift (docs/monitoring.md)."
    ),
    alert_webhook: str | None = typer.Option(
        None, "--alert-webhook", help="POST each alert event as JSON to this http(s) URL."
    ),
    ui: bool = typer.Option(
        True,
        "--ui/--no-ui",
        help="The dashboard page at /ui (traffic, latency, scores, drift, alerts, models, "
        "rollouts; charts need the ui extra: pip install 'mlsd[ui]'). Its data /ui/data "
        "needs the admin token when MLSD_ADMIN_TOKEN is set.",
    ),
    ui_sample_s: float = typer.Option(
        5.0, "--ui-sample-s", min=0.1, help="Seconds between the dashboard's metric samples."
    ),
    labels: Path | None = typer.Option(
        None,
        "--labels",
        help="Measure performance as labels land: a dataset folder (mlsd simulate) or the "
        "label table `mlsd stream labels` writes ($MLSD_HOME/labels). Every "
        "--performance-every seconds a background thread evaluates the last "
        "--performance-window of this server's prediction log on the labels landed by "
        "then: mlsd_performance_* gauges and the dashboard's performance panel.",
    ),
    performance_window: str = typer.Option(
        "1d", "--performance-window", help="The window --labels evaluates (30m, 6h, 1d)."
    ),
    performance_every: float = typer.Option(
        60.0, "--performance-every", min=1.0, help="Seconds between performance refreshes."
    ),
    shadow_process: bool = typer.Option(
        True,
        "--shadow-process/--shadow-thread",
        help="Score shadow rollouts in a process of their own on idle CPU only, which "
        "also writes their prediction-log records (most of their work off this process's "
        "GIL); --shadow-thread scores them in a thread of this process.",
    ),
    job_worker: bool = typer.Option(
        True,
        "--job-worker/--no-job-worker",
        help="Run async jobs in this process; --no-job-worker leaves them to `mlsd worker` "
        "processes (needs MLSD_JOB_QUEUE=redis://...).",
    ),
    log_level: str = typer.Option("warning", "--log-level"),
) -> None:
    """Serve fraud scores over HTTP with one uvicorn worker.

    A model not in the registry yet (no fraud@champion before the first
    `mlsd train --promote`) is waited for: the server answers 503 and retries every
    2 s, then serves it as soon as it appears. Exit code 6 when the port is taken.

    A dashboard page is served at /ui: traffic, latency percentiles, score
    distribution, drift per feature over time, alerts, model versions, rollouts and
    (with --labels) performance as labels land, refreshed every 3 s (docs/monitoring.md,
    "The dashboard page").

    With --labels, performance as the delayed fraud labels land (AUC, AP, Card
    Precision, block precision, fraud EUR blocked, label coverage and lag, the label-free
    estimate) over the last --performance-window, as mlsd_performance_* gauges and on
    the dashboard. Exit code 3 when --labels is neither a dataset folder nor a label table.
    """
    import uvicorn

    from mlsd.inference.batcher import BatchConfig
    from mlsd.inference.host import parse_ref
    from mlsd.serving.app import build_service, create_app
    from mlsd.serving.service import ServeOptions
    from mlsd.settings import get_settings

    for ref in model:
        parse_ref(ref)  # a bad reference fails here, with its exit code
    if alert_rules:
        from mlsd.monitoring.alerts import load_rules

        load_rules(Path(alert_rules))  # a malformed file fails here, before anything loads
    if alert_webhook:
        from mlsd.monitoring.alerts import WebhookSink

        WebhookSink(alert_webhook)  # so does a URL that is not http(s)
    window = _window(performance_window)
    if labels is not None:
        from mlsd.monitoring.performance import labels_kind

        labels_kind(labels)  # neither a dataset nor a label table: exit 3, naming --labels
    check_port(host, port)
    options = ServeOptions(
        models=tuple(model),
        batching=BatchConfig(max_batch_size, max_delay_ms),
        fail_when_degraded=fail_degraded,
        tune_process=tune_process,
        monitor_drift=monitor_drift,
        drift_window_rows=drift_window_rows,
        alert_rules=alert_rules,
        alert_webhook=alert_webhook,
        run_jobs=job_worker,
        shadow_process=shadow_process,
        dashboard=ui,
        dashboard_sample_s=ui_sample_s,
        labels=None if labels is None else str(labels),
        performance_window_s=window.total_seconds(),
        performance_every_s=performance_every,
    )
    settings = get_settings()
    if not job_worker:
        from mlsd.serving.worker import check_shared_queue

        check_shared_queue(settings)  # no one would run the in-process queue's jobs
    service = build_service(settings, options)
    service.host.on_load(_announce)
    url = f"http://{host}:{port}"
    missing = _missing(service, model)
    for ref, reason in missing.items():
        typer.echo(
            f"waiting for {ref}: {reason}. {url} answers 503 until it appears (for instance "
            f"after `mlsd train --promote` in another shell); checking every "
            f"{options.load_retry_s:g} s"
        )
    verb = "listening" if missing else "serving " + ", ".join(model)
    typer.echo(
        f"mlsd {verb} on {url}: docs {url}/docs, health {url}/v2/health/ready, "
        f"metrics {url}/metrics" + (f", dashboard {url}/ui" if ui else "")
    )
    if ui:
        from mlsd.serving.routes_ui import PLOTLY_MISSING, plotly_version

        if plotly_version() is None:
            typer.echo(f"note: {PLOTLY_MISSING} (the page shows its tables without charts)")
    app = create_app(settings, service=service)
    uvicorn.run(app, host=host, port=port, workers=1, log_level=log_level)


def _window(value: str) -> timedelta:
    """`--performance-window`: 30m, 6h, 1d (ValidationError, exit 2, otherwise)."""
    import re

    found = re.fullmatch(r"(\d+)([mhd])", value.strip())
    if found is None or int(found.group(1)) == 0:
        raise ValidationError(
            f"--performance-window: expected a length such as 30m, 6h or 1d, not {value!r}",
            field="performance_window",
        )
    unit = {"m": "minutes", "h": "hours", "d": "days"}[found.group(2)]
    return timedelta(**{unit: int(found.group(1))})


def _announce(model: LoadedModel, seconds: float) -> None:
    typer.echo(f"loaded {model.name} v{model.version} in {seconds:.2f} s: serving it")


def register(app: typer.Typer) -> None:
    """Add the `serve` command."""
    app.command("serve")(serve)
