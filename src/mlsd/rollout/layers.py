"""The routing layers of a rollout: shadow, sticky split (A/B and canary), blue-green.

Each is a `mlsd.inference.routing.RoutingLayer`. Variants are named `{rollout id}:{arm}`
(`r7:champion`, `r7:challenger`, `r7:shadow`, `r7:green`), so the prediction log and the
metrics tell every arm of every rollout apart. A request is assigned by its first
transaction's customer (sticky: the same customer, the same arm, in every process); a V2
tensor request, which names no customer, by its request id.
"""

from __future__ import annotations

from mlsd.inference.observers import ScoringRequest
from mlsd.inference.routing import Route, Variant
from mlsd.rollout.assign import BUCKETS, bucket
from mlsd.rollout.spec import RolloutSpec


def assignment_key(request: ScoringRequest) -> int | str:
    """What a request is assigned by: its customer, else its request id."""
    if request.transactions:
        return request.transactions[0].customer_id
    return request.request_id


def _limit(share_percent: float) -> int:
    return round(share_percent * BUCKETS / 100.0)


class ShadowLayer:
    """Mirrors a share of requests to the challenger, which never answers."""

    def __init__(self, rollout_id: str, challenger: Variant, share_percent: float) -> None:
        self.name = f"rollout:{rollout_id}"
        self.rollout_id = rollout_id
        self.shadow = Variant(f"{rollout_id}:shadow", challenger.endpoint)
        self._limit = _limit(share_percent)

    def route(self, request: ScoringRequest, route: Route) -> Route:
        """Add the shadow for requests in the mirrored share (by request id)."""
        if bucket(self.rollout_id, request.request_id) < self._limit:
            return Route(route.primary, (*route.shadows, self.shadow))
        return route


class SplitLayer:
    """A sticky split of customers: A/B with fixed weights, canary with a share that steps.

    Raising the share only moves customers from the champion to the challenger, never back:
    a customer in the first 1 % stays with the challenger at 5 %, 25 % ... (buckets below
    the limit). `set_share(0)` is the rollback: every request back on the champion at once.
    """

    def __init__(self, rollout_id: str, challenger: Variant, share_percent: float) -> None:
        self.name = f"rollout:{rollout_id}"
        self.rollout_id = rollout_id
        self.challenger = Variant(f"{rollout_id}:challenger", challenger.endpoint)
        self._champion_name = f"{rollout_id}:champion"
        self._champion: Variant | None = None  # made once per endpoint, not per request
        self._limit = _limit(share_percent)

    @property
    def share_percent(self) -> float:
        """The challenger's share of customers now."""
        return self._limit * 100.0 / BUCKETS

    def set_share(self, share_percent: float) -> None:
        """Move the split (a canary step, or 0 to roll back)."""
        if not 0.0 <= share_percent <= 100.0:
            raise ValueError("share_percent must be within [0, 100]")
        self._limit = _limit(share_percent)

    def route(self, request: ScoringRequest, route: Route) -> Route:
        """The challenger for customers below the split (the champion answering if it
        fails), the champion (renamed) otherwise."""
        champion = self._champion
        if champion is None or champion.endpoint is not route.primary.endpoint:
            champion = self._champion = Variant(self._champion_name, route.primary.endpoint)
        if self._limit and bucket(self.rollout_id, assignment_key(request)) < self._limit:
            return Route(self.challenger, route.shadows, fallback=champion)
        return Route(champion, route.shadows)


class BlueGreenLayer:
    """Every request to the green version; the blue one stays loaded for an instant way back."""

    def __init__(self, rollout_id: str, green: Variant) -> None:
        self.name = f"rollout:{rollout_id}"
        self.green = Variant(f"{rollout_id}:green", green.endpoint)

    def route(self, request: ScoringRequest, route: Route) -> Route:
        """Green answers; blue (the endpoint's own version) if green fails."""
        return Route(self.green, route.shadows, fallback=route.primary)


def layer_for(spec: RolloutSpec, challenger: Variant) -> ShadowLayer | SplitLayer | BlueGreenLayer:
    """The layer that carries out `spec` with `challenger` as the challenger's variant."""
    if spec.kind == "shadow":
        return ShadowLayer(spec.id, challenger, spec.share)
    if spec.kind == "bluegreen":
        return BlueGreenLayer(spec.id, challenger)
    return SplitLayer(spec.id, challenger, spec.challenger_share)
