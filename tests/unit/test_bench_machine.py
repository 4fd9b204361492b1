"""The benchmarks' machine snapshot: steal from /proc/stat deltas, a reference time."""

from __future__ import annotations

from pathlib import Path

from benchmarks.machine import Machine, cpu_times, reference_runs_ms, snapshot, stolen_share

LINE = "cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"


def test_steal_is_the_stolen_share_of_the_jiffies_between_two_readings(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text(LINE.format(user=100, system=50, idle=800, steal=50))
    before = cpu_times(stat)
    assert before == (50, 1000)
    stat.write_text(LINE.format(user=150, system=60, idle=815, steal=75))  # 100 more, 25 stolen
    assert stolen_share(before, cpu_times(stat)) == 25.0


def test_no_proc_stat_or_no_time_gone_gives_no_steal_figure(tmp_path: Path) -> None:
    assert cpu_times(tmp_path / "missing") is None
    (tmp_path / "odd").write_text("intr 1 2 3\n")
    assert cpu_times(tmp_path / "odd") is None
    (tmp_path / "blank").write_text("\n")
    assert cpu_times(tmp_path / "blank") is None  # no IndexError
    (tmp_path / "text").write_text("cpu a b c d e f g h\n")
    assert cpu_times(tmp_path / "text") is None  # no ValueError
    assert stolen_share(None, (1, 2)) is None
    assert stolen_share((1, 10), (1, 10)) is None  # no jiffy passed: no share, not a NaN


def test_a_snapshot_times_the_reference_and_describes_itself() -> None:
    machine = snapshot(sample_s=0.05)
    assert isinstance(machine, Machine)
    assert machine.cpus >= 1
    low, high = machine.reference_range_ms
    assert 0 < low <= machine.reference_ms <= high
    line = machine.describe()
    assert line.startswith("machine: ")
    assert "reference workload" in line
    assert machine.as_dict()["reference_ms"] == machine.reference_ms
    assert len(reference_runs_ms(runs=2)) == 2
