"""Routing: which variant answers a request, and which score it on the side.

A variant is a named endpoint (`champion`, `challenger`, `canary`, a pinned `v3`). Each
request starts on the default route of its endpoint name (or its pinned version); then every
installed `RoutingLayer`, in order, may change the primary or add shadows. Shadow, A/B,
canary and blue-green rollouts are such layers (`mlsd.rollout`); handlers never branch on a
rollout, and cached traffic is routed like any other because routing comes first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mlsd.inference.endpoint import Endpoint
from mlsd.inference.observers import ScoringRequest


@dataclass(frozen=True, slots=True)
class Variant:
    """A named way to answer: the endpoint whose current version scores the rows."""

    name: str
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class Route:
    """The variant that answers a request, the variants that score it in shadow, and the
    variant that answers instead if the primary fails (a canary's champion: a challenger
    that raises costs its customers no failed request, and its error is still counted)."""

    primary: Variant
    shadows: tuple[Variant, ...] = ()
    fallback: Variant | None = None


class RoutingLayer(Protocol):
    """Turns the route chosen below it into the route of this request.

    Called once per request on the scoring path: a dictionary read and a hash, not a
    registry query.
    """

    @property
    def name(self) -> str:
        """What the layer is called in `/v1/admin` answers and logs."""
        ...

    def route(self, request: ScoringRequest, route: Route) -> Route:
        """The route for `request`, given the route the layers below chose."""
        ...
