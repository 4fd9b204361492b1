"""Progressive delivery: rollout specs and the routing layers that carry them out.

A rollout puts a challenger version beside an endpoint's champion: in **shadow** (a share of
requests also scored by the challenger, off the response path), **A/B** (a sticky split by a
hash of the customer), **canary** (a sticky split whose challenger share steps up) or
**blue-green** (all traffic to a pre-validated version, the old one kept warm). Each kind is a
`RoutingLayer` of the scoring pipeline (`mlsd.inference.routing`), so every entry point is
routed alike and every record names its arm.
"""

from mlsd.rollout.assign import bucket
from mlsd.rollout.layers import BlueGreenLayer, ShadowLayer, SplitLayer, layer_for
from mlsd.rollout.spec import RolloutKind, RolloutSpec

__all__ = [
    "BlueGreenLayer",
    "RolloutKind",
    "RolloutSpec",
    "ShadowLayer",
    "SplitLayer",
    "bucket",
    "layer_for",
]
