"""Routing layers and an observer for tests of the scoring pipeline (and of what sits on it)."""

from __future__ import annotations

from mlsd.inference.observers import ScoredBatch, ScoringRequest
from mlsd.inference.routing import Route, Variant


class Recording:
    """A routing layer that changes nothing and remembers what it routed."""

    name = "recording"

    def __init__(self) -> None:
        self.entries: list[str] = []

    def route(self, request: ScoringRequest, route: Route) -> Route:
        self.entries.append(request.entry)
        return route


class Shadowing:
    """Adds one shadow variant to every route."""

    name = "shadowing"

    def __init__(self, shadow: Variant) -> None:
        self.shadow = shadow

    def route(self, request: ScoringRequest, route: Route) -> Route:
        return Route(route.primary, (*route.shadows, self.shadow))


class Answering:
    """Sends every request to one variant."""

    name = "answering"

    def __init__(self, variant: Variant) -> None:
        self.variant = variant

    def route(self, request: ScoringRequest, route: Route) -> Route:
        return Route(self.variant, route.shadows)


class Seen:
    """An observer keeping every batch."""

    def __init__(self) -> None:
        self.batches: list[ScoredBatch] = []

    def observe(self, batch: ScoredBatch) -> None:
        self.batches.append(batch)
