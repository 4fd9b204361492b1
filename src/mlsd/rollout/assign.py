"""Sticky assignment: the same customer lands in the same bucket in every process.

Python's `hash()` is salted per process, so it cannot be used: several `mlsd serve`
processes must route a customer identically. BLAKE2b of the rollout id and the key is.
"""

from __future__ import annotations

import hashlib

BUCKETS = 10_000  # a share is given in hundredths of a percent


def bucket(rollout_id: str, key: int | str) -> int:
    """The bucket (0..9,999) of `key` in rollout `rollout_id`, stable across processes.

    >>> bucket("r1", 42) == bucket("r1", 42)
    True
    >>> 0 <= bucket("r1", 42) < 10_000
    True
    >>> bucket("r1", 42) != bucket("r2", 42)  # another rollout shuffles customers anew
    True
    """
    digest = hashlib.blake2b(f"{rollout_id}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS
