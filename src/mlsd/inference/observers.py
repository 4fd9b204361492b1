"""What every scoring entry point produces, and who gets to see it.

A `ScoredBatch` is the whole truth about one scoring call for one variant: the request
(which entry point, which transactions or tensor rows), the version that answered, the
feature rows it saw, scores, decisions, cache hits, feature statuses and latency. The
pipeline hands each batch, the primary's and every shadow's, to its observers: the
prediction log and the metrics now; shadow comparison, canary analysis, drift, explanation
sampling and audit later, all registered the same way, none touching a request handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from mlsd.data.transaction import Transaction
from mlsd.errors import IntegrityError
from mlsd.inference.spec import LoadedModel

#: The entry points that score: REST v1, Open Inference Protocol V2, async jobs, streams,
#: and the nightly batch (`mlsd score-batch`).
Entry = Literal["score", "v2", "job", "stream", "batch"]
#: A primary answers the caller; a shadow is scored on the side and never answers.
Role = Literal["primary", "shadow"]


@dataclass(slots=True)  # not frozen: a frozen init costs ~2x, on every request
class ScoringRequest:
    """One call into the pipeline: raw transactions, or ready feature rows (V2 tensors).

    `model` names the endpoint (None: the default one); `version` pins one loaded version
    (V2 `/versions/{v}`); `row_ids`, when given, are the log ids of the rows (jobs use
    `{job}:{transaction}`), otherwise they derive from `request_id`. `logged` holds the
    `(row id, variant)` pairs already in the prediction log (a job run again after an
    interrupted run): scored again, not logged again.
    """

    request_id: str
    entry: Entry
    transactions: Sequence[Transaction] = ()
    values: np.ndarray | None = None
    model: str | None = None
    version: int | None = None
    row_ids: Sequence[str] | None = None
    logged: Collection[tuple[str, str]] | None = None

    @property
    def size(self) -> int:
        """Rows in the request."""
        return len(self.values) if self.values is not None else len(self.transactions)


def decide(scores: Sequence[float], threshold: float) -> list[str]:
    """`fraud` where a score reaches the threshold, else `legit`; never on a non-finite score.

    >>> decide([0.2, 0.5, 0.9], 0.5)
    ['legit', 'fraud', 'fraud']
    >>> decide([float("nan")], 0.5)
    Traceback (most recent call last):
    ...
    mlsd.errors.IntegrityError: the model returned score nan, not a probability in [0, 1]
    """
    out = []
    for score in scores:
        if not 0.0 <= score <= 1.0:  # also false for NaN
            raise IntegrityError(f"the model returned score {score}, not a probability in [0, 1]")
        out.append("fraud" if score >= threshold else "legit")
    return out


@dataclass(slots=True)  # not frozen (hot path); observers must not change it
class ScoredBatch:
    """One variant's answer to one request, for the caller, the log and every observer."""

    request: ScoringRequest
    variant: str
    role: Role
    model: LoadedModel
    values: np.ndarray
    scores: np.ndarray
    decisions: list[str]
    cached: np.ndarray
    #: One {feature: status} per row (present, missing, expired, unavailable, request);
    #: empty for tensor rows, which come without a feature store.
    statuses: list[dict[str, str]]
    degraded: bool
    latency_s: float

    @property
    def threshold(self) -> float:
        """The decision threshold the answering version was served with."""
        return self.model.threshold


class ScoringObserver(Protocol):
    """Sees every scored batch, primary and shadow, of every entry point.

    Called on the scoring path (the event loop or a worker thread) before the caller gets
    its answer: keep it to microseconds, hand heavy work to a queue of your own. An
    observer that raises is logged and skipped; it never fails the request.
    """

    def observe(self, batch: ScoredBatch) -> None:
        """Take note of one batch."""
        ...


#: `TickObserver.observe_soon`.
TickObserve = Callable[[ScoredBatch], Awaitable[None]]


@runtime_checkable
class TickObserver(ScoringObserver, Protocol):
    """An observer that can take the event loop's batches together, one tick at a time
    (the prediction log: one append per tick, `mlsd.inference.log_observer`).

    `observe_soon` is called on the event loop instead of `observe` for a request the loop
    scored; the request awaits what it returns before answering. Other callers (threads,
    shadows) still call `observe`.
    """

    def observe_soon(self, batch: ScoredBatch) -> Awaitable[None]:
        """Take `batch` with the rest of this tick; done once it is observed."""
        ...


class FailureObserver(Protocol):
    """Sees every variant that failed to score a request (a canary's error rate)."""

    def failed(self, request: ScoringRequest, variant: str, role: Role, latency_s: float) -> None:
        """Take note of one failed scoring call of `variant` (the error itself is logged)."""
        ...


#: How the shadow scorer process builds an observer's twin: "module:callable" and its
#: arguments (picklable); the callable is given the process's registry first.
TwinSpec = tuple[str, tuple[Any, ...]]


class ShadowTwin(Protocol):
    """An observer's work on shadows, done in the shadow scorer process instead of the server
    (`mlsd.inference.shadow_child`): it sees the shadow batches the process scored and sums
    them up for the observer it stands for."""

    def summarize(self, batches: Sequence[ScoredBatch]) -> Any:
        """What the observer needs of one variant's scored shadows in a job: picklable and
        compact (counts, bins), never a row each; None when it needs nothing."""
        ...


@runtime_checkable
class TwinnedObserver(ScoringObserver, Protocol):
    """An observer whose shadow work a twin in the shadow scorer process can do, with the
    same result: the server then gets one summary per variant and job, not a batch per
    shadow (a few µs of the server's GIL per shadow saved). Other callers (primaries, the
    shadow thread) still call `observe`."""

    def shadow_twin(self) -> TwinSpec:
        """What builds the twin in the shadow scorer process (`ShadowTwin`)."""
        ...

    def observe_summary(self, variant: str, model: LoadedModel, summary: Any) -> None:
        """Take the twin's summary of `variant`'s shadows scored by `model`'s version (called
        on the shadow process's courier thread)."""
        ...
