"""What do quantization, pruning and distillation buy on the fraud model, and what do they cost?

A LightGBM champion trained by the handbook protocol on a simulated world of its own is
compressed by every method of `mlsd.compression` (the same code as `mlsd compress`); each
variant is measured on the champion's own handbook test block and timed in the serving
runtimes. `findings` turns a `Compression` into the report, for the lab and the CLI alike.
"""

from __future__ import annotations

from dataclasses import asdict

from mlsd.compression.calibration import describe
from mlsd.compression.measure import BATCHES, Budget
from mlsd.compression.methods import Options
from mlsd.compression.report import GPU_NOTE, answer, pareto_plot, table
from mlsd.compression.run import Compression
from mlsd.compression.width_probe import WIDTHS, WidthPoint, probe, summary
from mlsd.lab.experiment import Findings, LabContext

QUESTION = (
    "What do quantization (fp16, int8 dynamic and static), pruning and distillation buy on "
    "the fraud model in latency, throughput, size, memory and cost, and what do they lose in "
    "AUC, AP and Card Precision@100 on the handbook test block?"
)


def findings(
    result: Compression,
    *,
    quick: bool,
    widths: list[WidthPoint] | None = None,
    registered_in: str = "the registry",
) -> Findings:
    """The report of one compression run: answer, method, the table, the Pareto plot; with
    `widths` (`width_probe.probe`), where int8 starts to pay."""
    source = f"source v{result.source.version}"
    rows = table(result.measured, source)
    calibrated = next((v.calibration for v in result.variants if v.calibration), None)
    skipped = "; ".join(f"{m}: {why}" for m, why in result.skipped.items()) or "none"
    registered = ", ".join(f"{n} → {mv.uri}" for n, mv in result.registered.items()) or "none"
    blocks = result.blocks
    method = (
        f"Source {result.source.uri} ({result.source.flavor}). Its handbook block rebuilt "
        f"from its lineage through the feature store: {len(blocks.train):,} training rows, "
        f"{len(blocks.valid):,} delay-day rows (the unlabelled traffic students are "
        f"distilled on, and with their labels the validation set for early stopping, "
        f"pruning, mixed-precision sensitivity and each variant's threshold), "
        f"{len(blocks.test):,} test rows ({int(blocks.y('test').sum())} frauds, "
        "known-compromised cards removed). AUC, AP and CP@100 of each variant are on the test "
        "rows, scored by its ONNX graph as served. Timings use `mlsd.inference.runtimes` "
        "(ONNX Runtime with 1 intra-op and 1 inter-op thread; LightGBM native, 1 thread, for "
        "tree variants): one-row p50/p99 over repeated calls, rows/s on ready batches of "
        f"{', '.join(str(b) for b in BATCHES)} (median of 3 loops); cost per million "
        f"predictions from the process CPU-seconds per row at batch 1,024 at "
        f"${result.usd_per_core_hour:g} per core-hour (an assumed on-demand cloud vCPU "
        "price: pass your own with --core-hour-usd); RSS = growth of resident memory per "
        "loaded copy of the runtime (averaged over several copies; 0 means below the "
        f"allocator's granularity). Static int8 calibration: {describe(calibrated)}. "
        f"Skipped methods: {skipped}. Registered in {registered_in}: {registered}. {GPU_NOTE}"
    )
    text = answer(result.measured, source, result.usd_per_core_hour)
    if widths:
        text += (
            " Where int8 starts to pay, measured with the same graph builder, quantizers and "
            f"runtime on MLPs of hidden width {', '.join(str(w) for w in WIDTHS)} (random "
            f"weights, speed only): {summary(widths)}."
        )
    return Findings(
        answer=text,
        method=method,
        table=rows,
        results={
            "source": result.source.uri,
            "measured": [m.to_dict() for m in result.measured],
            "variants": {
                v.name: {"method": v.method, "params": v.params, "parent": v.parent}
                for v in result.variants
            },
            "registered": {n: mv.uri for n, mv in result.registered.items()},
            "skipped": result.skipped,
            "refused": result.refused,
            "usd_per_core_hour": result.usd_per_core_hour,
            "quick": quick,
            "int8_width_probe": [asdict(p) for p in widths or []],
        },
        plots={"pareto": pareto_plot(result.measured, source)},
    )


class CompressionExperiment:
    """Every compression method on a LightGBM champion, measured."""

    name = "compression"
    question = QUESTION

    def run(self, ctx: LabContext) -> Findings:
        """Build a world, compress its champion, report."""
        from mlsd.compression.run import compress
        from mlsd.compression.world import build_world
        from mlsd.features.store import FeatureStore
        from mlsd.registry import Registry

        customers, days = (300, 45) if ctx.quick else (1500, 100)
        with ctx.step("simulate, build features, train the champion", 1) as advance:
            settings = build_world(
                ctx.workdir / "world", customers=customers, days=days, seed=ctx.seed
            )
            advance()
        options = Options(mlp_iterations=15 if ctx.quick else 60, seed=ctx.seed)
        store = FeatureStore.open(settings)
        try:
            with Registry.open(settings) as registry, ctx.step("variants", 25) as advance:
                result = compress(
                    registry,
                    "fraud@champion",
                    store,
                    options=options,
                    budget=Budget.quick() if ctx.quick else Budget(),
                    step=lambda _: advance(),
                )
        finally:
            store.close()
        with ctx.step("int8 at growing layer widths", 1) as advance:
            widths = probe(0.05 if ctx.quick else 0.3, seed=ctx.seed)
            advance()
        scratch = "the run's scratch registry (removed with the run)"
        return findings(result, quick=ctx.quick, widths=widths, registered_in=scratch)


EXPERIMENT = CompressionExperiment()
