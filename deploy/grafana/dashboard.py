"""Build deploy/grafana/mlsd.json, the Grafana dashboard of `mlsd serve` and `mlsd stream`.

Written with grafana-foundation-sdk (the `dev` extra) rather than by hand: the builders
lay panels on the grid, give every query its refId and datasource, and produce only what
the dashboard schema knows. The JSON is committed, for import or provisioning without
Python; tests/unit/monitoring/test_grafana_dashboard.py checks it is what this script
writes, survives an SDK round trip, parses in promtool, and queries only metrics mlsd
exports. After editing a panel: `python deploy/grafana/dashboard.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    VariableRefresh,
    VariableSort,
)

OUT = Path(__file__).with_name("mlsd.json")
UID = "mlsd-overview"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
M = 'model=~"$model"'  # the model filter of every per-model query
RATE = "$__rate_interval"


def _query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref)
        .datasource(DATASOURCE)
        .range()
    )


def _targets(queries: list[tuple[str, str]]) -> list[prometheus.Dataquery]:
    return [_query(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)]


def series(
    title: str,
    description: str,
    queries: list[tuple[str, str]],
    *,
    unit: str = "short",
    width: int = 8,
    stacked: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> timeseries.Panel:
    """A time series panel: (PromQL, legend) per query."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))  # type: ignore[arg-type]
        .unit(unit)
        .span(width)
        .height(8)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
    )
    if stacked:
        panel = panel.stacking(
            common_builders.StackingConfig().mode(common.StackingMode.PERCENT)
        ).fill_opacity(40)
    if low is not None:
        panel = panel.min(low)
    if high is not None:
        panel = panel.max(high)
    return panel


def single(title: str, description: str, expr: str, *, unit: str = "short") -> stat.Panel:
    """A stat panel of one instant value."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(_query(expr, "", "A"))
        .unit(unit)
        .span(4)
        .height(4)
    )


def traffic() -> list[timeseries.Panel | stat.Panel]:
    return [
        series(
            "HTTP requests / s",
            "mlsd_request_duration_seconds_count: answered requests by route and status.",
            [(f"sum by (route, status) (rate(mlsd_request_duration_seconds_count[{RATE}]))",
              "{{route}} {{status}}")],
            unit="reqps",
        ),
        series(
            "Rows scored / s",
            "mlsd_predictions_total by model, version, variant and role (primary, shadow).",
            [(f"sum by (model, version, variant, role) "
              f"(rate(mlsd_predictions_total{{{M}}}[{RATE}]))",
              "{{model}}/{{version}} {{variant}} {{role}}")],
        ),
        series(
            "5xx share and degraded requests",
            "Share of answers with a 5xx status, and requests scored without stored features "
            "(online store down or slow) per second, by reason.",
            [
                (f'sum(rate(mlsd_request_duration_seconds_count{{status=~"5.."}}[{RATE}])) / '
                 f"sum(rate(mlsd_request_duration_seconds_count[{RATE}]))", "5xx share"),
                (f"sum by (reason) (rate(mlsd_degraded_total[{RATE}]))", "degraded: {{reason}}"),
            ],
        ),
        series(
            "Prediction cache hit ratio",
            "mlsd_cache_hits_total over hits + misses, by model.",
            [(f"sum by (model) (rate(mlsd_cache_hits_total{{{M}}}[{RATE}])) / "
              f"(sum by (model) (rate(mlsd_cache_hits_total{{{M}}}[{RATE}])) + "
              f"sum by (model) (rate(mlsd_cache_misses_total{{{M}}}[{RATE}])))", "{{model}}")],
            unit="percentunit", low=0, high=1,
        ),
        series(
            "Stream events / s and lag",
            "mlsd stream: events by outcome (decided, dead_letter) and the group's lag.",
            [
                (f"sum by (outcome) (rate(mlsd_stream_events_total[{RATE}]))", "{{outcome}}"),
                ("sum(mlsd_stream_lag_events)", "lag (events)"),
            ],
        ),
        series(
            "Stream events / s and lag by partition",
            "mlsd_stream_partition_events_total (committed) and mlsd_stream_lag_events, per "
            "input partition: a partition falling behind shows here first.",
            [
                (f"sum by (partition) (rate(mlsd_stream_partition_events_total[{RATE}]))",
                 "events/s {{partition}}"),
                ("sum by (partition) (mlsd_stream_lag_events)", "lag {{partition}}"),
            ],
        ),
        series(
            "Stream batches and lost commits",
            "Micro-batches committed per second, and commits refused after a rebalance.",
            [
                (f"sum(rate(mlsd_stream_batches_total[{RATE}]))", "batches / s"),
                (f"sum(increase(mlsd_stream_commits_lost_total[{RATE}]))", "commits lost"),
            ],
        ),
    ]  # fmt: skip


def _quantiles(metric: str, by: str, legend: str, where: str = "") -> list[tuple[str, str]]:
    selector = f"{{{where}}}" if where else ""
    return [
        (f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{selector}[{RATE}])))",
         f"p{round(q * 100)} {legend}")
        for q in (0.5, 0.99)
    ]  # fmt: skip


def latency() -> list[timeseries.Panel | stat.Panel]:
    return [
        series(
            "HTTP latency p50 / p99",
            "mlsd_request_duration_seconds by route.",
            _quantiles("mlsd_request_duration_seconds", "route", "{{route}}"),
            unit="s",
        ),
        series(
            "Model call latency p50 / p99",
            "mlsd_model_inference_duration_seconds: one model call (a micro-batch).",
            _quantiles("mlsd_model_inference_duration_seconds", "model", "{{model}}", M),
            unit="s",
        ),
        series(
            "Online store lookup p50 / p99",
            "mlsd_feature_lookup_duration_seconds: one online store round trip, by status.",
            _quantiles("mlsd_feature_lookup_duration_seconds", "status", "{{status}}"),
            unit="s",
        ),
        series(
            "Rows per model call",
            "Mean of mlsd_batch_size: what micro-batching gathers.",
            [(f"sum by (model) (rate(mlsd_batch_size_sum{{{M}}}[{RATE}])) / "
              f"sum by (model) (rate(mlsd_batch_size_count{{{M}}}[{RATE}]))", "{{model}}")],
        ),
        series(
            "Stream: payment to decision p99",
            "mlsd_stream_event_latency_seconds (event time to commit) and "
            "mlsd_stream_batch_seconds (poll to decisions published).",
            [
                (f"histogram_quantile(0.99, sum by (le) "
                 f"(rate(mlsd_stream_event_latency_seconds_bucket[{RATE}])))", "event p99"),
                (f"histogram_quantile(0.99, sum by (le) "
                 f"(rate(mlsd_stream_batch_seconds_bucket[{RATE}])))", "batch p99"),
            ],
            unit="s",
        ),
        series(
            "Stream: payment to decision published p99 by partition",
            "mlsd_stream_decision_latency_seconds: event time to its decision on the output "
            "topic (before the commit), per input partition.",
            [(f"histogram_quantile(0.99, sum by (le, partition) "
              f"(rate(mlsd_stream_decision_latency_seconds_bucket[{RATE}])))",
              "p99 {{partition}}")],
            unit="s",
        ),
        series(
            "Model load time p99",
            "mlsd_model_load_duration_seconds: load and warm a version.",
            [(f"histogram_quantile(0.99, sum by (le, model) "
              f"(rate(mlsd_model_load_duration_seconds_bucket{{{M}}}[1h])))", "{{model}}")],
            unit="s",
        ),
    ]  # fmt: skip


def scores() -> list[timeseries.Panel | stat.Panel]:
    return [
        series(
            "Score PSI",
            "mlsd_drift_score_psi: the score distribution of the last closed window against "
            "the reference profile (alert MlsdScoreDrift above 0.1).",
            [(f"mlsd_drift_score_psi{{{M}}}", "{{model}}/{{version}} {{variant}}")],
        ),
        series(
            "Score shift detector",
            "mlsd_drift_score_cusum_ratio: the Page-Hinkley CUSUM over its threshold (an "
            "alarm at 1, then it restarts).",
            [(f"mlsd_drift_score_cusum_ratio{{{M}}}", "{{model}}/{{version}} {{variant}}")],
            low=0, high=1,
        ),
        series(
            "Score shift alarms (15 min)",
            "increase(mlsd_drift_score_alarms_total[15m]): alert MlsdScoreShiftDetected above 0.",
            [(f"sum by (model, version, variant) "
              f"(increase(mlsd_drift_score_alarms_total{{{M}}}[15m]))",
              "{{model}}/{{version}} {{variant}}")],
        ),
    ]  # fmt: skip


def drift() -> list[timeseries.Panel | stat.Panel]:
    per = "{{model}}/{{version}} {{variant}} {{feature}}"
    return [
        series(
            "Feature PSI, top 10",
            "mlsd_drift_psi of the last closed window (MlsdFeatureDriftModerate above 0.1, "
            "MlsdFeatureDriftMajor above 0.25).",
            [(f"topk(10, mlsd_drift_psi{{{M}}})", per)],
        ),
        series(
            "Feature Jensen-Shannon, top 10",
            "mlsd_drift_js (bits) of the last closed window.",
            [(f"topk(10, mlsd_drift_js{{{M}}})", per)],
        ),
        series(
            "Feature KS distance, top 10",
            "mlsd_drift_ks of numeric features at the reference bin edges.",
            [(f"topk(10, mlsd_drift_ks{{{M}}})", per)],
        ),
        series(
            "Missing values, top 10",
            "mlsd_drift_missing_rate (MlsdFeatureMissing above 5 %).",
            [(f"topk(10, mlsd_drift_missing_rate{{{M}}})", per)],
            unit="percentunit",
        ),
        series(
            "Joint drift (PSI of PCA error)",
            "mlsd_drift_joint_psi: the features' joint distribution (MlsdJointDrift above 0.25).",
            [(f"mlsd_drift_joint_psi{{{M}}}", "{{model}}/{{version}} {{variant}}")],
        ),
        series(
            "Drift windows",
            "Rows in the last closed window and its age.",
            [
                (f"mlsd_drift_window_rows{{{M}}}", "rows {{model}}/{{version}} {{variant}}"),
                (f"time() - mlsd_drift_window_end_timestamp_seconds{{{M}}}",
                 "age (s) {{model}}/{{version}} {{variant}}"),
            ],
        ),
        single(
            "Versions without a profile",
            "mlsd_drift_profile_missing: served versions not drift-monitored.",
            f"sum(mlsd_drift_profile_missing{{{M}}}) or vector(0)",
        ),
        single(
            "Versions waiting for a window",
            "mlsd_drift_no_data: served versions with no closed drift window yet.",
            f"sum(mlsd_drift_no_data{{{M}}}) or vector(0)",
        ),
    ]  # fmt: skip


def performance() -> list[timeseries.Panel | stat.Panel]:
    per = "{{model}}/{{version}} {{variant}}"
    return [
        series(
            "AUC: measured and estimated",
            "mlsd_performance_auc on labelled predictions; mlsd_performance_estimated_auc "
            "(CBPE, from the scores alone) covers the rows whose labels have not arrived.",
            [
                (f"mlsd_performance_auc{{{M}}}", f"measured {per}"),
                (f"mlsd_performance_estimated_auc{{{M}}}", f"estimated {per}"),
            ],
            low=0.5, high=1,
        ),
        series(
            "Average precision",
            "mlsd_performance_ap on labelled predictions.",
            [(f"mlsd_performance_ap{{{M}}}", per)],
            low=0, high=1,
        ),
        series(
            "Labels: coverage and lag",
            "mlsd_performance_label_coverage (share of predictions labelled) and "
            "mlsd_label_lag_seconds (how late labels arrive).",
            [
                (f"mlsd_performance_label_coverage{{{M}}}", f"coverage {per}"),
                (f"mlsd_label_lag_seconds{{{M}}} / 86400", f"lag (days) {per}"),
            ],
        ),
    ]  # fmt: skip


def alerts() -> list[timeseries.Panel | stat.Panel]:
    return [
        series(
            "Prometheus alerts firing",
            "ALERTS of deploy/prometheus/mlsd-rules.yml, by alert and severity.",
            [('sum by (alertname, severity) (ALERTS{alertstate="firing", alertname=~"Mlsd.*"})',
              "{{alertname}} ({{severity}})")],
            width=12,
        ),
        series(
            "mlsd serve alert rules firing",
            "mlsd_alerts_firing: the rules of `mlsd serve --alert-rules` "
            "(deploy/monitoring/drift-rules.yml), evaluated on each closed window.",
            [("sum by (rule, severity) (mlsd_alerts_firing)", "{{rule}} ({{severity}})")],
            width=12,
        ),
    ]  # fmt: skip


def rollouts() -> list[timeseries.Panel | stat.Panel]:
    return [
        series(
            "Primary traffic by variant",
            "Share of rows answered by each variant (champion, canary, A/B arms).",
            [(f"sum by (model, variant) "
              f'(rate(mlsd_predictions_total{{{M}, role="primary"}}[{RATE}]))',
              "{{model}} {{variant}}")],
            stacked=True,
        ),
        series(
            "Challenger share of customers",
            "mlsd_rollout_share_percent: canary step, A/B weight, 100 for blue-green.",
            [("max by (rollout, kind) (mlsd_rollout_share_percent)", "{{rollout}} ({{kind}})")],
            unit="percent", low=0, high=100,
        ),
        series(
            "Canary decisions (1 h)",
            "mlsd_rollout_decisions_total: step, failed, promote, rollback.",
            [("sum by (rollout, decision) (increase(mlsd_rollout_decisions_total[1h]))",
              "{{rollout}} {{decision}}")],
        ),
        series(
            "Degraded share by variant",
            "mlsd_model_requests_total with status degraded over all, per variant and role.",
            [(f"sum by (variant, role) "
              f'(rate(mlsd_model_requests_total{{{M}, status="degraded"}}[{RATE}])) / '
              f"sum by (variant, role) (rate(mlsd_model_requests_total{{{M}}}[{RATE}]))",
              "{{variant}} {{role}}")],
            unit="percentunit",
        ),
        series(
            "Shadow queue",
            "mlsd_shadow_queue_depth, mlsd_shadow_dropped_total (dropped when full) and "
            "mlsd_shadow_process_restarts_total (a shadow scorer process that died or hung).",
            [
                ("sum(mlsd_shadow_queue_depth)", "waiting"),
                (f"sum by (variant) (rate(mlsd_shadow_dropped_total[{RATE}]))",
                 "dropped / s {{variant}}"),
                (f"sum(increase(mlsd_shadow_process_restarts_total[{RATE}]))",
                 "shadow process restarts"),
            ],
        ),
        series(
            "Model versions",
            "Versions held, loads and alias switches.",
            [
                ("sum(mlsd_loaded_models)", "loaded"),
                (f"sum by (model, version) (increase(mlsd_model_loads_total{{{M}}}[1h]))",
                 "loads (1 h) {{model}}/{{version}}"),
                (f"sum by (model) (increase(mlsd_model_switches_total{{{M}}}[1h]))",
                 "switches (1 h) {{model}}"),
            ],
        ),
    ]  # fmt: skip


def health() -> list[timeseries.Panel | stat.Panel]:
    return [
        single(
            "Alias lagging",
            "mlsd_alias_lagging: an alias points at a version this server could not load.",
            "max(mlsd_alias_lagging) or vector(0)",
        ),
        single(
            "Feature breaker open",
            "mlsd_feature_breaker_open: the online store circuit breaker is open or half-open.",
            "max(mlsd_feature_breaker_open) or vector(0)",
        ),
        single(
            "Online store empty",
            "mlsd_online_store_empty: the store answers but lost its data.",
            "max(mlsd_online_store_empty) or vector(0)",
        ),
        single(
            "Prediction log backlog",
            "mlsd_prediction_log_buffered: records answered and journaled, not yet stored.",
            "sum(mlsd_prediction_log_buffered) or vector(0)",
        ),
    ]


SECTIONS = {
    "Traffic": traffic,
    "Latency": latency,
    "Scores": scores,
    "Drift": drift,
    "Performance (delayed labels)": performance,
    "Alerts": alerts,
    "Rollouts and variants": rollouts,
    "Service health": health,
}


def build() -> dict[str, object]:
    """The dashboard as JSON-ready data."""
    board = (
        dash.Dashboard("mlsd")
        .uid(UID)
        .description(
            "mlsd serve and mlsd stream: traffic, latency, scores, drift, performance with "
            "delayed labels, alerts, rollouts (docs/monitoring.md)."
        )
        .tags(["mlsd"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(dash.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(
            dash.QueryVariable("model")
            .label("Model")
            .datasource(DATASOURCE)
            .query("label_values(mlsd_model_requests_total, model)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    )
    for title, panels in SECTIONS.items():
        board = board.with_row(dash.Row(title))
        for panel in panels():
            board = board.with_panel(panel)
    built = board.build()
    for number, placed in enumerate(built.panels or [], start=1):
        placed.id_val = number  # stable ids: links and alerts name panels by id
    data: dict[str, object] = json.loads(json.dumps(built, cls=JSONEncoder))
    return data


def render() -> str:
    """The JSON text written to mlsd.json."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
