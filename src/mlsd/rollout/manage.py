"""Start, promote, abort and roll back rollouts: the one place the CLI and the admin API call.

Everything is checked before anything is written, and each change is one transaction in the
registry database, so a refused command leaves the running rollout as it was. Promotion
moves the spec's alias to the challenger, recorded in the alias history with the analysis
that justified it; a rollback of a promoted rollout moves it back to the champion the spec
pinned (the last known good version).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mlsd.errors import ConflictError, NotFoundError, ValidationError
from mlsd.registry import Registry
from mlsd.registry.models import utcnow
from mlsd.registry.rollouts import AliasTarget, RolloutEvent, RolloutRecord
from mlsd.rollout.spec import RolloutSpec

#: The feature views (and versions) the serving side serves: a challenger trained on other
#: ones cannot be served.
ServedViews = Callable[[], Mapping[str, str]]


@dataclass(frozen=True)
class Rollout:
    """A stored rollout with its parsed spec."""

    record: RolloutRecord
    spec: RolloutSpec


def parsed(record: RolloutRecord) -> Rollout:
    """The record and its spec."""
    return Rollout(record, RolloutSpec.model_validate_json(record.spec))


def event(
    record: RolloutRecord, kind: str, decision: str, actor: str, *, reason: str = "", **more: object
) -> RolloutEvent:
    """A history entry at the rollout's current step and share (unless `more` says others)."""
    fields: dict[str, object] = {
        "rollout_id": record.id, "at": utcnow(), "kind": kind, "step": record.step,
        "share": record.share, "decision": decision, "actor": actor, "reason": reason,
    }  # fmt: skip
    fields.update(more)
    return RolloutEvent.model_validate(fields)


class RolloutManager:
    """Rollout commands on one registry (and the views the servers serve, to refuse a
    challenger they could not)."""

    def __init__(self, registry: Registry, served_views: ServedViews | None = None) -> None:
        self.registry = registry
        self.store = registry.rollouts
        self._served_views = served_views

    # -- reading ------------------------------------------------------------------------------

    def get(self, rollout_id: str) -> Rollout:
        """One rollout (NotFoundError naming it)."""
        return parsed(self.store.get_rollout(rollout_id))

    def rollouts(self, endpoint: str | None = None, *, active_only: bool = False) -> list[Rollout]:
        """Rollouts, newest first."""
        return [parsed(r) for r in self.store.list_rollouts(endpoint, active_only=active_only)]

    def history(self, rollout_id: str) -> list[RolloutEvent]:
        """Every event of a rollout, oldest first."""
        return self.store.rollout_events(rollout_id)

    # -- commands -----------------------------------------------------------------------------

    def start(self, spec: RolloutSpec, *, actor: str) -> Rollout:
        """Check `spec` against the registry and the served features, then store it running."""
        self._check(spec)
        now = utcnow()
        record = RolloutRecord(
            id=spec.id, endpoint=spec.endpoint, kind=spec.kind, spec=spec.model_dump_json(),
            state="running", step=0, share=spec.challenger_share, started_at=now,
            updated_at=now,
        )  # fmt: skip
        start = event(
            record, "start", "start", actor,
            reason=f"{spec.kind}: {spec.endpoint}/{spec.challenger} beside {spec.champion}",
        )  # fmt: skip
        self.store.create_rollout(record, start)
        return Rollout(record, spec)

    def promote(self, rollout_id: str, *, actor: str, reason: str = "") -> Rollout:
        """Move the alias to the challenger and end the rollout (running ones only)."""
        found = self.get(rollout_id)
        spec = found.spec
        why = reason or f"promoted by {actor}"
        last = self._last_check(rollout_id)
        if last and not reason:
            why += f"; last check: {last}"
        record = self.store.transition(
            rollout_id,
            event(found.record, "promote", "promote", actor, reason=why, share=100.0),
            move=AliasTarget(
                name=spec.endpoint, alias=spec.alias, version=spec.challenger, kind="promote"
            ),
            state="promoted",
            share=100.0,
        )
        return Rollout(record, spec)

    def abort(self, rollout_id: str, *, actor: str, reason: str = "") -> Rollout:
        """Stop a running rollout: all traffic back on the champion, nothing promoted."""
        found = self.get(rollout_id)
        record = self.store.transition(
            rollout_id,
            event(found.record, "abort", "abort", actor, reason=reason or f"aborted by {actor}"),
            state="aborted",
            share=0.0,
        )
        return Rollout(record, found.spec)

    def rollback(
        self,
        rollout_id: str,
        *,
        actor: str,
        reason: str = "",
        figures: dict[str, object] | None = None,
    ) -> Rollout:
        """Back to the pinned champion: a running rollout goes to 0 %, a promoted one moves
        the alias back to the spec's champion version."""
        found = self.get(rollout_id)
        spec = found.spec
        move = None
        if found.record.state == "promoted":
            move = AliasTarget(
                name=spec.endpoint, alias=spec.alias, version=spec.champion, kind="rollback"
            )
        why = reason or f"rolled back by {actor} to {spec.endpoint}/{spec.champion}"
        record = self.store.transition(
            rollout_id,
            event(found.record, "rollback", "rollback", actor, reason=why, share=0.0,
                  figures=figures or {}),
            expect_states=("running", "promoted"),
            move=move,
            state="rolled_back",
            share=0.0,
        )  # fmt: skip
        return Rollout(record, spec)

    # -- checks -------------------------------------------------------------------------------

    def _last_check(self, rollout_id: str) -> str:
        checks = [e for e in self.history(rollout_id) if e.kind in ("check", "step")]
        return checks[-1].reason if checks else ""

    def _check(self, spec: RolloutSpec) -> None:
        """Refuse a spec the registry or the servers cannot carry out, naming the field."""
        aliases = self.registry.aliases(spec.endpoint) if self._known(spec.endpoint) else None
        if aliases is None:
            raise NotFoundError(f"no registered model {spec.endpoint!r}", field="endpoint")
        current = aliases.get(spec.alias)
        if current is None:
            raise NotFoundError(
                f"{spec.endpoint} has no alias {spec.alias!r} to roll out against", field="alias"
            )
        if current != spec.champion:
            raise ConflictError(
                f"champion: {spec.endpoint}@{spec.alias} is version {current}, not {spec.champion}",
                field="champion",
            )
        try:
            challenger = self.registry.get(spec.endpoint, spec.challenger)
        except NotFoundError:
            raise NotFoundError(
                f"challenger: {spec.endpoint} has no version {spec.challenger}", field="challenger"
            ) from None
        if challenger.status != "ready":
            raise ConflictError(
                f"challenger: {challenger.uri} is {challenger.status}", field="challenger"
            )
        if self._served_views is None:
            return
        served = self._served_views()
        for view, version in challenger.lineage.feature_views.items():
            if served.get(view) != version:
                raise ConflictError(
                    f"challenger: {challenger.uri} needs feature view {view} version "
                    f"{version[:12]}, but the feature store serves {str(served.get(view))[:12]}",
                    field="challenger",
                )

    def _known(self, name: str) -> bool:
        try:
            self.registry.latest(name)
        except NotFoundError:
            return False
        except ValidationError:
            raise ValidationError(
                f"endpoint: invalid model name {name!r}", field="endpoint"
            ) from None
        return True
