"""What an experiment is: a question, a run on real components, findings to report."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.progress import Progress, TaskID

#: A table row: column -> value, in the column order of the first row.
Row = dict[str, str | int | float]
#: Draws one plot into the PNG file it is given.
PlotFn = Callable[[Path], None]


@dataclass
class Findings:
    """What one run found: the answer first (measured numbers), then how, then the data."""

    answer: str
    method: str
    table: list[Row]
    results: dict[str, Any]
    plots: dict[str, PlotFn] = field(default_factory=dict)


@dataclass
class LabContext:
    """What a run gets: quick or full, a scratch folder of its own, a progress display."""

    quick: bool
    workdir: Path
    progress: Progress | None = None
    seed: int = 7

    @contextmanager
    def step(self, description: str, total: int) -> Iterator[Callable[[], None]]:
        """A progress bar of `total` steps; the yielded function advances it by one."""
        if self.progress is None:
            yield lambda: None
            return
        task: TaskID = self.progress.add_task(description, total=total)
        try:
            yield lambda: self.progress.advance(task) if self.progress else None
        finally:
            self.progress.remove_task(task)


class Experiment(Protocol):
    """One module of the lab: a name, the question it answers, and a run."""

    @property
    def name(self) -> str:
        """What `mlsd lab run` calls it (kebab-case)."""
        ...

    @property
    def question(self) -> str:
        """The design question, as asked."""
        ...

    def run(self, ctx: LabContext) -> Findings:
        """Measure, on the real components, and say what was found."""
        ...
