"""The lab: one experiment per module, each answering one question of ML system design.

`mlsd lab list` names them; `mlsd lab run NAME [--quick]` runs one on the real components
(the same pipeline, batcher, stores and runtimes that serve) and writes
`$MLSD_HOME/lab/NAME/`: `report.md` (the question, the answer in measured numbers first, the
method, the table), its plots as PNG, and `results.json`. `--quick` runs in seconds, for the
test suite; the full run is what a report quotes.
"""

from mlsd.lab.experiment import Experiment, Findings, LabContext
from mlsd.lab.registry import EXPERIMENTS, experiment_named
from mlsd.lab.runner import run_experiment

__all__ = [
    "EXPERIMENTS",
    "Experiment",
    "Findings",
    "LabContext",
    "experiment_named",
    "run_experiment",
]
