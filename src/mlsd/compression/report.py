"""The compression report: one table, one Pareto plot, the answer in numbers, the GPU sum.

The Pareto front is drawn over (one-row p50 latency, test AP): a variant is on it when no
other is both faster and more accurate. Ratios are against the source measured in the same
run, in the same runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlsd.compression.measure import BATCHES, Measured

Row = dict[str, str | int | float]

GPU_NOTE = (
    "No GPU or TPU is on this machine, so none was measured. To price your hardware: run "
    "the same variant there at your batch size and read its rows/s (R) and the device's "
    "price per hour (P, or for a CPU core: CPU-seconds per row x 1e6 / 3600 x $/core-hour); "
    "cost per million predictions = P / (3600 x R) x 1e6, and one-row latency = the p50 "
    "you measure at batch 1 plus the host-to-device copy. A GPU pays when R grows with the "
    "batch faster than P exceeds a CPU core's price: for tree ensembles of this size on one "
    "row it rarely does."
)


INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def int8_instructions() -> list[str]:
    """The int8 dot-product instruction sets this CPU reports (/proc/cpuinfo; [] if unknown)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            flags = next(
                (line.split(":", 1)[1].split() for line in info if line.startswith("flags")), []
            )
    except OSError:
        return []
    return [flag for flag in INT8_FLAGS if flag in flags]


def table(measured: list[Measured], source: str) -> list[Row]:
    """One row per variant and runtime, with speed and size ratios against the source."""
    base = {m.runtime: m for m in measured if m.variant == source}
    rows: list[Row] = []
    for m in measured:
        ref = base.get(m.runtime) or base["onnxruntime"]
        row: Row = {
            "variant": m.variant,
            "runtime": m.runtime,
            "AUC": m.auc_roc,
            "AP": m.average_precision,
            "CP@100": m.card_precision_at_100,
            "p50 µs": m.p50_us,
            "p99 µs": m.p99_us,
        }
        for batch in BATCHES:
            row[f"rows/s @{batch}"] = m.rows_per_s[batch]
        row["× rows/s @1024"] = m.rows_per_s[1024] / ref.rows_per_s[1024]
        row["size KB"] = m.size_bytes / 1024
        row["× size"] = m.size_bytes / ref.size_bytes
        row["RSS MB"] = m.rss_mb
        row["$ / M pred."] = m.usd_per_million
        rows.append(row)
    return rows


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both (lower x, higher y).

    >>> pareto([(1.0, 0.5), (2.0, 0.6), (3.0, 0.55), (0.5, 0.1)])
    [0, 1, 3]
    """
    front = []
    for i, (x, y) in enumerate(points):
        beaten = any(
            (x2 <= x and y2 >= y) and (x2 < x or y2 > y)
            for j, (x2, y2) in enumerate(points)
            if j != i
        )
        if not beaten:
            front.append(i)
    return front


def answer(measured: list[Measured], source: str, usd_per_core_hour: float) -> str:
    """The measured answer: the source, the fastest on the front, the int8 story, the cost."""
    onnx = [m for m in measured if m.runtime == "onnxruntime"]
    src = next(m for m in onnx if m.variant == source)
    front = [onnx[i] for i in pareto([(m.p50_us, m.average_precision) for m in onnx])]
    near = [m for m in onnx if m.average_precision >= 0.98 * src.average_precision and m is not src]
    parts = [
        f"The source ({source}) scores test AP {src.average_precision:.3f}, AUC "
        f"{src.auc_roc:.3f}, CP@100 {src.card_precision_at_100:.3f}; in ONNX Runtime one row "
        f"takes {src.p50_us:.1f} µs p50 ({src.p99_us:.1f} µs p99), a 1,024-row batch "
        f"{src.rows_per_s[1024]:,.0f} rows/s; {src.size_bytes / 1024:,.0f} KB, "
        f"${src.usd_per_million:.5f} per million predictions at ${usd_per_core_hour:g}/core-hour."
    ]
    if near:
        best = max(near, key=lambda m: m.rows_per_s[1024])
        parts.append(
            f"Keeping at least 98 % of its AP, {best.variant} (AP {best.average_precision:.3f}) "
            "serves "
            f"{best.rows_per_s[1024] / src.rows_per_s[1024]:.1f}× the rows/s at batch 1,024 in "
            f"{best.size_bytes / src.size_bytes:.0%} of the size."
        )
    parts.append(
        "Pareto front (one-row p50 vs AP): "
        + ", ".join(f"{m.variant} ({m.p50_us:.1f} µs, AP {m.average_precision:.3f})" for m in front)
        + "."
    )
    fp32 = next((m for m in onnx if m.variant == "student-mlp-fp32"), None)
    int8 = [m for m in onnx if "int8" in m.variant]
    if fp32 and int8:
        slower_row = [m for m in int8 if m.p50_us > fp32.p50_us]
        slower_batch = [m for m in int8 if m.rows_per_s[1024] < fp32.rows_per_s[1024]]
        figures = ", ".join(
            f"{m.variant.split('-mlp-')[-1]} {m.p50_us:.1f} µs / {m.rows_per_s[1024]:,.0f}"
            for m in int8
        )
        parts.append(
            f"Honest where it hurts: {len(slower_row)} of {len(int8)} int8 variants are slower "
            f"than the fp32 MLP they came from on one row, {len(slower_batch)} of {len(int8)} at "
            f"batch 1,024 (fp32 {fp32.p50_us:.1f} µs / {fp32.rows_per_s[1024]:,.0f} rows/s; "
            f"{figures})."
        )
        if len(slower_row) * 2 > len(int8):
            found = int8_instructions()
            cpu = (
                f"This CPU has int8 dot-product instructions ({', '.join(found)}), so they are "
                "not what is missing: "
                if found
                else "This CPU reports no int8 dot-product instructions (VNNI, AMX), and "
            )
            parts.append(
                cpu + "a 15-input MLP of 32+16 units does about 1,000 multiply-adds per row, "
                "and the QuantizeLinear/DequantizeLinear pairs (or the dynamic range "
                "computation) around each int8 MatMul cost more than the int8 arithmetic saves. "
                "int8 pays on layers of hundreds of units and more, where arithmetic and memory "
                "bandwidth dominate; the few KB it saves here matter to nobody."
            )
    return " ".join(parts)


def pareto_plot(measured: list[Measured], source: str) -> Callable[[Path], None]:
    """AP against one-row p50 (log), one marker per variant (ONNX Runtime), front drawn."""

    def draw(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        onnx = [m for m in measured if m.runtime == "onnxruntime"]
        fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))

        def latency(m: Measured) -> float:
            return m.p50_us

        def per_row(m: Measured) -> float:
            return 1e6 / m.rows_per_s[1024]

        axes: list[tuple[Any, Callable[[Measured], float], str]] = [
            (left, latency, "one-row p50 latency (µs), ONNX Runtime 1 thread"),
            (right, per_row, "µs per row at batch 1,024"),
        ]
        for axis, x_of, label in axes:
            points = [(x_of(m), m.average_precision) for m in onnx]
            front = sorted(pareto(points), key=lambda i: points[i][0])
            for m, (x, y) in zip(onnx, points, strict=True):
                colour = (
                    "tab:red"
                    if m.variant == source
                    else ("tab:green" if m.family == "tree" else "tab:blue")
                )
                axis.scatter(
                    [x], [y], s=20 + min(m.size_bytes / 1024, 400), color=colour, alpha=0.7
                )
                axis.annotate(
                    m.variant, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points"
                )
            axis.plot(
                [points[i][0] for i in front],
                [points[i][1] for i in front],
                "k--",
                lw=1,
                label="Pareto front",
            )
            axis.set(xscale="log", xlabel=label, ylabel="test average precision")
            axis.legend(loc="lower right")
        left.set_title("accuracy vs latency (marker area ~ size on disk)")
        right.set_title("accuracy vs throughput cost; red = source, green = trees")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    return draw
