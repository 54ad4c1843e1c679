"""ECS remediation: roll a service back to an earlier task-definition revision, or change its desired count.

Both follow the plan/approve/execute shape of integrations.plans: the plan is made from a snapshot, and
execution re-reads the service and refuses (TargetChanged) if someone changed it after the card was shown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from integrations.aws_clients import AwsIntegration, call, utc
from integrations.plans import (
    ActionResult,
    IntegrationError,
    NothingToDo,
    Prepared,
    Progress,
    Rollout,
    RolloutKind,
    TargetChanged,
)

log = logging.getLogger(__name__)

# What the calls below need, for `tars policy aws`. Task definitions are read across families, and AWS offers
# no resource-level permission for these two reads.
IAM_ACTIONS = {
    "scoped": ("ecs:DescribeServices", "ecs:UpdateService"),
    "unscoped": ("ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions"),
}


@dataclass(frozen=True)
class EcsServiceRef:
    cluster: str
    service: str
    region: str | None = None

    def label(self) -> str:
        where = f"cluster {self.cluster}" + (f", {self.region}" if self.region else "")
        return f"ecs {self.service} ({where})"


@dataclass(frozen=True)
class EcsSnapshot:
    ref: EcsServiceRef
    task_definition_arn: str
    family: str
    revision: int
    desired_count: int
    running_count: int
    images: dict[str, str]  # container name -> image
    last_deployed_at: datetime | None  # UTC createdAt of the PRIMARY deployment

    @property
    def task_definition(self) -> str:
        return f"{self.family}:{self.revision}"


@dataclass(frozen=True)
class EcsRollbackPlan:
    snapshot: EcsSnapshot
    to_task_definition_arn: str
    to_revision: int
    to_images: dict[str, str]

    def describe(self) -> str:
        snap = self.snapshot
        text = (
            f"{snap.ref.label()}: task definition {snap.task_definition} → {snap.family}:{self.to_revision}"
        )
        changes = _image_changes(snap.images, self.to_images)
        return f"{text}, {', '.join(changes)}" if changes else f"{text} (images unchanged)"


@dataclass(frozen=True)
class EcsScalePlan:
    snapshot: EcsSnapshot
    to_count: int

    def describe(self) -> str:
        return f"{self.snapshot.ref.label()}: desired count {self.snapshot.desired_count} → {self.to_count}"


def _image_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    names = list(before) + [name for name in after if name not in before]
    return [
        f"image {name}={before.get(name, '(none)')} → {after.get(name, '(none)')}"
        for name in names
        if before.get(name) != after.get(name)
    ]


def _parse_task_definition_arn(arn: str) -> tuple[str, int]:
    """'arn:aws:ecs:…:task-definition/payments:7' -> ('payments', 7)."""
    family, _, revision = arn.rsplit("/", 1)[-1].rpartition(":")
    return family, int(revision)


@dataclass(frozen=True)
class _Rollout:
    stable: bool
    failed: bool
    message: str


def _assess(name: str, service: Mapping[str, Any]) -> _Rollout:
    """Steady state as real ECS defines it: one PRIMARY deployment, all tasks running, rollout COMPLETED."""
    running = int(service.get("runningCount", 0))
    desired = int(service.get("desiredCount", 0))
    pending = int(service.get("pendingCount", 0))
    deployments: list[Mapping[str, Any]] = list(service.get("deployments") or [])
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    older = [d for d in deployments if d is not primary]

    notes: list[str] = []
    if pending:
        notes.append(f"{pending} pending")
    failed = False
    if not deployments:
        # CODE_DEPLOY / EXTERNAL controllers report task sets instead of deployments; counts are all we have.
        stable = running == desired
    else:
        state = primary.get("rolloutState") if primary else None
        # Without rolloutState (older APIs) the deployment's own counts are the only completion signal.
        primary_done = primary is not None and (
            state == "COMPLETED"
            or (state is None and primary.get("runningCount") == primary.get("desiredCount"))
        )
        if primary is not None and state == "FAILED":
            failed = True
            notes.append(f"deployment failed: {primary.get('rolloutStateReason') or 'no reason given'}")
        elif not primary_done:
            notes.append("1 deployment in progress")
        if older:
            notes.append(f"{len(older)} older deployment{'s' if len(older) > 1 else ''} draining")
        stable = (
            len(deployments) == 1
            and primary is not None
            and running == desired
            and state in (None, "COMPLETED")
        )
    if stable:
        notes = ["steady"]
    suffix = f" ({', '.join(notes)})" if notes else ""
    return _Rollout(stable, failed, f"{name}: {running} of {desired} tasks running{suffix}")


class EcsServices(AwsIntegration):
    service = "ecs"

    # -- reads ------------------------------------------------------------------------------------------

    def _describe_service(self, ref: EcsServiceRef) -> dict[str, Any]:
        try:
            response = call(
                self._client(ref.region),
                "DescribeServices",
                "describe_services",
                cluster=ref.cluster,
                services=[ref.service],
            )
        except IntegrationError as error:
            if error.details.get("code") == "ClusterNotFoundException":
                raise IntegrationError(
                    f"ECS cluster {ref.cluster!r} not found (looking for service {ref.service!r})",
                    details=error.details,
                ) from error
            raise
        # Deleted services linger as INACTIVE for a while; they are as good as missing for remediation.
        services = [s for s in response.get("services", []) if s.get("status") != "INACTIVE"]
        if not services:
            reasons = ", ".join(f.get("reason", "?") for f in response.get("failures", [])) or "INACTIVE"
            raise IntegrationError(
                f"ECS service {ref.service!r} not found in cluster {ref.cluster!r} ({reasons})",
                details={"cluster": ref.cluster, "service": ref.service, "reason": reasons},
            )
        service: dict[str, Any] = services[0]
        return service

    def _task_definition(self, region: str | None, task_definition: str) -> dict[str, Any]:
        response = call(
            self._client(region),
            "DescribeTaskDefinition",
            "describe_task_definition",
            taskDefinition=task_definition,
        )
        definition: dict[str, Any] = response["taskDefinition"]
        return definition

    def snapshot(self, ref: EcsServiceRef) -> EcsSnapshot:
        service = self._describe_service(ref)
        # Describe the task definition rather than parse the service field: ECS may hold a short
        # "family:rev" there (moto does after update_service) and we want the canonical ARN to compare.
        task_def = self._task_definition(ref.region, service["taskDefinition"])
        primary = next((d for d in service.get("deployments") or [] if d.get("status") == "PRIMARY"), None)
        return EcsSnapshot(
            ref=ref,
            task_definition_arn=task_def["taskDefinitionArn"],
            family=task_def["family"],
            revision=int(task_def["revision"]),
            desired_count=int(service.get("desiredCount", 0)),
            running_count=int(service.get("runningCount", 0)),
            images={c["name"]: c.get("image", "") for c in task_def.get("containerDefinitions", [])},
            last_deployed_at=utc(primary.get("createdAt")) if primary else None,
        )

    def _active_revisions(self, region: str | None, family: str) -> dict[int, str]:
        """revision -> ARN for every ACTIVE revision of exactly this family."""
        client = self._client(region)
        revisions: dict[int, str] = {}
        params: dict[str, Any] = {"familyPrefix": family, "status": "ACTIVE", "sort": "DESC"}
        while True:
            response = call(client, "ListTaskDefinitions", "list_task_definitions", **params)
            for arn in response.get("taskDefinitionArns", []):
                arn_family, revision = _parse_task_definition_arn(arn)
                # Defensive: never let a look-alike family ("payments-worker") supply a rollback target.
                if arn_family == family:
                    revisions[revision] = arn
            token = response.get("nextToken")
            if not token:
                return revisions
            params["nextToken"] = token

    # -- rollback ---------------------------------------------------------------------------------------

    def plan_rollback(self, ref: EcsServiceRef, to_revision: int | None = None) -> EcsRollbackPlan:
        snap = self.snapshot(ref)
        if to_revision is not None and to_revision == snap.revision:
            raise NothingToDo(f"{ref.label()} already runs {snap.task_definition}")
        active = self._active_revisions(ref.region, snap.family)
        if to_revision is None:
            earlier = [rev for rev in active if rev < snap.revision]
            if not earlier:
                raise IntegrationError(
                    f"no earlier ACTIVE revision of task definition family {snap.family}",
                    details={"family": snap.family, "current": snap.revision, "active": sorted(active)},
                )
            target = max(earlier)
        elif to_revision not in active:
            listed = ", ".join(str(rev) for rev in sorted(active, reverse=True)) or "none"
            raise IntegrationError(
                f"{snap.family}:{to_revision} is not an ACTIVE revision of task definition family "
                f"{snap.family}; ACTIVE revisions: {listed}",
                details={"family": snap.family, "requested": to_revision, "active": sorted(active)},
            )
        else:
            target = to_revision
        task_def = self._task_definition(ref.region, active[target])
        return EcsRollbackPlan(
            snapshot=snap,
            to_task_definition_arn=task_def["taskDefinitionArn"],
            to_revision=target,
            to_images={c["name"]: c.get("image", "") for c in task_def.get("containerDefinitions", [])},
        )

    def rollback(self, plan: EcsRollbackPlan) -> ActionResult:
        planned = plan.snapshot
        ref = planned.ref
        current = self.snapshot(ref)
        if current.task_definition_arn != planned.task_definition_arn:
            raise TargetChanged(
                f"{ref.label()} now runs {current.task_definition}, not {planned.task_definition} as planned; "
                "re-plan the rollback",
                details={"planned": planned.task_definition_arn, "current": current.task_definition_arn},
            )
        params: dict[str, Any] = {
            "cluster": ref.cluster,
            "service": ref.service,
            "taskDefinition": plan.to_task_definition_arn,
            "forceNewDeployment": True,
        }
        request = {"operation": "UpdateService", "params": params}
        images = ", ".join(f"image {name}={image}" for name, image in plan.to_images.items())
        verb = "rolled back" if plan.to_revision < planned.revision else "rolled forward"

        def send() -> ActionResult:
            response = call(
                self._client(ref.region, mutating=True),
                "UpdateService",
                "update_service",
                mutating=True,
                **params,
            )
            service = response.get("service", {})
            primary: dict[str, Any] = next(
                (d for d in service.get("deployments") or [] if d.get("status") == "PRIMARY"), {}
            )
            return ActionResult(
                ok=True,
                summary=f"{ref.service}: {verb} to revision {plan.to_revision} ({images}); deployment started",
                request=request,
                details={
                    "from_task_definition": planned.task_definition_arn,
                    "to_task_definition": plan.to_task_definition_arn,
                    "from_revision": planned.revision,
                    "to_revision": plan.to_revision,
                    "from_images": dict(planned.images),
                    "to_images": dict(plan.to_images),
                    "deployment_id": primary.get("id"),
                },
            )

        return self._apply(Prepared(f"update {plan.describe()}", request, send))

    # -- scale ------------------------------------------------------------------------------------------

    def plan_scale(self, ref: EcsServiceRef, count: int) -> EcsScalePlan:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise IntegrationError(f"desired count must be a whole number ≥ 0, not {count!r}")
        snap = self.snapshot(ref)
        if snap.desired_count == count:
            raise NothingToDo(f"{ref.label()} already has desired count {count}")
        return EcsScalePlan(snapshot=snap, to_count=count)

    def scale(self, plan: EcsScalePlan) -> ActionResult:
        planned = plan.snapshot
        ref = planned.ref
        current = self.snapshot(ref)
        if current.desired_count != planned.desired_count:
            raise TargetChanged(
                f"{ref.label()} desired count is now {current.desired_count}, not {planned.desired_count} "
                "as planned; re-plan the scale",
                details={"planned": planned.desired_count, "current": current.desired_count},
            )
        params: dict[str, Any] = {
            "cluster": ref.cluster,
            "service": ref.service,
            "desiredCount": plan.to_count,
        }
        request = {"operation": "UpdateService", "params": params}

        def send() -> ActionResult:
            call(
                self._client(ref.region, mutating=True),
                "UpdateService",
                "update_service",
                mutating=True,
                **params,
            )
            return ActionResult(
                ok=True,
                summary=f"{ref.service}: desired count {planned.desired_count} → {plan.to_count}",
                request=request,
                details={"from_count": planned.desired_count, "to_count": plan.to_count},
            )

        return self._apply(Prepared(f"set {plan.describe()}", request, send))

    # -- waiting ----------------------------------------------------------------------------------------

    def follow_rollout(
        self, ref: EcsServiceRef, on_progress: Progress, *, timeout: float, poll: float
    ) -> tuple[bool, str]:
        return self.wait_until_stable(ref, timeout=timeout, poll=poll, on_progress=on_progress)

    def wait_until_stable(
        self,
        ref: EcsServiceRef,
        *,
        timeout: float = 600,
        poll: float = 5,
        on_progress: Callable[[str], None] | None = None,
    ) -> tuple[bool, str]:
        """Poll until the service is steady; (False, last message) on timeout or a failed rollout. Never raises."""
        deadline = self._clock() + timeout
        last: str | None = None
        while True:
            try:
                rollout = _assess(ref.service, self._describe_service(ref))
            except IntegrationError as error:
                # A read hiccup mid-rollout is not a verdict on the rollout; keep watching until the deadline.
                rollout = _Rollout(
                    False, False, f"{ref.service}: could not describe service: {error.message}"
                )
            except Exception as error:  # the caller relies on "never raises"
                rollout = _Rollout(False, False, f"{ref.service}: could not describe service: {error}")
            if rollout.message != last:
                last = rollout.message
                if on_progress is not None:
                    try:
                        on_progress(rollout.message)
                    except Exception:
                        # A failed progress post (e.g. Slack hiccup) must not abandon the wait.
                        log.exception("on_progress callback failed")
            if rollout.stable:
                return True, rollout.message
            if rollout.failed:
                # ECS never completes a FAILED deployment; waiting out the timeout would only hide that.
                return False, rollout.message
            remaining = deadline - self._clock()
            if remaining <= 0:
                return False, rollout.message
            self._sleep(min(poll, remaining))


# --- the remediation kinds TARS offers on ECS --------------------------------------------------------------


def _ref(target: Mapping[str, Any]) -> EcsServiceRef:
    return EcsServiceRef(
        cluster=str(target["cluster"]), service=str(target["service"]), region=target.get("region")
    )


def _facts(action: Rollout, snapshot: EcsSnapshot) -> dict[str, Any]:
    if action == "rollback":
        return {"task_definition_arn": snapshot.task_definition_arn}
    return {"desired_count": snapshot.desired_count}


def ecs_kind(client: EcsServices, action: Rollout) -> RolloutKind[EcsServiceRef]:
    return RolloutKind(client, action, _ref, _facts)
