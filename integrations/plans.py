"""What every integration shares: plans that describe a change before it is made, and results after.

A plan is computed from a snapshot of the target, shown on the approval card, and executed only if the target
still matches that snapshot; approvals are bound to the exact change they approved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar


class IntegrationError(Exception):
    """The external system refused or failed; the message is shown to the channel verbatim enough to act on."""

    def __init__(
        self, message: str, *, status: int | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details or {}


class TargetChanged(IntegrationError):
    """The target is no longer what the plan was made from (someone deployed or changed it); re-plan."""


class NothingToDo(IntegrationError):
    """The target already is in the requested state."""


@dataclass(frozen=True)
class ActionResult:
    """The outcome of executing a plan (or of a dry run, which sends nothing)."""

    ok: bool
    summary: str  # one line for the channel, e.g. "payments: rolled back to revision 6 (image app:1.4.1)"
    dry_run: bool = False
    request: dict[str, Any] = field(default_factory=dict)  # what was (or would be) sent, for the timeline
    details: dict[str, Any] = field(default_factory=dict)  # what changed, e.g. new revision / version


@dataclass(frozen=True)
class Prepared:
    """A change checked against its plan and ready to go: what it would do, the request, and how to send it."""

    would: str  # for a dry run: "DRY RUN: would <this>"
    request: dict[str, Any]  # what is (or would be) sent, for the timeline
    send: Callable[[], ActionResult]


class Integration:
    """An integration that changes an outside system. Its methods prepare each change; whether a change is
    sent or only described (dry_run) is decided here, once, for every integration."""

    def __init__(self, *, dry_run: bool = False) -> None:
        self.dry_run = dry_run

    def _apply(self, prepared: Prepared) -> ActionResult:
        if self.dry_run:
            return ActionResult(
                ok=True, dry_run=True, summary=f"DRY RUN: would {prepared.would}", request=prepared.request
            )
        return prepared.send()


@dataclass(frozen=True)
class KindPlan:
    """A remediation kind's plan, as TARS stores it: what approvers see, and what must still hold when it runs."""

    describe: str  # "revision 7 → 6 (image app:1.4.2 → app:1.4.1)"
    params: dict[str, Any]  # exact parameters `apply` is called with after approval
    snapshot: dict[str, Any]  # facts the plan was made from; the run is refused if they changed
    last_deployed_at: datetime | None = None
    audit: dict[str, Any] | None = None  # what may go in the timeline when params hold secrets


Progress = Callable[[str], None]


class RemediationKind(Protocol):
    """One kind of change TARS can make (`kubernetes_rollback`, `ssm_flag`, ...): plan → apply → follow.

    `target` is the service's platform entry from the catalog (namespace and deployment, cluster and service,
    ...), empty for kinds whose target is in `params` (a flag's path, a Lambda function).
    """

    def plan(self, target: Mapping[str, Any], params: Mapping[str, Any]) -> KindPlan: ...

    def apply(self, target: Mapping[str, Any], params: Mapping[str, Any]) -> ActionResult: ...

    def follow(
        self, target: Mapping[str, Any], on_progress: Progress, *, timeout: float, poll: float
    ) -> tuple[bool, str] | None:
        """Watch what `apply` started until it settles: (succeeded, status), or None when nothing rolls out."""
        ...


Ref = TypeVar("Ref")
RefIn = TypeVar("RefIn", contravariant=True)
Rollout = Literal["rollback", "scale"]


class RolloutClient(Protocol[RefIn]):
    """A platform that rolls a service back or scales it, and whose rollout can be followed (Kubernetes, ECS)."""

    def plan_rollback(self, ref: RefIn, to_revision: int | None) -> Any: ...

    def rollback(self, plan: Any) -> ActionResult: ...

    def plan_scale(self, ref: RefIn, count: int) -> Any: ...

    def scale(self, plan: Any) -> ActionResult: ...

    def snapshot(self, ref: RefIn) -> Any: ...

    def follow_rollout(
        self, ref: RefIn, on_progress: Progress, *, timeout: float, poll: float
    ) -> tuple[bool, str]: ...


class RolloutKind(Generic[Ref]):
    """The `rollback` or `scale` kind on a platform: the platform module says how the catalog's target becomes
    its reference, and which facts of a plan's snapshot the approvers rely on."""

    def __init__(
        self,
        client: RolloutClient[Ref],
        action: Rollout,
        ref: Callable[[Mapping[str, Any]], Ref],
        facts: Callable[[Rollout, Any], dict[str, Any]],
    ) -> None:
        self.client, self.action, self.ref, self.facts = client, action, ref, facts

    def plan(self, target: Mapping[str, Any], params: Mapping[str, Any]) -> KindPlan:
        plan = self._plan(target, params)
        kept = (
            {"to_revision": plan.to_revision}
            if self.action == "rollback"
            else {"replicas": int(params["replicas"])}
        )
        return KindPlan(
            plan.describe(), kept, self.facts(self.action, plan.snapshot), plan.snapshot.last_deployed_at
        )

    def apply(self, target: Mapping[str, Any], params: Mapping[str, Any]) -> ActionResult:
        plan = self._plan(target, params)
        return self.client.rollback(plan) if self.action == "rollback" else self.client.scale(plan)

    def follow(
        self, target: Mapping[str, Any], on_progress: Progress, *, timeout: float, poll: float
    ) -> tuple[bool, str]:
        return self.client.follow_rollout(self.ref(target), on_progress, timeout=timeout, poll=poll)

    def last_deployed_at(self, target: Mapping[str, Any]) -> datetime | None:
        """When the target's current version was rolled out."""
        deployed: datetime | None = self.client.snapshot(self.ref(target)).last_deployed_at
        return deployed

    def _plan(self, target: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
        if self.action == "rollback":
            to_revision = params.get("to_revision")
            return self.client.plan_rollback(
                self.ref(target), None if to_revision is None else int(to_revision)
            )
        return self.client.plan_scale(self.ref(target), int(params["replicas"]))


class ConfigKind:
    """A kind that changes configuration (a flag, an environment): applied at once, nothing rolls out."""

    def follow(
        self, target: Mapping[str, Any], on_progress: Progress, *, timeout: float, poll: float
    ) -> tuple[bool, str] | None:
        return None
