"""Roll back and scale Kubernetes Deployments the way kubectl does, as approvable plans.

Rollback reimplements ``kubectl rollout undo`` (k8s.io/kubectl/pkg/polymorphichelpers/rollback.go) and
rollout status reimplements kubectl's DeploymentStatusViewer (rollout_status.go), both through the official
client only: TARS never shells out to kubectl, so the wire behaviour here is the whole story.

Every change is two steps. ``plan_*`` reads the cluster and returns a plan bound to a snapshot of the
target; the approval card shows ``plan.describe()``. ``rollback``/``scale`` execute a plan only if the
target still matches that snapshot and raise :class:`TargetChanged` otherwise, so an approval never
applies to a Deployment other than the one the human looked at.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3.exceptions
from kubernetes.client import AppsV1Api, V1Deployment, V1LabelSelector, V1ObjectMeta, V1ReplicaSet
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from integrations.plans import (
    ActionResult,
    Integration,
    IntegrationError,
    NothingToDo,
    Prepared,
    Progress,
    Rollout,
    RolloutKind,
    TargetChanged,
)

__all__ = [
    "DeploymentRef",
    "DeploymentSnapshot",
    "KubernetesDeployments",
    "RollbackPlan",
    "RolloutStatus",
    "ScalePlan",
    "kubernetes_kind",
]

log = logging.getLogger(__name__)

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
# What the calls below need, for `tars policy kubernetes`; "named" rules are limited to the catalog's
# deployments (a list cannot be limited by name, so listing replicasets is namespace-wide).
RBAC_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": ("apps",), "resources": ("deployments",), "verbs": ("get", "patch"), "named": True},
    {"apiGroups": ("apps",), "resources": ("deployments/scale",), "verbs": ("get", "patch"), "named": True},
    {"apiGroups": ("apps",), "resources": ("replicasets",), "verbs": ("list",), "named": False},
)
# kubectl's rollback.go annotationsToSkip: bookkeeping that belongs to the Deployment itself, so an undo
# keeps the Deployment's values instead of copying stale ones from the old ReplicaSet.
ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
# deploymentutil.TimedOutReason: the Progressing condition reason once progressDeadlineSeconds passed.
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
# (connect, read) seconds: without a bound a wedged apiserver would hang an approval handler forever.
REQUEST_TIMEOUT = (5.0, 30.0)


# --------------------------------------------------------------------------------------------
# Value types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentRef:
    namespace: str
    name: str
    context: str | None = None  # kubeconfig context from the service catalog; None = current / in-cluster

    def label(self) -> str:
        # The context goes on the approval card: the same name in two clusters is two different targets.
        where = (
            f"ns {self.namespace}" if self.context is None else f"ns {self.namespace}, context {self.context}"
        )
        return f"deploy/{self.name} ({where})"


@dataclass(frozen=True)
class DeploymentSnapshot:
    ref: DeploymentRef
    revision: int  # deployment.kubernetes.io/revision of the Deployment
    replicas: int  # spec.replicas
    images: dict[str, str]  # container name -> image of the current pod template
    generation: int
    paused: bool
    resource_version: str
    last_deployed_at: datetime | None  # creationTimestamp (UTC) of the current revision's ReplicaSet
    # Not shown anywhere; kept so execution can tell "same revision number, different object/template".
    uid: str = field(default="", repr=False)
    template: dict[str, Any] = field(default_factory=dict, repr=False)


def _describe_images(before: dict[str, str], after: dict[str, str]) -> str:
    changed = [
        f"{name}={before.get(name, '(none)')} → {after.get(name, '(none)')}"
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]
    if not changed:
        # Templates can differ in env/resources only; say so rather than print an empty arrow.
        return "images unchanged"
    return ("image " if len(changed) == 1 else "images ") + ", ".join(changed)


@dataclass(frozen=True)
class RollbackPlan:
    snapshot: DeploymentSnapshot  # the target as it was when planned
    to_revision: int
    to_images: dict[str, str]
    template: dict[str, Any]  # target ReplicaSet's pod template (camelCase JSON), pod-template-hash removed
    replica_set: str = ""  # name of the ReplicaSet that carries to_revision
    # The target ReplicaSet's annotations: kubectl's undo takes every non-bookkeeping annotation from it.
    source_annotations: dict[str, str] = field(default_factory=dict, repr=False)
    available_revisions: tuple[int, ...] = ()

    def describe(self) -> str:
        snap = self.snapshot
        return (
            f"{snap.ref.label()}: revision {snap.revision} → {self.to_revision}, "
            f"{_describe_images(snap.images, self.to_images)}"
        )

    def expected_revision(self) -> int:
        # The controller gives the reused ReplicaSet max(revision of every other ReplicaSet) + 1.
        others = [r for r in self.available_revisions if r != self.to_revision]
        return max([*others, self.snapshot.revision]) + 1


@dataclass(frozen=True)
class ScalePlan:
    snapshot: DeploymentSnapshot
    to_replicas: int

    def describe(self) -> str:
        return f"{self.snapshot.ref.label()}: replicas {self.snapshot.replicas} → {self.to_replicas}"


@dataclass(frozen=True)
class RolloutStatus:
    done: bool
    failed: bool  # ProgressDeadlineExceeded
    message: str  # kubectl's wording
    updated: int
    available: int
    desired: int


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def label_selector(selector: V1LabelSelector | None) -> str:
    """The string form of a LabelSelector, matchLabels and matchExpressions (metav1.LabelSelectorAsSelector)."""
    if selector is None:
        return ""
    parts: list[str] = [f"{key}={value}" for key, value in sorted((selector.match_labels or {}).items())]
    for expr in selector.match_expressions or []:
        values = ",".join(sorted(expr.values or []))
        if expr.operator == "In":
            parts.append(f"{expr.key} in ({values})")
        elif expr.operator == "NotIn":
            parts.append(f"{expr.key} notin ({values})")
        elif expr.operator == "Exists":
            parts.append(expr.key)
        elif expr.operator == "DoesNotExist":
            parts.append(f"!{expr.key}")
        else:
            # A selector we can't express would silently widen the ReplicaSet list; refuse instead.
            raise IntegrationError(f"unsupported label selector operator {expr.operator!r} on {expr.key!r}")
    return ",".join(parts)


def _parse_revision(annotations: dict[str, str] | None) -> int | None:
    raw = (annotations or {}).get(REVISION_ANNOTATION)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(template)
    labels = (stripped.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    return stripped


def _normalized(value: Any) -> Any:
    # apimachinery's Semantic.DeepEqual treats nil and empty maps/slices alike; the JSON form
    # distinguishes them, so drop empties before comparing templates.
    if isinstance(value, dict):
        out = {k: _normalized(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


def templates_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """kubectl's equalIgnoreHash on the JSON form of two pod templates."""
    return bool(_normalized(_without_hash(a)) == _normalized(_without_hash(b)))


def _meta(obj: V1Deployment | V1ReplicaSet) -> V1ObjectMeta:
    if obj.metadata is None:
        raise IntegrationError(f"the Kubernetes API sent a {type(obj).__name__} without metadata")
    return obj.metadata


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _api_error(exc: ApiException) -> IntegrationError:
    status = exc.status or None
    message = ""
    details: dict[str, Any] = {}
    if exc.body:
        try:
            body = json.loads(exc.body)
        except (TypeError, ValueError):
            body = None
        if isinstance(body, dict):
            message = str(body.get("message") or "")
            details = {k: body[k] for k in ("reason", "details") if k in body}
    message = message or str(exc.reason or "unknown error").strip()
    prefix = f"Kubernetes API {status}" if status else "Kubernetes API error"
    return IntegrationError(f"{prefix}: {message}", status=status, details=details)


def _is_failed_precondition(error: IntegrationError) -> bool:
    # A failed JSON-patch "test" comes back as 422 "testing value /metadata/resourceVersion failed";
    # every other 422 (a validation error) is a real refusal, not a concurrent change.
    text = error.message.lower()
    return error.status == 422 and "test" in text and "resourceversion" in text


# --------------------------------------------------------------------------------------------
# The integration
# --------------------------------------------------------------------------------------------


class KubernetesDeployments(Integration):
    """Snapshot, plan, execute and watch Deployment rollbacks and scaling."""

    def __init__(
        self,
        *,
        api_client_factory: Callable[[str | None], kubernetes.client.ApiClient] | None = None,
        kubeconfig: str | None = None,
        dry_run: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._factory = api_client_factory or self._default_factory
        self._kubeconfig = kubeconfig
        super().__init__(dry_run=dry_run)
        self._clock = clock
        self._sleep = sleep
        self._clients: dict[str | None, kubernetes.client.ApiClient] = {}
        self._clients_lock = threading.Lock()

    # ---- clients -------------------------------------------------------------------------

    def _default_factory(self, context: str | None) -> kubernetes.client.ApiClient:
        try:
            if os.environ.get("KUBERNETES_SERVICE_HOST") and self._kubeconfig is None and context is None:
                configuration = kubernetes.client.Configuration()
                kubernetes.config.load_incluster_config(client_configuration=configuration)
                return kubernetes.client.ApiClient(configuration)
            # A named context is never silently replaced by the in-cluster identity: that could
            # point an approved rollback at a different cluster than the catalog names.
            # persist_config=False: a refreshed token must not be written back to a mounted kubeconfig.
            client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(
                config_file=self._kubeconfig, context=context, persist_config=False
            )
            return client
        except (ConfigException, OSError) as exc:
            where = f"context {context!r}" if context else "the current context"
            raise IntegrationError(f"cannot load Kubernetes configuration for {where}: {exc}") from exc

    def _client(self, context: str | None) -> kubernetes.client.ApiClient:
        with self._clients_lock:
            client = self._clients.get(context)
            if client is None:
                client = self._clients[context] = self._factory(context)
            return client

    def _apps(self, ref: DeploymentRef) -> AppsV1Api:
        return AppsV1Api(self._client(ref.context))

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    @contextmanager
    def _calling(self, ref: DeploymentRef, *, mutating: bool = False) -> Iterator[None]:
        try:
            yield
        except ApiException as exc:
            raise _api_error(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # After a write left the socket its outcome is unknown; say so, and (by design) don't retry.
            unknown = (
                "; the change may or may not have been applied, check before retrying" if mutating else ""
            )
            raise IntegrationError(
                f"cannot reach the Kubernetes API for {ref.label()}: {exc}{unknown}"
            ) from exc

    # ---- reads ---------------------------------------------------------------------------

    def _read_deployment(self, ref: DeploymentRef) -> V1Deployment:
        with self._calling(ref):
            return self._apps(ref).read_namespaced_deployment(
                ref.name, ref.namespace, _request_timeout=REQUEST_TIMEOUT
            )

    def _history(self, ref: DeploymentRef, dep: V1Deployment) -> list[tuple[int, V1ReplicaSet]]:
        """Owned ReplicaSets with a revision, highest revision first (kubectl's GetAllReplicaSets)."""
        selector = label_selector(dep.spec.selector)
        with self._calling(ref):
            listed = self._apps(ref).list_namespaced_replica_set(
                ref.namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT
            )
        uid = _meta(dep).uid
        history: list[tuple[int, V1ReplicaSet]] = []
        for rs in listed.items or []:
            # Matching labels are not ownership: another controller's (or an orphaned) ReplicaSet with
            # the same labels must never become a rollback target.
            owned = any(ref_.controller and ref_.uid == uid for ref_ in _meta(rs).owner_references or [])
            revision = _parse_revision(_meta(rs).annotations)
            if owned and revision is not None:
                history.append((revision, rs))
        history.sort(key=lambda item: item[0], reverse=True)
        return history

    def _template_json(self, ref: DeploymentRef, template: Any) -> dict[str, Any]:
        data = self._client(ref.context).sanitize_for_serialization(template)
        return data if isinstance(data, dict) else {}

    def _snapshot_of(
        self, ref: DeploymentRef, dep: V1Deployment, history: list[tuple[int, V1ReplicaSet]]
    ) -> DeploymentSnapshot:
        revision = _parse_revision(_meta(dep).annotations) or 0
        current_rs = next((rs for rev, rs in history if rev == revision), None)
        containers = dep.spec.template.spec.containers if dep.spec.template.spec else []
        return DeploymentSnapshot(
            ref=ref,
            revision=revision,
            replicas=dep.spec.replicas if dep.spec.replicas is not None else 1,
            images={c.name: c.image or "" for c in containers or []},
            generation=_meta(dep).generation or 0,
            paused=bool(dep.spec.paused),
            resource_version=_meta(dep).resource_version or "",
            last_deployed_at=_as_utc(_meta(current_rs).creation_timestamp) if current_rs else None,
            uid=_meta(dep).uid or "",
            template=_without_hash(self._template_json(ref, dep.spec.template)),
        )

    def snapshot(self, ref: DeploymentRef) -> DeploymentSnapshot:
        dep = self._read_deployment(ref)
        return self._snapshot_of(ref, dep, self._history(ref, dep))

    # ---- rollback ------------------------------------------------------------------------

    def plan_rollback(self, ref: DeploymentRef, to_revision: int | None = None) -> RollbackPlan:
        if to_revision is not None and to_revision < 0:
            raise IntegrationError(f"revision must be a positive number, not {to_revision}")
        dep = self._read_deployment(ref)
        if dep.spec.paused:
            raise IntegrationError(f"deployment {ref.name} is paused; resume it before rolling back")
        history = self._history(ref, dep)
        snapshot = self._snapshot_of(ref, dep, history)
        available = tuple(sorted({rev for rev, _ in history}))

        # kubectl treats --to-revision=0 as "the previous one".
        if not to_revision:
            if len(history) < 2:
                raise IntegrationError(f"no rollout history found for deployment {ref.name}")
            revision, target = history[1]
        else:
            if to_revision == snapshot.revision:
                raise NothingToDo(f"{ref.name} is already at revision {to_revision}")
            found = next((item for item in history if item[0] == to_revision), None)
            if found is None:
                listed = ", ".join(str(r) for r in available) or "none"
                raise IntegrationError(
                    f"unable to find specified revision {to_revision} in history; available: {listed}"
                )
            revision, target = found

        template = _without_hash(self._template_json(ref, target.spec.template))
        if templates_equal(template, snapshot.template):
            raise NothingToDo(f"skipped rollback (current template already matches revision {revision})")
        pod = target.spec.template.spec if target.spec and target.spec.template else None
        containers = pod.containers if pod else []
        return RollbackPlan(
            snapshot=snapshot,
            to_revision=revision,
            to_images={c.name: c.image or "" for c in containers or []},
            template=template,
            replica_set=_meta(target).name or "",
            source_annotations=dict(_meta(target).annotations or {}),
            available_revisions=available,
        )

    def _check_unchanged(self, planned: DeploymentSnapshot, dep: V1Deployment) -> None:
        ref = planned.ref
        now = self._snapshot_of(ref, dep, [])
        if planned.uid and now.uid != planned.uid:
            raise TargetChanged(
                f"{ref.name} changed since the request: it was deleted and recreated; make a new request"
            )
        if now.revision != planned.revision:
            raise TargetChanged(
                f"{ref.name} changed since the request: now at revision {now.revision} "
                f"(was {planned.revision}); make a new request"
            )
        if planned.template and not templates_equal(now.template, planned.template):
            raise TargetChanged(
                f"{ref.name} changed since the request: its pod template was edited "
                f"(still revision {now.revision}); make a new request"
            )
        if now.paused and not planned.paused:
            raise TargetChanged(
                f"{ref.name} changed since the request: deployment {ref.name} is paused; "
                "resume it before rolling back"
            )

    def rollback(self, plan: RollbackPlan) -> ActionResult:
        ref = plan.snapshot.ref
        dep = self._read_deployment(ref)
        self._check_unchanged(plan.snapshot, dep)

        # kubectl's undo: the Deployment's own bookkeeping annotations stay, the rest come from the target RS.
        current = dict(_meta(dep).annotations or {})
        annotations = {k: v for k, v in current.items() if k in ANNOTATIONS_TO_SKIP}
        annotations.update({k: v for k, v in plan.source_annotations.items() if k not in ANNOTATIONS_TO_SKIP})
        body: list[dict[str, Any]] = [
            # Checked against the object just re-read (not the plan's): status churn between plan and
            # approval is harmless, but nothing may change between our check above and this write.
            {"op": "test", "path": "/metadata/resourceVersion", "value": _meta(dep).resource_version},
            {"op": "replace", "path": "/spec/template", "value": plan.template},
            # RFC 6902 "replace" needs an existing member; "add" replaces or creates.
            {
                "op": "replace" if _meta(dep).annotations is not None else "add",
                "path": "/metadata/annotations",
                "value": annotations,
            },
        ]
        request = {
            "method": "PATCH",
            "path": f"/apis/apps/v1/namespaces/{ref.namespace}/deployments/{ref.name}",
            "content_type": JSON_PATCH,
            "body": body,
        }

        def send() -> ActionResult:
            log.info("rolling back %s to revision %s", ref.label(), plan.to_revision)
            try:
                with self._calling(ref, mutating=True):
                    patched = self._apps(ref).patch_namespaced_deployment(
                        ref.name,
                        ref.namespace,
                        body,
                        _content_type=JSON_PATCH,
                        _request_timeout=REQUEST_TIMEOUT,
                    )
            except IntegrationError as error:
                if _is_failed_precondition(error):
                    raise TargetChanged(
                        f"{ref.name} changed since the request (it was modified while the rollback was being "
                        "sent); make a new request",
                        status=error.status,
                        details=error.details,
                    ) from error
                raise

            # A real apiserver answers before the controller bumps the revision; predict it in that case.
            reported = _parse_revision(_meta(patched).annotations) or 0
            new_revision = reported if reported > plan.snapshot.revision else plan.expected_revision()
            images = ", ".join(f"{k}={v}" for k, v in sorted(plan.to_images.items()))
            return ActionResult(
                ok=True,
                summary=(
                    f"{ref.label()}: rolled back to revision {plan.to_revision} ({images}); "
                    f"now revision {new_revision}"
                ),
                request=request,
                details={
                    "revision": new_revision,
                    "previous_revision": plan.snapshot.revision,
                    "rolled_back_to": plan.to_revision,
                    "images": dict(plan.to_images),
                    "generation": _meta(patched).generation,
                    "replica_set": plan.replica_set,
                },
            )

        return self._apply(Prepared(f"roll back {plan.describe()}", request, send))

    # ---- scale ---------------------------------------------------------------------------

    def plan_scale(self, ref: DeploymentRef, replicas: int) -> ScalePlan:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise IntegrationError(f"replicas must be a whole number ≥ 0, not {replicas!r}")
        snapshot = self.snapshot(ref)
        if replicas == snapshot.replicas:
            raise NothingToDo(f"{ref.name} already has {replicas} replicas")
        return ScalePlan(snapshot=snapshot, to_replicas=replicas)

    def scale(self, plan: ScalePlan) -> ActionResult:
        ref = plan.snapshot.ref
        with self._calling(ref):
            current = self._apps(ref).read_namespaced_deployment_scale(
                ref.name, ref.namespace, _request_timeout=REQUEST_TIMEOUT
            )
        # ScaleSpec.replicas is omitempty: absent means 0.
        now = (current.spec.replicas if current.spec else None) or 0
        if now != plan.snapshot.replicas:
            raise TargetChanged(
                f"{ref.name} changed since the request: now at {now} replicas "
                f"(was {plan.snapshot.replicas}); make a new request"
            )
        body = {"spec": {"replicas": plan.to_replicas}}
        request = {
            "method": "PATCH",
            "path": f"/apis/apps/v1/namespaces/{ref.namespace}/deployments/{ref.name}/scale",
            "content_type": MERGE_PATCH,
            "body": body,
        }

        def send() -> ActionResult:
            log.info("scaling %s to %s replicas", ref.label(), plan.to_replicas)
            with self._calling(ref, mutating=True):
                scaled = self._apps(ref).patch_namespaced_deployment_scale(
                    ref.name, ref.namespace, body, _content_type=MERGE_PATCH, _request_timeout=REQUEST_TIMEOUT
                )
            replicas = (scaled.spec.replicas if scaled.spec else None) or 0
            return ActionResult(
                ok=True,
                summary=f"{ref.label()}: scaled from {plan.snapshot.replicas} to {replicas} replicas",
                request=request,
                details={"replicas": replicas, "previous_replicas": plan.snapshot.replicas},
            )

        return self._apply(Prepared(f"scale {plan.describe()}", request, send))

    # ---- rollout status ------------------------------------------------------------------

    def rollout_status(self, ref: DeploymentRef) -> RolloutStatus:
        dep = self._read_deployment(ref)
        status = dep.status
        spec_replicas = dep.spec.replicas
        # Zero counters are omitted on the wire (omitempty), hence the "or 0" everywhere.
        updated = (status.updated_replicas if status else None) or 0
        available = (status.available_replicas if status else None) or 0
        total = (status.replicas if status else None) or 0
        observed = (status.observed_generation if status else None) or 0
        desired = spec_replicas if spec_replicas is not None else 1
        name = _meta(dep).name or ref.name

        def result(message: str, *, done: bool = False, failed: bool = False) -> RolloutStatus:
            return RolloutStatus(
                done=done,
                failed=failed,
                message=message,
                updated=updated,
                available=available,
                desired=desired,
            )

        if (_meta(dep).generation or 0) <= observed:
            progressing = next(
                (c for c in (status.conditions if status else None) or [] if c.type == "Progressing"), None
            )
            if progressing is not None and progressing.reason == TIMED_OUT_REASON:
                return result(f'deployment "{name}" exceeded its progress deadline', failed=True)
            waiting = f'Waiting for deployment "{name}" rollout to finish: '
            if spec_replicas is not None and updated < spec_replicas:
                return result(f"{waiting}{updated} out of {spec_replicas} new replicas have been updated...")
            if total > updated:
                return result(f"{waiting}{total - updated} old replicas are pending termination...")
            if available < updated:
                return result(f"{waiting}{available} of {updated} updated replicas are available...")
            return result(f'deployment "{name}" successfully rolled out', done=True)
        return result("Waiting for deployment spec update to be observed...")

    def follow_rollout(
        self, ref: DeploymentRef, on_progress: Progress, *, timeout: float, poll: float
    ) -> tuple[bool, str]:
        """Follow a rollout to its end: (True, status) when complete, (False, why) when it failed or timed out."""
        status = self.wait_for_rollout(
            ref, timeout=timeout, poll=poll, on_progress=lambda s: on_progress(s.message)
        )
        if status.done:
            return True, status.message
        reason = "the rollout failed (ProgressDeadlineExceeded)" if status.failed else "timed out waiting"
        return False, f"{reason}: {status.message}"

    def wait_for_rollout(
        self,
        ref: DeploymentRef,
        *,
        timeout: float = 600,
        poll: float = 2,
        on_progress: Callable[[RolloutStatus], None] | None = None,
    ) -> RolloutStatus:
        deadline = self._clock() + timeout
        last_message: str | None = None
        while True:
            status = self.rollout_status(ref)
            if on_progress is not None and status.message != last_message:
                on_progress(status)
            last_message = status.message
            if status.done or status.failed:
                return status
            remaining = deadline - self._clock()
            if remaining <= 0:
                return status
            self._sleep(min(poll, remaining))


# --- the remediation kinds TARS offers on Kubernetes -------------------------------------------------------


def _ref(target: Mapping[str, Any]) -> DeploymentRef:
    return DeploymentRef(
        namespace=str(target["namespace"]), name=str(target["deployment"]), context=target.get("context")
    )


def _facts(action: Rollout, snapshot: DeploymentSnapshot) -> dict[str, Any]:
    if action == "rollback":
        return {"revision": snapshot.revision, "images": snapshot.images}
    return {"replicas": snapshot.replicas}


def kubernetes_kind(client: KubernetesDeployments, action: Rollout) -> RolloutKind[DeploymentRef]:
    return RolloutKind(client, action, _ref, _facts)
