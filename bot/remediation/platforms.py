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
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from bot.core.domain_errors import UsageError
from bot.core.settings import Config, ServiceConfig
from bot.slack import rendering
from integrations.plans import ActionResult, RemediationKind, Rollout, RolloutKind, TargetChanged

if TYPE_CHECKING:
    from integrations.ecs_services import EcsServices
    from integrations.kubernetes_rollouts import KubernetesDeployments
    from integrations.lambda_env import LambdaEnvironment
    from integrations.ssm_flags import FeatureFlags

ROLLBACK = "rollback"
SCALE = "scale"
FLAG = "flag"
ENV = "env"


@dataclass(frozen=True)
class RemediationPlan:
    kind: str  # rollback | scale | flag | env
    platform: str  # kubernetes | ecs | ssm | lambda
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

    # --- planning: the catalog's rules, then the kind's plan -----------------------------------------------

    def plan_rollback(self, service: str, to_revision: int | None) -> RemediationPlan:
        entry = self._service(service, "roll back")
        return self._plan(ROLLBACK, entry, service, {"to_revision": to_revision})

    def plan_scale(self, service: str, replicas: int) -> RemediationPlan:
        entry = self._service(service, "scale")
        if not 1 <= replicas <= entry.max_replicas:
            raise UsageError(rendering.replicas_out_of_bounds(replicas, service, entry.max_replicas))
        return self._plan(SCALE, entry, service, {"replicas": replicas})

    def plan_flag(self, name: str, value: str) -> RemediationPlan:
        flag = self.flag_catalog.get(name)
        if flag is None:
            raise UsageError(rendering.unknown_flag(name, self.flag_catalog))
        if value not in flag.values:
            raise UsageError(rendering.flag_value_not_allowed(value, name, flag.values))
        path = flag.parameter_path(name)
        planned = self._plan(
            FLAG, None, flag.service, {"path": path, "value": value}, label=f"{flag.service}: flag {name}"
        )
        return replace(planned, params={"flag": name, **planned.params})

    def plan_env(self, service: str, function: str, changes: dict[str, str]) -> RemediationPlan:
        entry = self.services.get(service)
        if entry is None or function not in entry.lambda_functions:
            owner = next((name for name, s in self.services.items() if function in s.lambda_functions), None)
            if owner is None:
                known = sorted({f for s in self.services.values() for f in s.lambda_functions})
                raise UsageError(rendering.unknown_lambda(function, known))
            service = owner
        return self._plan(ENV, None, service, {"function": function, "changes": changes})

    def last_deployed_at(self, service: str) -> datetime | None:
        """When the service's current version was rolled out (None: no platform in the catalog)."""
        entry = self.services.get(service)
        if entry is None or entry.platform is None:
            return None
        rollouts = self.kind(f"{entry.platform}_{ROLLBACK}")
        assert isinstance(rollouts, RolloutKind)  # every platform with a rollback rolls out
        return rollouts.last_deployed_at(self._target(entry))

    def _plan(
        self,
        action: str,
        entry: ServiceConfig | None,
        service: str,
        params: dict[str, Any],
        *,
        label: str | None = None,
    ) -> RemediationPlan:
        platform = entry.platform if entry is not None else _PLATFORM_OF[action]
        assert platform is not None  # _service() refused a service without one
        kind = self.kind(f"{platform}_{action}")
        plan = kind.plan(self._target(entry), params)
        return RemediationPlan(
            action,
            platform,
            f"{label or service}: {plan.describe}",
            plan.params,
            plan.snapshot,
            plan.last_deployed_at,
            audit=plan.audit,
            service=service,
        )

    # --- executing ------------------------------------------------------------------------------------------

    def kind(self, action_kind: str) -> RemediationKind:
        return _entry(action_kind).make(self)

    def execute(
        self, action_kind: str, service: str, params: dict[str, Any], snapshot: dict[str, Any]
    ) -> ActionResult:
        """Plan again with the stored parameters; run only if the target still matches what was approved."""
        planned = self._replan(action_kind, service, params)
        changed = {
            key: (was, planned.snapshot.get(key))
            for key, was in snapshot.items()
            if planned.snapshot.get(key) != was
        }
        if changed:
            detail = ", ".join(f"{key} was {was} and is now {now}" for key, (was, now) in changed.items())
            raise TargetChanged(f"{service} changed since the request ({detail}); make a new request.")
        if "path" in params and planned.params.get("path") != params["path"]:
            raise TargetChanged(
                rendering.flag_moved(str(params["flag"]), planned.params["path"], params["path"])
            )
        if planned.action_kind != action_kind:
            raise TargetChanged(f"{service} now runs on {planned.platform}; make a new request.")
        return self.kind(action_kind).apply(self._target(self.services.get(service)), params)

    def follow(
        self, action_kind: str, service: str, on_progress: Callable[[str], None]
    ) -> tuple[bool, str] | None:
        """Watch the rollout until it finishes, fails or times out (None: nothing rolls out); never raises."""
        return self.kind(action_kind).follow(
            self._target(self.services.get(service)),
            on_progress,
            timeout=self.rollout_timeout,
            poll=self.poll_seconds,
        )

    def _replan(self, action_kind: str, service: str, params: dict[str, Any]) -> RemediationPlan:
        action = _entry(action_kind).action
        if action == ROLLBACK:
            return self.plan_rollback(service, int(params["to_revision"]))
        if action == SCALE:
            return self.plan_scale(service, int(params["replicas"]))
        if action == FLAG:
            return self.plan_flag(str(params["flag"]), str(params["value"]))
        return self.plan_env(service, str(params["function"]), dict(params["changes"]))

    # --- catalog --------------------------------------------------------------------------------------------

    def _service(self, service: str, doing: str) -> ServiceConfig:
        entry = self.services.get(service)
        if entry is None:
            raise UsageError(rendering.unknown_service(service, self.services))
        if entry.platform is None:
            raise UsageError(rendering.no_platform(doing, service))
        return entry

    def _target(self, entry: ServiceConfig | None) -> dict[str, Any]:
        """The service's platform entry from the catalog, as its remediation kinds read it."""
        if entry is None:
            return {}
        if entry.kubernetes is not None:
            return entry.kubernetes.model_dump()
        if entry.ecs is not None:
            return {**entry.ecs.model_dump(), "region": entry.ecs.region or self.default_region}
        return {}


# --- the remediation kinds, one line each: the integration module that carries it out ----------------------


def _kubernetes(action: Rollout) -> Callable[[Platforms], RemediationKind]:
    def make(p: Platforms) -> RemediationKind:
        from integrations.kubernetes_rollouts import kubernetes_kind

        return kubernetes_kind(p.kubernetes, action)

    return make


def _ecs(action: Rollout) -> Callable[[Platforms], RemediationKind]:
    def make(p: Platforms) -> RemediationKind:
        from integrations.ecs_services import ecs_kind

        return ecs_kind(p.ecs, action)

    return make


def _ssm_flag(p: Platforms) -> RemediationKind:
    from integrations.ssm_flags import FlagChange

    return FlagChange(p.flags)


def _lambda_env(p: Platforms) -> RemediationKind:
    from integrations.lambda_env import EnvironmentChange

    return EnvironmentChange(p.lambdas)


@dataclass(frozen=True)
class KindEntry:
    action: str  # what a person asked for: rollback, scale, flag or env
    make: Callable[[Platforms], RemediationKind]


KINDS: dict[str, KindEntry] = {
    "kubernetes_rollback": KindEntry(ROLLBACK, _kubernetes("rollback")),
    "kubernetes_scale": KindEntry(SCALE, _kubernetes("scale")),
    "ecs_rollback": KindEntry(ROLLBACK, _ecs("rollback")),
    "ecs_scale": KindEntry(SCALE, _ecs("scale")),
    "ssm_flag": KindEntry(FLAG, _ssm_flag),
    "lambda_env": KindEntry(ENV, _lambda_env),
}
# Kinds whose target is named in the request, not by the service's platform in the catalog.
_PLATFORM_OF = {FLAG: "ssm", ENV: "lambda"}


def _entry(action_kind: str) -> KindEntry:
    entry = KINDS.get(action_kind)
    if entry is None:
        # A row written by a newer TARS, or by hand: refuse it rather than guess what it means.
        raise UsageError(rendering.unknown_action_kind(action_kind))
    return entry
