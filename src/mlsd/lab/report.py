"""Writes an experiment's findings: report.md, results.json and its plots as PNG."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlsd.lab.experiment import Experiment, Findings, Row


def _cell(value: str | int | float) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


def markdown_table(rows: list[Row]) -> str:
    """A GitHub markdown table of rows (columns of the first row).

    >>> print(markdown_table([{"batch": 1, "rows/s": 12345.6}, {"batch": 64, "rows/s": 0.5}]))
    | batch | rows/s |
    |---|---|
    | 1 | 12,346 |
    | 64 | 0.5 |
    """
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def write_report(out: Path, experiment: Experiment, findings: Findings, *, quick: bool) -> Path:
    """Write everything into `out` (created); returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    images = []
    for name, draw in findings.plots.items():
        path = out / f"{name}.png"
        draw(path)
        images.append(f"![{name}]({path.name})")
    run = "quick run (--quick): figures are indicative only" if quick else "full run"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n\n".join(
        [
            f"# {experiment.name}",
            f"**Question.** {experiment.question}",
            f"**Answer** ({run}, {when}). {findings.answer}",
            f"## Method\n\n{findings.method}",
            f"## Results\n\n{markdown_table(findings.table)}",
            *images,
        ]
    )
    report = out / "report.md"
    report.write_text(text + "\n", encoding="utf-8")
    payload = {
        "experiment": experiment.name,
        "question": experiment.question,
        "quick": quick,
        "at": when,
        "answer": findings.answer,
        "table": findings.table,
        "results": findings.results,
    }
    (out / "results.json").write_text(json.dumps(_plain(payload), indent=2) + "\n")
    return report
