"""Runs one experiment with a progress display and writes its report under the home."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mlsd.lab.experiment import LabContext
from mlsd.lab.registry import experiment_named
from mlsd.lab.report import write_report


def run_experiment(
    name: str, home: Path, *, quick: bool = False, console: Console | None = None
) -> Path:
    """Run `name`, write `home/lab/NAME/`; returns the report's path."""
    experiment = experiment_named(name)
    out = home / "lab" / name
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        findings = experiment.run(LabContext(quick=quick, workdir=work, progress=progress))
    report = write_report(out, experiment, findings, quick=quick)
    shutil.rmtree(work, ignore_errors=True)
    return report
