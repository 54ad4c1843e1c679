"""Rollback and scaling on whatever the catalog says a service runs on, behind one interface.

A request is *planned* (the target is read and described: "revision 7 → 6, image X → Y") and stored with a
snapshot of the facts the approvers saw. Executing plans again with the exact stored parameters and refuses if
those facts changed, so an approval never applies to a different change than the one approved.

The platform clients (and their libraries) are built on first use, not at start-up: importing the Kubernetes
client alone takes about as long as the rest of TARS, and a replica must answer /healthz without it. Building
one does no I/O, so should two first uses race (cached_property locks only before Python 3.12) the spare one is
simply dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from bot.core.domain_errors import UsageError
from bot.core.settings import Config, ServiceConfig
from bot.slack import rendering
from integrations.plans import ActionResult, TargetChanged

if TYPE_CHECKING:
    from integrations.ecs_services import EcsServiceRef, EcsServices
    from integrations.kubernetes_rollouts import DeploymentRef, KubernetesDeployments
    from integrations.lambda_env import LambdaEnvironment
    from integrations.ssm_flags import FeatureFlags

ROLLBACK = "rollback"
SCALE = "scale"
FLAG = "flag"
ENV = "env"


@dataclass(frozen=True)
class RemediationPlan:
    kind: str  # rollback | scale
    platform: str  # kubernetes | ecs
    summary: str  # what will happen, for the approval card
    params: dict[str, Any]  # exact parameters executed on approval
    snapshot: dict[str, Any]  # the facts approvers saw; execution refuses if they changed
    last_deployed_at: datetime | None
    audit: dict[str, Any] | None = None  # what may be written to the timeline (params can hold secrets)
    service: str = ""  # the catalog service the change is for

    @property
    def action_kind(self) -> str:
        return f"{self.platform}_{self.kind}"


class Platforms:
    def __init__(
        self,
        config: Config,
        *,
        kubernetes: KubernetesDeployments | None = None,
        ecs: EcsServices | None = None,
        flags: FeatureFlags | None = None,
        lambdas: LambdaEnvironment | None = None,
        rollout_timeout: float = 600,
        poll_seconds: float = 5,
    ) -> None:
        self.services = config.services
        self.flag_catalog = config.flags
        self._config = config
        # An injected client shadows the cached_property of its name; the others are built on first access.
        if kubernetes is not None:
            self.kubernetes = kubernetes
        if ecs is not None:
            self.ecs = ecs
        if flags is not None:
            self.flags = flags
        if lambdas is not None:
            self.lambdas = lambdas
        self.default_region = config.aws.region
        self.rollout_timeout = rollout_timeout
        self.poll_seconds = poll_seconds

    @cached_property
    def kubernetes(self) -> KubernetesDeployments:
        from integrations.kubernetes_rollouts import KubernetesDeployments

        config = self._config
        return KubernetesDeployments(kubeconfig=config.kubernetes.kubeconfig, dry_run=config.dry_run)

    @cached_property
    def ecs(self) -> EcsServices:
        from integrations.ecs_services import EcsServices

        return EcsServices(endpoint_url=self._config.aws.endpoint_url, dry_run=self._config.dry_run)

    @cached_property
    def flags(self) -> FeatureFlags:
        from integrations.ssm_flags import FeatureFlags

        aws = self._config.aws
        return FeatureFlags(endpoint_url=aws.endpoint_url, region=aws.region, dry_run=self._config.dry_run)

    @cached_property
    def lambdas(self) -> LambdaEnvironment:
        from integrations.lambda_env import LambdaEnvironment

        aws = self._config.aws
        return LambdaEnvironment(
            endpoint_url=aws.endpoint_url, region=aws.region, dry_run=self._config.dry_run
        )

    @property
    def dry_run(self) -> bool:
        # The Kubernetes client's flag, as always; one not built yet would take it from the config, so read that
        # instead of building it.
        kubernetes = self.__dict__.get("kubernetes")
        return bool(kubernetes.dry_run) if kubernetes is not None else self._config.dry_run

    # --- planning -------------------------------------------------------------------------------------------

    def plan_rollback(self, service: str, to_revision: int | None) -> RemediationPlan:
        entry = self._service(service, "roll back")
        if entry.kubernetes:
            plan = self.kubernetes.plan_rollback(self._k8s_ref(entry), to_revision)
            snap = plan.snapshot
            return RemediationPlan(
                ROLLBACK,
                "kubernetes",
                f"{service}: {plan.describe()}",
                {"to_revision": plan.to_revision},
                {"revision": snap.revision, "images": snap.images},
                snap.last_deployed_at,
                service=service,
            )
        plan_ecs = self.ecs.plan_rollback(self._ecs_ref(entry), to_revision)
        ecs_snap = plan_ecs.snapshot
        return RemediationPlan(
            ROLLBACK,
            "ecs",
            f"{service}: {plan_ecs.describe()}",
            {"to_revision": plan_ecs.to_revision},
            {"task_definition_arn": ecs_snap.task_definition_arn},
            ecs_snap.last_deployed_at,
            service=service,
        )

    def plan_scale(self, service: str, replicas: int) -> RemediationPlan:
        entry = self._service(service, "scale")
        if not 1 <= replicas <= entry.max_replicas:
            raise UsageError(rendering.replicas_out_of_bounds(replicas, service, entry.max_replicas))
        if entry.kubernetes:
            plan = self.kubernetes.plan_scale(self._k8s_ref(entry), replicas)
            snap = plan.snapshot
            return RemediationPlan(
                SCALE,
                "kubernetes",
                f"{service}: {plan.describe()}",
                {"replicas": replicas},
                {"replicas": snap.replicas},
                snap.last_deployed_at,
                service=service,
            )
        plan_ecs = self.ecs.plan_scale(self._ecs_ref(entry), replicas)
        return RemediationPlan(
            SCALE,
            "ecs",
            f"{service}: {plan_ecs.describe()}",
            {"replicas": replicas},
            {"desired_count": plan_ecs.snapshot.desired_count},
            plan_ecs.snapshot.last_deployed_at,
            service=service,
        )

    def plan_flag(self, name: str, value: str) -> RemediationPlan:
        flag = self.flag_catalog.get(name)
        if flag is None:
            raise UsageError(rendering.unknown_flag(name, self.flag_catalog))
        if value not in flag.values:
            raise UsageError(rendering.flag_value_not_allowed(value, name, flag.values))
        path = flag.parameter_path(name)
        plan = self.flags.plan(path, value)
        current = plan.current
        return RemediationPlan(
            FLAG,
            "ssm",
            f"{flag.service}: flag {name}: {plan.describe()}",
            {"flag": name, "path": path, "value": value},
            {"version": current.version if current else None, "value": current.value if current else None},
            None,
            service=flag.service,
        )

    def plan_env(self, service: str, function: str, changes: dict[str, str]) -> RemediationPlan:
        entry = self.services.get(service)
        if entry is None or function not in entry.lambda_functions:
            owner = next((name for name, s in self.services.items() if function in s.lambda_functions), None)
            if owner is None:
                known = sorted({f for s in self.services.values() for f in s.lambda_functions})
                raise UsageError(rendering.unknown_lambda(function, known))
            service = owner
        plan = self.lambdas.plan(function, changes)
        return RemediationPlan(
            ENV,
            "lambda",
            f"{service}: {plan.describe()}",
            {"function": function, "changes": dict(plan.changes)},
            {"revision_id": plan.snapshot.revision_id},
            None,
            audit={"function": function, "diff": plan.diff_lines()},
            service=service,
        )

    def last_deployed_at(self, service: str) -> datetime | None:
        """When the service's current version was rolled out (None: no platform in the catalog)."""
        entry = self.services.get(service)
        if entry is None or entry.platform is None:
            return None
        if entry.kubernetes:
            return self.kubernetes.snapshot(self._k8s_ref(entry)).last_deployed_at
        return self.ecs.snapshot(self._ecs_ref(entry)).last_deployed_at

    # --- executing ------------------------------------------------------------------------------------------

    def execute(
        self, action_kind: str, service: str, params: dict[str, Any], snapshot: dict[str, Any]
    ) -> ActionResult:
        """Plan again with the stored parameters; run only if the target still matches what was approved."""
        kind = _kind(action_kind)
        planned = kind.replan(self, service, params)
        changed = {
            key: (was, planned.snapshot.get(key))
            for key, was in snapshot.items()
            if planned.snapshot.get(key) != was
        }
        if changed:
            detail = ", ".join(f"{key} was {was} and is now {now}" for key, (was, now) in changed.items())
            raise TargetChanged(f"{service} changed since the request ({detail}); make a new request.")
        return kind.send(self, service, params, planned)

    def follow(
        self, action_kind: str, service: str, on_progress: Callable[[str], None]
    ) -> tuple[bool, str] | None:
        """Watch the rollout until it finishes, fails or times out (None: nothing rolls out); never raises."""
        follow = _kind(action_kind).follow
        return None if follow is None else follow(self, service, on_progress)

    # --- catalog --------------------------------------------------------------------------------------------

    def _service(self, service: str, doing: str) -> ServiceConfig:
        entry = self.services.get(service)
        if entry is None:
            raise UsageError(rendering.unknown_service(service, self.services))
        if entry.platform is None:
            raise UsageError(rendering.no_platform(doing, service))
        return entry

    @staticmethod
    def _k8s_ref(entry: ServiceConfig) -> DeploymentRef:
        from integrations.kubernetes_rollouts import DeploymentRef

        assert entry.kubernetes is not None
        target = entry.kubernetes
        return DeploymentRef(namespace=target.namespace, name=target.deployment, context=target.context)

    def _ecs_ref(self, entry: ServiceConfig) -> EcsServiceRef:
        from integrations.ecs_services import EcsServiceRef

        assert entry.ecs is not None
        target = entry.ecs
        return EcsServiceRef(
            cluster=target.cluster, service=target.service, region=target.region or self.default_region
        )


# --- one entry per kind of remediation -----------------------------------------------------------------------
# Each kind says how a stored request is planned again (to compare with what the approvers saw), sent, and,
# where something rolls out, followed. Adding a kind is one integration method and one line in KINDS.


@dataclass(frozen=True)
class RemediationKind:
    replan: Callable[[Platforms, str, dict[str, Any]], RemediationPlan]
    send: Callable[[Platforms, str, dict[str, Any], RemediationPlan], ActionResult]
    follow: Callable[[Platforms, str, Callable[[str], None]], tuple[bool, str]] | None = None


def _kubernetes_ref(platforms: Platforms, service: str, doing: str) -> DeploymentRef:
    return platforms._k8s_ref(platforms._service(service, doing))


def _ecs_ref(platforms: Platforms, service: str, doing: str) -> EcsServiceRef:
    return platforms._ecs_ref(platforms._service(service, doing))


def _follow_kubernetes(
    platforms: Platforms, service: str, on_progress: Callable[[str], None]
) -> tuple[bool, str]:
    status = platforms.kubernetes.wait_for_rollout(
        _kubernetes_ref(platforms, service, "watch"),
        timeout=platforms.rollout_timeout,
        poll=platforms.poll_seconds,
        on_progress=lambda s: on_progress(s.message),
    )
    if status.done:
        return True, status.message
    reason = "the rollout failed (ProgressDeadlineExceeded)" if status.failed else "timed out waiting"
    return False, f"{reason}: {status.message}"


def _follow_ecs(platforms: Platforms, service: str, on_progress: Callable[[str], None]) -> tuple[bool, str]:
    return platforms.ecs.wait_until_stable(
        _ecs_ref(platforms, service, "watch"),
        timeout=platforms.rollout_timeout,
        poll=platforms.poll_seconds,
        on_progress=on_progress,
    )


def _send_flag(
    platforms: Platforms, service: str, params: dict[str, Any], planned: RemediationPlan
) -> ActionResult:
    if planned.params["path"] != params["path"]:
        raise TargetChanged(rendering.flag_moved(str(params["flag"]), planned.params["path"], params["path"]))
    return platforms.flags.apply(platforms.flags.plan(str(params["path"]), str(params["value"])))


def _replan_rollback(platforms: Platforms, service: str, params: dict[str, Any]) -> RemediationPlan:
    return platforms.plan_rollback(service, int(params["to_revision"]))


def _replan_scale(platforms: Platforms, service: str, params: dict[str, Any]) -> RemediationPlan:
    return platforms.plan_scale(service, int(params["replicas"]))


KINDS: dict[str, RemediationKind] = {
    "kubernetes_rollback": RemediationKind(
        replan=_replan_rollback,
        send=lambda p, service, params, _planned: p.kubernetes.rollback(
            p.kubernetes.plan_rollback(_kubernetes_ref(p, service, ROLLBACK), int(params["to_revision"]))
        ),
        follow=_follow_kubernetes,
    ),
    "kubernetes_scale": RemediationKind(
        replan=_replan_scale,
        send=lambda p, service, params, _planned: p.kubernetes.scale(
            p.kubernetes.plan_scale(_kubernetes_ref(p, service, SCALE), int(params["replicas"]))
        ),
        follow=_follow_kubernetes,
    ),
    "ecs_rollback": RemediationKind(
        replan=_replan_rollback,
        send=lambda p, service, params, _planned: p.ecs.rollback(
            p.ecs.plan_rollback(_ecs_ref(p, service, ROLLBACK), int(params["to_revision"]))
        ),
        follow=_follow_ecs,
    ),
    "ecs_scale": RemediationKind(
        replan=_replan_scale,
        send=lambda p, service, params, _planned: p.ecs.scale(
            p.ecs.plan_scale(_ecs_ref(p, service, SCALE), int(params["replicas"]))
        ),
        follow=_follow_ecs,
    ),
    "ssm_flag": RemediationKind(
        replan=lambda p, _service, params: p.plan_flag(str(params["flag"]), str(params["value"])),
        send=_send_flag,
    ),
    "lambda_env": RemediationKind(
        replan=lambda p, service, params: p.plan_env(
            service, str(params["function"]), dict(params["changes"])
        ),
        send=lambda p, _service, params, _planned: p.lambdas.apply(
            p.lambdas.plan(str(params["function"]), dict(params["changes"]))
        ),
    ),
}


def _kind(action_kind: str) -> RemediationKind:
    kind = KINDS.get(action_kind)
    if kind is None:
        # A row written by a newer TARS, or by hand: refuse it rather than guess what it means.
        raise UsageError(rendering.unknown_action_kind(action_kind))
    return kind
