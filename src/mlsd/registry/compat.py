"""Can this process serve that version? Feature-view versions must match the lineage."""

from __future__ import annotations

from collections.abc import Mapping

from mlsd.errors import ConflictError
from mlsd.registry.models import ModelVersion


def check_feature_views(mv: ModelVersion, served: Mapping[str, str]) -> None:
    """ConflictError unless every feature view `mv` was trained on is served at that version."""
    for view, version in mv.lineage.feature_views.items():
        have = served.get(view)
        if have != version:
            raise ConflictError(
                f"{mv.uri} was trained on feature view {view!r} version {version}; "
                f"this server has {'version ' + have if have else 'no such view'}",
                field="feature_views",
            )
