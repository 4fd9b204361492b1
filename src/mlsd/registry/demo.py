"""The registry's part of `mlsd demo`: show what is registered and prove the champion is sound."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mlsd.errors import NotFoundError

if TYPE_CHECKING:
    from rich.console import Console

    from mlsd.settings import Settings


def demo_step(
    settings: Settings | None = None, name: str = "fraud", console: Console | None = None
) -> dict[str, Any]:
    """Print the versions, the champion and the alias history of `name`; verify the champion.

    Verifying means: resolve `models:/NAME@champion`, check every artifact's sha256,
    build the LightGBM booster (when there is one) and diff the recorded environment
    against this process. Returns a summary (URIs, timings in ms, environment diff).
    """
    from rich.console import Console

    from mlsd.registry.formats import LIGHTGBM_ARTIFACT
    from mlsd.registry.loaders import load_lightgbm
    from mlsd.registry.registry import Registry
    from mlsd.registry.render import history_table, version_table, versions_table

    out = console or Console()
    with Registry.open(settings) as registry:
        versions = registry.search(name=name, limit=10)
        aliases = registry.aliases(name)
        out.print(versions_table(versions, {name: aliases}))
        summary: dict[str, Any] = {"versions": len(versions), "aliases": aliases}
        start = time.perf_counter()
        try:
            champion = registry.resolve(f"models:/{name}@champion")
        except NotFoundError:
            out.print(f"[yellow]{name} has no champion yet[/]")
            return summary
        summary["resolve_ms"] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        registry.verify(champion)
        if LIGHTGBM_ARTIFACT in champion.artifacts:
            load_lightgbm(registry, champion)
        summary["verify_and_load_ms"] = (time.perf_counter() - start) * 1e3
        summary["champion"] = champion.uri
        summary["environment_diff"] = registry.environment_diff(champion)
        out.print(version_table(champion, summary["environment_diff"]))
        out.print(history_table(registry.alias_history(name)))
        out.print(
            f"champion {champion.uri}: {len(champion.artifacts)} artifacts sha256-verified, "
            f"resolved in {summary['resolve_ms']:.2f} ms, verified and loaded in "
            f"{summary['verify_and_load_ms']:.1f} ms"
        )
    return summary
