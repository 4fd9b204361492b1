"""Rich tables for the registry: used by `mlsd registry ...` and the demo."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from mlsd.registry.gate import GateDecision
from mlsd.registry.models import AliasMove, ModelSummary, ModelVersion

HEADLINE_METRICS = ("auc_roc", "average_precision", "card_precision_at_100")


def _when(mv_time: Any) -> str:
    return str(mv_time.strftime("%Y-%m-%d %H:%M:%S"))


def models_table(models: Sequence[ModelSummary]) -> Table:
    """One row per registered model."""
    table = Table(title="registered models")
    for column in ("name", "latest", "aliases", "created (UTC)"):
        table.add_column(column)
    for m in models:
        aliases = ", ".join(f"@{a}={v}" for a, v in m.aliases.items())
        table.add_row(m.name, str(m.latest_version), aliases, _when(m.created_at))
    return table


def versions_table(
    versions: Sequence[ModelVersion], aliases: Mapping[str, dict[str, int]]
) -> Table:
    """One row per version with its headline metrics, tags and the aliases on it.

    Narrow enough for 80 columns: `fraud/3` for `models:/fraud/3`, minutes for the time,
    AUC / AP / CP@100 for the metrics (their full names are in `registry show`).
    """
    table = Table(
        title="model versions", box=None, padding=(0, 1, 0, 0), header_style="bold underline"
    )
    for column in ("version", "flavor", "created (UTC)", "AUC", "AP", "CP@100", "aliases"):
        table.add_column(column, justify="right" if column[0].isupper() else "left", no_wrap=True)
    table.add_column("tags", overflow="fold")  # the one that may fold on a narrow terminal
    for mv in versions:
        on = [f"@{a}" for a, v in aliases.get(mv.name, {}).items() if v == mv.version]
        metrics = [f"{mv.metrics[m]:.3f}" if m in mv.metrics else "-" for m in HEADLINE_METRICS]
        tags = ", ".join(f"{k}={v}" for k, v in mv.tags.items())
        status = "" if mv.status == "ready" else f" ({mv.status})"
        table.add_row(
            f"{mv.name}/{mv.version}{status}", mv.flavor,
            mv.created_at.strftime("%Y-%m-%d %H:%M"), *metrics, " ".join(on), tags,
        )  # fmt: skip
    return table


def version_table(mv: ModelVersion, env_diff: Mapping[str, Any]) -> Table:
    """Everything about one version, one field per row."""
    table = Table(title=mv.uri, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    lineage = mv.lineage
    rows: list[tuple[str, str]] = [
        ("flavor / status", f"{mv.flavor} / {mv.status}"),
        ("created (UTC)", _when(mv.created_at)),
        ("description", mv.description),
        ("metrics", ", ".join(f"{k}={v:.4f}" for k, v in sorted(mv.metrics.items()))),
        ("threshold", _threshold_text(mv)),
        ("params", ", ".join(f"{k}={v}" for k, v in sorted(mv.params.items()))),
        ("tags", ", ".join(f"{k}={v}" for k, v in mv.tags.items())),
        (
            "signature",
            ", ".join(
                f"{n}:{t}"
                for n, t in zip(mv.signature.feature_names, mv.signature.dtypes, strict=True)
            ),
        ),
        ("feature views", ", ".join(f"{k}@{v}" for k, v in lineage.feature_views.items())),
        ("training set sha256", lineage.training_set_hash),
        ("dataset", f"{lineage.dataset} {lineage.dataset_hash[:12]}".strip()),
        ("code commit", lineage.code_commit),
        ("train / test", f"{_period(lineage.train_period)} / {_period(lineage.test_period)}"),
        ("parent version", "-" if lineage.parent_version is None else str(lineage.parent_version)),
        ("artifacts", "\n".join(f"{f} sha256:{d[:16]}" for f, d in mv.artifacts.items())),
        (
            "environment",
            f"Python {mv.environment.python} ({mv.environment.platform}), "
            f"{len(mv.environment.packages)} distributions pinned",
        ),
        ("environment diff", _env_diff_text(env_diff)),
    ]
    for field, value in rows:
        table.add_row(field, value)
    return table


def _threshold_text(mv: ModelVersion) -> str:
    if mv.threshold is None:
        return "[yellow]none stored (registered before thresholds were): served at 0.5[/]"
    return mv.threshold.describe()


def _period(period: Any) -> str:
    if period is None:
        return "-"
    return f"{period[0]:%Y-%m-%d}..{period[1]:%Y-%m-%d}"


def _env_diff_text(env_diff: Mapping[str, Any]) -> str:
    if not env_diff:
        return "[green]matches this environment[/]"
    parts = [
        f"{k}: {v['recorded']} -> {v['current']}" for k, v in env_diff.items() if k != "packages"
    ]
    packages = env_diff.get("packages", {})
    parts += [f"{n}: {a} -> {b}" for n, (a, b) in sorted(packages.get("changed", {}).items())]
    parts += [f"{n}: missing now" for n in packages.get("missing", [])]
    if packages.get("added"):
        parts.append(f"{len(packages['added'])} distributions added")
    return "[yellow]" + "\n".join(parts) + "[/]"


def history_table(moves: Sequence[AliasMove]) -> Table:
    """Every alias move: when, which alias, from, to, kind, who and why."""
    table = Table(title="alias history")
    for column in ("when (UTC)", "alias", "from", "to", "kind", "actor", "reason"):
        table.add_column(column, overflow="fold")
    for m in moves:
        table.add_row(
            _when(m.at),
            f"{m.name}@{m.alias}",
            _v(m.from_version),
            _v(m.to_version),
            m.kind,
            m.actor,
            m.reason,
        )
    return table


def _v(version: int | None) -> str:
    return "-" if version is None else str(version)


def decision_table(decision: GateDecision) -> Table:
    """The checks of one gate decision."""
    verdict = "accepted" if decision.accepted else "refused"
    if decision.forced:
        verdict = "forced"
    title = f"promote {decision.name}/{decision.version} to @{decision.alias}: {verdict}"
    table = Table(title=title)
    for column in ("metric", "check", "passed", "detail"):
        table.add_column(column)
    for c in decision.checks:
        table.add_row(c.metric, c.kind, "[green]yes[/]" if c.passed else "[red]no[/]", c.detail)
    if not decision.checks:
        held = decision.champion_version
        table.caption = "no thresholds apply" + (
            " (no current holder to compare with)" if held is None else ""
        )
    if decision.reason:
        table.caption = f"{table.caption or ''} reason: {decision.reason}".strip()
    return table


def diff_table(result: Mapping[str, Any], show_all: bool = False) -> Table:
    """Two versions side by side; rows that differ are highlighted."""
    table = Table(title=f"{result['a']} vs {result['b']}")
    table.add_column("section")
    table.add_column("key")
    table.add_column(str(result["a"]))
    table.add_column(str(result["b"]))
    sections = ("metrics", "threshold", "params", "lineage", "signature", "artifacts")
    for section in (*sections, "environment"):
        for key, cell in result[section].items():
            if cell["same"] and not show_all:
                continue
            style = "" if cell["same"] else "yellow"
            table.add_row(section, key, _cell(cell["a"]), _cell(cell["b"]), style=style)
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
