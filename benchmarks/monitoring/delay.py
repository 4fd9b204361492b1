"""Detection delay of the calibrated streaming detectors on the simulator's scenarios.

Run: `python -m benchmarks.monitoring.delay [--rate 1e-5]`

For each scenario (amount shift, card testing, compromise-rate change, seasonal surge) a
1,000-customer world is simulated for 60 days with the event from day 50; every detector
is calibrated on days 28-41 at the same false-alarm rate, then fed days 42-59 in time
order. Prints the false alarms on the quiet days 42-49 and the delay of the first alarm
after the event's start (see `mlsd.monitoring.delay`).
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.progress import track
from rich.table import Table

from mlsd.monitoring.delay import SCENARIOS, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1e-5, help="False alarms per event.")
    args = parser.parse_args()
    rows = []
    started = time.perf_counter()
    for scenario in track(SCENARIOS, description="scenarios"):
        rows += measure(scenario, rate=args.rate)
    table = Table(title=f"detection delay at {args.rate:g} false alarms per event")
    for col in ("scenario", "stream", "detector", "false alarms (quiet)", "delay", "hours"):
        table.add_column(col)
    for d in rows:
        label = "" if d.label_delay_days == 0 else f" + {d.label_delay_days} d of label delay"
        table.add_row(
            d.scenario, d.stream, d.detector, f"{d.false_alarms} in {d.quiet_events:,} events",
            "not detected" if d.delay_events is None else f"{d.delay_events:,} events",
            "-" if d.delay_hours is None else f"{d.delay_hours:.1f} h{label}",
        )  # fmt: skip
    Console(width=140).print(table)
    print(f"total {time.perf_counter() - started:.0f} s (simulation, calibration and streaming)")


if __name__ == "__main__":
    main()
