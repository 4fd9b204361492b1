"""An incident report as files: `report.md` (the answer first), `report.json`, PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mlsd.monitoring.report import (
    SHADOW_SUFFIX,
    TOP_FEATURES,
    IncidentReport,
    LabelCheck,
    Outputs,
)


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "—" if value is None else format(value, spec)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _outputs_table(now: Outputs, then: Outputs | None, score_psi: float | None) -> str:
    def side(o: Outputs | None) -> list[str]:
        if o is None:
            return ["no data"] * 9
        return [f"{o.predictions:,}", f"{o.flag_rate:.2%}", f"{o.score['mean']:.4f}",
                f"{o.score['p50']:.4f}", f"{o.score['p90']:.4f}", f"{o.score['p99']:.4f}",
                f"{o.confidence:.4f}", f"{o.near_threshold:.2%}",
                f"{o.latency_ms['p50']:.1f} / {o.latency_ms['p95']:.1f} / "
                f"{o.latency_ms['p99']:.1f}"]  # fmt: skip

    names = ["predictions", "flag rate (decision fraud)", "mean score", "score p50",
             "score p90", "score p99", "mean confidence max(p, 1-p)",
             "near the threshold (odds within x2)", "latency p50 / p95 / p99 (ms)"]  # fmt: skip
    a, b = side(then), side(now)
    rows = [[n, x, y] for n, x, y in zip(names, a, b, strict=True)]
    rows.append(["score PSI against the window before", "", _fmt(score_psi, ".3f")])
    return _table(["", "window before", "window"], rows)


def _labels_table(now: LabelCheck | None, then: LabelCheck | None) -> str:
    def side(c: LabelCheck | None) -> list[str]:
        if c is None:
            return ["no labels given"] + [""] * 6
        return [c.state, f"{c.labelled:,} of {c.scored:,}", f"{c.frauds:,}",
                _fmt(c.auc_roc, ".3f"), _fmt(c.average_precision, ".3f"),
                _fmt(c.precision, ".2%"), _fmt(c.recall, ".2%")]  # fmt: skip

    names = ["state", "labelled", "frauds", "AUC ROC", "average precision",
             "precision of declines", "recall"]  # fmt: skip
    rows = [[n, x, y] for n, x, y in zip(names, side(then), side(now), strict=True)]
    return _table(["", "window before", "window"], rows)


def markdown(r: IncidentReport, plots: list[str]) -> str:
    """The report's text: findings first, then one section per part."""
    out = [f"# Incident report: {r.start.isoformat()} .. {r.end.isoformat()}", "",
           f"Compared with the window before, {r.before.isoformat()} .. {r.start.isoformat()}."
           + ("" if r.as_of is None else f" Labels known by {r.as_of.isoformat()}."), "",
           "## What changed", ""]  # fmt: skip
    out += [f"- {line}" for line in r.findings]
    out += ["", "## Model versions serving", ""]
    versions = sorted(set(r.window.versions) | set(r.previous.versions if r.previous else {}))
    before = r.previous.versions if r.previous else {}
    out.append(_table(["model/version", "window before", "window"],
                      [[v, f"{before.get(v, 0):,}", f"{r.window.versions.get(v, 0):,}"]
                       for v in versions]))  # fmt: skip
    out += ["", "Variants in the window: "
            + ", ".join(f"{k} ({v:,})" for k, v in r.window.variants.items()), ""]  # fmt: skip
    out += ["## Inputs: drift per feature", ""]
    for d in r.drift:
        out.append(f"### {d.model}/{d.version} ({d.rows:,} rows)")
        out.append("")
        if d.state != "ok":
            out += [f"No reference: {d.state}.", ""]
            if not d.features:
                continue
        rows = [[f.name, _fmt(f.psi_reference), _fmt(f.psi_before), f.severity]
                for f in d.features[:TOP_FEATURES]]  # fmt: skip
        out.append(_table(["feature", "PSI vs reference", "PSI vs window before",
                           "drift"], rows))  # fmt: skip
        floor = d.noise_floor()
        out += ["", f"Sampling noise alone gives a PSI of about {_fmt(floor['reference'], '.3f')} "
                f"against the reference and {_fmt(floor['before'], '.3f')} against the window "
                f"before ({d.rows:,} and {d.rows_before:,} rows, 10 bins).", ""]  # fmt: skip
        out += [f"Score PSI vs reference {_fmt(d.score_psi)}; joint (PCA error) PSI "
                f"{_fmt(d.joint_psi)}. PSI < 0.1 stable, 0.1-0.25 moderate, above major.",
                ""]  # fmt: skip
    out += ["## Outputs, confidence and latency", ""]
    out += [_outputs_table(r.window, r.previous, r.score_psi_before), ""]
    out += ["## Do the labels confirm it?", ""]
    out += [_labels_table(r.labels, r.labels_before), ""]
    if plots:
        out += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(out)


def _scores(frame: pd.DataFrame) -> np.ndarray:
    if frame.empty:
        return np.zeros(0)
    rows = frame[~frame["variant"].astype(str).str.endswith(SHADOW_SUFFIX)]
    values: np.ndarray = rows["score"].to_numpy(dtype=np.float64)
    out: np.ndarray = values[np.isfinite(values)]
    return out


def plot(r: IncidentReport, frame: pd.DataFrame, out: Path) -> list[str]:
    """scores.png, latency.png and (with drift figures) features.png; their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = frame["ts"]
    now = frame[(ts >= r.start) & (ts < r.end)]
    then = frame[(ts >= r.before) & (ts < r.start)]
    names = []
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = [i / 50 for i in range(51)]
    for part, label in ((then, "window before"), (now, "window")):
        values = _scores(part)
        if values.size:
            ax.hist(values, bins=bins, histtype="step", density=True, label=f"{label} "
                    f"({values.size:,})", log=True)  # fmt: skip
    if len(now):
        threshold = float(now["threshold"].median())
        ax.axvline(threshold, color="grey", linestyle=":", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="score", ylabel="density (log)", title="score distribution")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=110)
    plt.close(fig)
    names.append("scores.png")
    fig, ax = plt.subplots(figsize=(7, 4))
    for part, label in ((then, "window before"), (now, "window")):
        values = np.sort(part["latency_ms"].to_numpy(dtype=np.float64))
        if values.size:
            ax.plot(values, np.arange(1, len(values) + 1) / len(values), label=label)
    ax.set(xlabel="latency (ms)", ylabel="share of predictions", title="latency CDF")
    ax.set_xscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)
    names.append("latency.png")
    ranked = [d for d in r.drift if d.state == "ok" and d.features]
    if ranked:
        d = ranked[0]
        top = d.features[:TOP_FEATURES][::-1]
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(top) + 1.5))
        y = np.arange(len(top))
        ax.barh(y + 0.2, [f.psi_reference or 0.0 for f in top], height=0.4, label="vs reference")
        ax.barh(y - 0.2, [f.psi_before or 0.0 for f in top], height=0.4, label="vs window before")
        ax.set_yticks(y, [f.name for f in top])
        ax.axvline(0.1, color="grey", linestyle=":", linewidth=1)
        ax.set(xlabel="PSI", title=f"features that moved most: {d.model}/{d.version}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "features.png", dpi=110)
        plt.close(fig)
        names.append("features.png")
    return names


def write_incident(r: IncidentReport, frame: pd.DataFrame, out: Path) -> Path:
    """Write report.md, report.json and the plots into `out`; the Markdown's path."""
    out.mkdir(parents=True, exist_ok=True)
    plots = plot(r, frame, out)
    (out / "report.json").write_text(
        json.dumps(r.to_dict(), indent=2, allow_nan=False), encoding="utf-8"
    )
    path = out / "report.md"
    path.write_text(markdown(r, plots), encoding="utf-8")
    return path
