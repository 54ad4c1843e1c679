"""A simulated production for `tars sandbox`: platforms TARS remediates for real, started in this process.

`DemoWorld` starts, on loopback, everything TARS talks to when it remediates, each speaking the real protocol
to TARS's unmodified integrations:

- the fake Kubernetes API (sandbox/fakes/kubernetes_api.py) holding the `payments` Deployment;
- moto's AWS server holding the `checkout` ECS service, the runbook's four SSM feature flags and the
  `payments-webhook` Lambda function;
- the fake GitHub (sandbox/fakes/github_api.py) holding each service's repository and the commits behind its
  releases;
- a Prometheus-compatible metrics source (GET /api/v1/query_range) whose numbers are computed from the state
  the platforms above are really in, so a remediation shows up in TARS's charts and verdicts.

The story, as the world starts: payments 2.4.0 went out 20 minutes ago and sends card payments through the
new processor, which fails 5% of them; checkout 5.1.0 went out 50 minutes ago and validates addresses so
strictly that 5% of orders fail. Either service recovers (0.05% errors) once its bad release is rolled back,
or once its flag turns the bad change off (`payment.new_processor.enabled`, `checkout.address_validation.strict`
set to false), from that moment on; turning the flag back on breaks it again.

    world = DemoWorld().start()
    config = Config(**world.config_overrides(), ...)
    app = create_app(config, platforms=world.platforms(config), github=world.github_client())
    ...
    world.stop()

Only the sandbox and the tests import this; production code never does.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import logging
import math
import os
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import boto3
from botocore.config import Config as BotoConfig

from bot.core.settings import (
    ApproversConfig,
    AwsConfig,
    Config,
    EcsTarget,
    FlagConfig,
    GitHubConfig,
    KubernetesTarget,
    MetricsConfig,
    PrometheusSource,
    ServiceConfig,
)
from bot.remediation.platforms import Platforms
from integrations.ecs_services import EcsServices
from integrations.github_repos import GitHubClient
from integrations.kubernetes_rollouts import KubernetesDeployments
from integrations.lambda_env import LambdaEnvironment
from integrations.ssm_flags import FeatureFlags
from sandbox.fakes.github_api import FakeGitHub
from sandbox.fakes.kubernetes_api import FakeKubernetes, KubeApiError
from sandbox.personas import Persona

__all__ = [
    "DemoService",
    "DemoWorld",
    "Persona",
    "Release",
    "StateChange",
    "error_rate_query",
    "latency_query",
]

log = logging.getLogger(__name__)

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account, whose backends the server below answers from
HEALTHY_ERROR_RATE = 0.0005  # 0.05%: under the runbook's 0.1%
BROKEN_ERROR_RATE = 0.05  # 5%
POLL_SECONDS = 0.5  # how often the platforms' state is looked at, so a change is dated within half a second
MAX_POINTS = 11_000  # Prometheus's own limit per series of a range query
NAMESPACE = "production"  # Kubernetes namespace and ECS cluster: the runbook's names
FUNCTION = "payments-webhook"


@dataclass(frozen=True)
class Release:
    """One version of a service as it went out: what the platform ran, when, and the commit behind it."""

    version: str  # "2.4.0"
    image: str  # the container image the platform runs
    deployed_at: datetime
    commit: str  # its commit's sha in the service's repository
    change: str  # that commit's message


@dataclass(frozen=True)
class DemoService:
    """A service of the demo catalog and its story. The last release is the bad one, live when the world
    starts; the service is broken while it runs and `flag` is not `flag_off`."""

    name: str
    platform: str  # kubernetes | ecs
    releases: tuple[Release, ...]  # oldest first
    flag: str  # the catalog flag that turns the bad release's change off...
    flag_off: str  # ...when set to this
    repository: str
    healthy_latency: float  # p99 in seconds
    broken_latency: float

    @property
    def bad(self) -> Release:
        return self.releases[-1]

    @property
    def good(self) -> Release:
        """The release a rollback goes back to."""
        return self.releases[-2]


@dataclass(frozen=True)
class StateChange:
    """What a service ran from `at` on, as the platforms said, and whether that made it fail."""

    at: datetime
    service: str
    version: str | None  # a release's version, or the raw image / task definition if it is none of them
    flag_value: str | None
    broken: bool

    @property
    def error_rate(self) -> float:
        return BROKEN_ERROR_RATE if self.broken else HEALTHY_ERROR_RATE


PERSONAS: dict[str, Persona] = {
    persona.name.split(".")[0]: persona
    for persona in (
        Persona("U0YOU", "you", "You", "declares incidents and asks for remediation"),
        Persona("U0PAYONCALL", "pat.payments", "Pat Payments", "payments on-call"),
        Persona("U0CHKONCALL", "chris.checkout", "Chris Checkout", "checkout on-call"),
        Persona("U0NTFONCALL", "noor.notifications", "Noor Notifications", "notifications on-call"),
        Persona("U0APIONCALL", "ari.api", "Ari API", "api on-call"),
        # Two approvers, neither of them you: a P1 needs one approval, a P2 both, and nobody approves their own.
        Persona("U0ALEX", "alex.sre", "Alex SRE", "approver"),
        Persona("U0JORDAN", "jordan.sre", "Jordan SRE", "approver"),
    )
}

# The runbook's flags (remediation runbook, Option 2), every one of them on when the world starts.
FLAGS: dict[str, FlagConfig] = {
    "payment.new_processor.enabled": FlagConfig(
        service="payments",
        description="Falls back to the legacy payment processor (when the new processor causes failures)",
    ),
    "checkout.address_validation.strict": FlagConfig(
        service="checkout",
        description="Loosens address validation (when validation blocks valid orders)",
    ),
    "notifications.email.enabled": FlagConfig(
        service="notifications",
        description="Disables email notifications (during an email provider outage)",
    ),
    "api.rate_limiting.enabled": FlagConfig(
        service="api", description="Disables rate limiting (when legitimate traffic is being blocked)"
    ),
}


@dataclass(frozen=True)
class _Plan:
    """A release before it exists: how long before the world's start it went out, and its commit."""

    version: str
    ago: timedelta
    change: str
    files: dict[str, str]


@dataclass(frozen=True)
class _Story:
    platform: str
    flag: str  # off (false) turns the last release's change off
    latency: tuple[float, float]  # p99 seconds: healthy, broken
    releases: tuple[_Plan, ...]  # oldest first; the last is the bad one


_HOUR, _MINUTE = timedelta(hours=1), timedelta(minutes=1)
_STORIES: dict[str, _Story] = {
    "payments": _Story(
        "kubernetes",
        "payment.new_processor.enabled",
        (0.12, 0.48),
        (
            _Plan(
                "2.3.0", 26 * _HOUR, "Retry card authorisations once on a gateway timeout", {"RETRIES": "1\n"}
            ),
            _Plan("2.3.1", 5 * _HOUR, "Bump the card SDK to 7.2", {"requirements.txt": "card-sdk==7.2.0\n"}),
            _Plan(
                "2.4.0",
                20 * _MINUTE,
                "Route card payments through the new processor",
                {"payments/processor.py": "NEW_PROCESSOR = flags.enabled('payment.new_processor.enabled')\n"},
            ),
        ),
    ),
    "checkout": _Story(
        "ecs",
        "checkout.address_validation.strict",
        (0.18, 0.62),
        (
            _Plan("5.0.2", 30 * _HOUR, "Cache shipping quotes for five minutes", {"QUOTE_TTL": "300\n"}),
            _Plan(
                "5.1.0",
                50 * _MINUTE,
                "Validate addresses strictly against the postal database",
                {"checkout/address.py": "STRICT = flags.enabled('checkout.address_validation.strict')\n"},
            ),
        ),
    ),
}


def error_rate_query(service: str) -> str:
    """The demo catalog's error-rate "PromQL" for a service, which the demo metrics source answers."""
    return f'demo_error_rate{{service="{service}"}}'


def latency_query(service: str) -> str:
    return f'demo_latency_p99{{service="{service}"}}'


_QUERY = re.compile(r'^\s*demo_(error_rate|latency_p99)\s*\{\s*service\s*=\s*"([^"]*)"\s*\}\s*$')


class _BadQuery(ValueError):
    """Answered as Prometheus answers a query it cannot run: 400, errorType bad_data."""


@dataclass(frozen=True)
class _Facts:
    version: str | None
    flag_value: str | None


class DemoWorld:
    """The simulated platforms, their story, and what the sandbox needs to point TARS at them."""

    personas: dict[str, Persona] = PERSONAS

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        # Wall-clock seconds. moto stamps with the real time, so this is the real clock except in tests that
        # pin it near it.
        self._clock = clock
        self.alertmanager_token = secrets.token_urlsafe(24)
        self._github_token = secrets.token_urlsafe(24)
        self._seeding_at: float | None = None  # while seeding, what the fake cluster's clock says
        self.kubernetes = FakeKubernetes(wall_clock=self._cluster_time)
        self.github = FakeGitHub(token=self._github_token)
        self.services: dict[str, DemoService] = {}
        self._history: dict[str, list[StateChange]] = {}
        self._history_lock = threading.Lock()
        self._observe_lock = threading.Lock()  # one observation at a time: they share boto3 clients
        self._clients: dict[str, Any] = {}
        self._moto: Any = None
        self._metrics: _MetricsServer | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._credentials_set: list[str] = []
        self.aws_endpoint = ""
        self.metrics_url = ""

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> DemoWorld:
        from moto.server import ThreadedMotoServer

        self._stopping.clear()
        # moto accepts any credentials; TARS's boto3 clients only need some. Never override a developer's own.
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if name not in os.environ:
                os.environ[name] = "demo"
                self._credentials_set.append(name)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per AWS request otherwise
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.aws_endpoint = f"http://{host}:{port}"
        # moto's backends are global to the process: start from nothing, whatever ran here before.
        self._reset_moto()
        self.kubernetes.start()
        self.github.start()
        self._seed(datetime.fromtimestamp(self._clock(), UTC))
        self._metrics = _MetricsServer(self)
        self.metrics_url = f"http://127.0.0.1:{self._metrics.server_address[1]}"
        self._spawn(self._metrics.serve_forever, "demo-metrics", poll_interval=0.05)
        self._spawn(self._watch, "demo-world-watch")
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
            self._metrics = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self.kubernetes.stop()
        self.github.stop()
        if self._moto is not None:
            self._reset_moto()  # leave no demo state in the process's moto backends
            self._moto.stop()
            self._moto = None
        for name in self._credentials_set:
            os.environ.pop(name, None)
        self._credentials_set.clear()

    def __enter__(self) -> DemoWorld:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- what the sandbox builds TARS from ------------------------------------------------------------------------

    def config_overrides(self) -> dict[str, Any]:
        """Config fields pointing TARS at this world: the demo catalog, flags, approvers, AWS, GitHub and the
        Alertmanager token. Values are the config's own models, so they also suit `Config.model_copy(update=)`."""
        self._require_started()

        def metrics(service: str) -> MetricsConfig:
            source = PrometheusSource(
                url=self.metrics_url, error_rate=error_rate_query(service), latency=latency_query(service)
            )
            return MetricsConfig(prometheus=source)

        services = {
            "payments": ServiceConfig(
                oncall=PERSONAS["pat"].slack_id,
                description="Card payments and the payment processor integration",
                kubernetes=KubernetesTarget(namespace=NAMESPACE, deployment="payments"),
                repository="acme/payments",
                lambda_functions=[FUNCTION],
                metrics=metrics("payments"),
            ),
            "checkout": ServiceConfig(
                oncall=PERSONAS["chris"].slack_id,
                description="Cart, address validation and order placement",
                ecs=EcsTarget(cluster=NAMESPACE, service="checkout"),
                repository="acme/checkout",
                metrics=metrics("checkout"),
            ),
            "notifications": ServiceConfig(
                oncall=PERSONAS["noor"].slack_id, description="Email and push notifications"
            ),
            "api": ServiceConfig(
                oncall=PERSONAS["ari"].slack_id, description="Public API gateway and rate limiting"
            ),
        }
        return {
            "services": services,
            "flags": dict(FLAGS),
            "approvers": ApproversConfig(users=[PERSONAS["alex"].slack_id, PERSONAS["jordan"].slack_id]),
            "aws": AwsConfig(region=REGION, endpoint_url=self.aws_endpoint),
            "github": GitHubConfig(base_url=self.github.base_url),
            "github_token": self._github_token,
            "alertmanager_token": self.alertmanager_token,
            "dry_run": False,
        }

    def platforms(
        self, config: Config, *, rollout_timeout: float = 60, poll_seconds: float = 0.2
    ) -> Platforms:
        """TARS's platform clients, bound to this world: Kubernetes through the fake API, ECS, SSM and Lambda
        through moto with throwaway credentials (whatever AWS credentials the developer has stay unused)."""
        self._require_started()
        dry_run = config.dry_run
        return Platforms(
            config,
            kubernetes=KubernetesDeployments(
                api_client_factory=lambda _context: self.kubernetes.api_client(), dry_run=dry_run
            ),
            ecs=EcsServices(client_factory=self._client_factory("ecs"), region=REGION, dry_run=dry_run),
            flags=FeatureFlags(client_factory=self._client_factory("ssm"), region=REGION, dry_run=dry_run),
            lambdas=LambdaEnvironment(
                client_factory=self._client_factory("lambda"), region=REGION, dry_run=dry_run
            ),
            rollout_timeout=rollout_timeout,
            poll_seconds=poll_seconds,
        )

    def github_client(self) -> GitHubClient:
        """A client of the fake GitHub; unpaced, since nobody's rate limit is at stake."""
        self._require_started()
        return GitHubClient(
            token=self._github_token,
            base_url=self.github.base_url,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )

    def aws_client(self, service: str) -> Any:
        """A boto3 client of this world's moto server (e.g. "ssm"), to look at what TARS changed."""
        return self._new_client(service, REGION)

    # --- what is true ---------------------------------------------------------------------------------------------

    def history(self, service: str) -> list[StateChange]:
        """Every change of what the service ran (or of its flag), oldest first, up to now."""
        self._observe()
        with self._history_lock:
            return list(self._history.get(service, []))

    def state_at(self, service: str, at: datetime | None = None) -> StateChange | None:
        """What the service ran at `at` (default: now); None before it existed or for a service without a story."""
        moment = self._observe() if at is None else at.timestamp()
        return self._state_at(service, moment)

    def error_rate(self, service: str, at: datetime | None = None) -> float | None:
        state = self.state_at(service, at)
        return state.error_rate if state is not None else None

    def latency(self, service: str, at: datetime | None = None) -> float | None:
        state = self.state_at(service, at)
        return self._latency_of(state) if state is not None else None

    def _latency_of(self, state: StateChange) -> float:
        story = self.services[state.service]
        return story.broken_latency if state.broken else story.healthy_latency

    # --- alerts ---------------------------------------------------------------------------------------------------

    def alertmanager_payload(self, service: str, alertname: str, status: str = "firing") -> dict[str, Any]:
        """An Alertmanager webhook body (payload version 4) for one alert about `service`, as Alertmanager would
        send it to TARS's POST /signals/alertmanager, its summary saying what the metrics say now."""
        if status not in ("firing", "resolved"):
            raise ValueError("status must be 'firing' or 'resolved'")
        self._require_started()
        now = self._observe()
        state = self._state_at(service, now)
        labels = {"alertname": alertname, "service": service, "severity": "critical"}
        onset = self._onset(service, now) if state is not None and state.broken else None
        alert = {
            "status": status,
            "labels": labels,
            "annotations": {"summary": self._summary(service, alertname, state)},
            "startsAt": _rfc3339(onset if onset is not None else now),
            "endsAt": _rfc3339(now) if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": f"{self.metrics_url}/graph?g0.expr={quote(error_rate_query(service))}",
            # Alertmanager's fingerprint is a hash of the labels: the same alert again is the same alert.
            "fingerprint": hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16],
        }
        return {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{alertname}", service="{service}"}}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "tars",
            "groupLabels": {"alertname": alertname, "service": service},
            "commonLabels": labels,
            "commonAnnotations": alert["annotations"],
            "externalURL": "http://alertmanager.demo.invalid",
            "alerts": [alert],
        }

    def fire_alert(
        self, tars_base_url: str, service: str, alertname: str, status: str = "firing"
    ) -> tuple[int, dict[str, Any]]:
        """POST the alert to TARS with the bearer token, as Alertmanager does; TARS's status and JSON answer."""
        body = json.dumps(self.alertmanager_payload(service, alertname, status)).encode()
        request = urllib.request.Request(
            tars_base_url.rstrip("/") + "/signals/alertmanager",
            data=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.alertmanager_token}",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, _json_or_empty(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, _json_or_empty(error.read())

    def _summary(self, service: str, alertname: str, state: StateChange | None) -> str:
        if state is None:
            return f"{alertname} for {service}"
        if "latency" in alertname.lower():
            return f"p99 latency {self._latency_of(state) * 1000:.0f} ms"
        return f"5xx at {state.error_rate:.2%} of requests"

    def _onset(self, service: str, now: float) -> float:
        """When the current broken stretch began."""
        with self._history_lock:
            changes = [c for c in self._history.get(service, []) if c.at.timestamp() <= now]
        onset = now
        for change in reversed(changes):
            if not change.broken:
                break
            onset = change.at.timestamp()
        return onset

    # --- seeding: the story up to now, with each platform stamping what it did at the time it did it -----------

    def _seed(self, started: datetime) -> None:
        ecs, ssm = self._shared_client("ecs"), self._shared_client("ssm")
        ecs.create_cluster(clusterName=NAMESPACE)
        for name, flag in FLAGS.items():
            ssm.put_parameter(Name=flag.parameter_path(name), Value="true", Type="String")
        self._seed_lambda()
        steps: list[tuple[datetime, Callable[[], None]]] = []
        for service, story in _STORIES.items():
            repository = f"acme/{service}"
            self.github.create_repo(repository)
            self.github.commit(
                repository,
                {"README.md": f"# {service}\n"},
                message="Initial commit",
                date=_rfc3339((started - timedelta(days=90)).timestamp()),
            )
            releases = []
            for revision, plan in enumerate(story.releases, start=1):
                deployed_at = started - plan.ago
                image = f"acme/{service}:{plan.version}"
                # Merged a quarter of an hour before it went out.
                sha = self.github.commit(
                    repository,
                    {**plan.files, "VERSION": plan.version + "\n"},
                    message=plan.change,
                    date=_rfc3339((deployed_at - 15 * _MINUTE).timestamp()),
                )
                releases.append(Release(plan.version, image, deployed_at, sha, plan.change))
                steps.append((deployed_at, self._deployer(service, story.platform, revision, image)))
            healthy, broken = story.latency
            self.services[service] = DemoService(
                service, story.platform, tuple(releases), story.flag, "false", repository, healthy, broken
            )
        for moment, deploy in sorted(steps, key=lambda step: step[0]):
            self._seeding_at = moment.timestamp()
            deploy()
            self._record(moment.timestamp())
        self._seeding_at = None
        self._record(started.timestamp())

    def _deployer(self, service: str, platform: str, revision: int, image: str) -> Callable[[], None]:
        def deploy() -> None:
            if platform == "kubernetes":
                if revision == 1:
                    self.kubernetes.create_deployment(NAMESPACE, service, image=image, replicas=3)
                else:
                    self.kubernetes.set_image(NAMESPACE, service, image)
            else:
                self._deploy_ecs(service, revision, image)

        return deploy

    def _deploy_ecs(self, service: str, revision: int, image: str) -> None:
        ecs = self._shared_client("ecs")
        ecs.register_task_definition(
            family=service, containerDefinitions=[{"name": "app", "image": image, "memory": 256}]
        )
        if revision == 1:
            # moto reports tasks running, and so a finished rollout TARS can follow, only for a service created
            # while this variable says how many run.
            with _environment("MOTO_ECS_SERVICE_RUNNING", "2"):
                ecs.create_service(
                    cluster=NAMESPACE, serviceName=service, taskDefinition=f"{service}:1", desiredCount=2
                )
        else:
            ecs.update_service(
                cluster=NAMESPACE,
                service=service,
                taskDefinition=f"{service}:{revision}",
                forceNewDeployment=True,
            )
        # No ECS call dates a deployment in the past, and TARS's rollback advice reads this date: set it in
        # moto's backend (in this process), naive UTC as moto keeps it.
        from moto.ecs.models import ecs_backends

        moment = datetime.fromtimestamp(self._cluster_time(), UTC).replace(tzinfo=None)
        deployment = ecs_backends[ACCOUNT][REGION].services[f"{NAMESPACE}:{service}"].deployments[0]
        deployment["createdAt"] = deployment["updatedAt"] = moment

    def _seed_lambda(self) -> None:
        role = self._shared_client("iam").create_role(
            RoleName=f"{FUNCTION}-role",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "def handle(event, context):\n    return None\n")
        # Only created and reconfigured, never invoked: moto needs no Docker for that.
        self._shared_client("lambda").create_function(
            FunctionName=FUNCTION,
            Runtime="python3.11",
            Role=role,
            Handler="handler.handle",
            Code={"ZipFile": code.getvalue()},
            Environment={"Variables": {"PROCESSOR": "new", "WEBHOOK_TIMEOUT_MS": "3000"}},
        )

    def _cluster_time(self) -> float:
        return self._seeding_at if self._seeding_at is not None else self._clock()

    # --- watching the platforms -----------------------------------------------------------------------------------

    def _watch(self) -> None:
        # Between queries too, so a change is dated when it happened and a change undone is not missed.
        while not self._stopping.wait(POLL_SECONDS):
            try:
                self._observe()
            except Exception:  # a platform stopping under us, say: the next look will tell
                log.debug("demo world: looking at the platforms failed", exc_info=True)

    def _observe(self) -> float:
        """Look at the platforms now and record what changed; the moment looked at."""
        now = self._clock()
        self._record(now)
        return now

    def _record(self, at: float) -> None:
        with self._observe_lock:
            facts = self._facts()
        moment = datetime.fromtimestamp(at, UTC)
        with self._history_lock:
            for service, seen in facts.items():
                changes = self._history.setdefault(service, [])
                last = changes[-1] if changes else None
                if last is not None and (last.version, last.flag_value) == (seen.version, seen.flag_value):
                    continue
                if last is None and seen.version is None:
                    continue  # not deployed yet
                story = self.services[service]
                broken = seen.version == story.bad.version and seen.flag_value != story.flag_off
                changes.append(StateChange(moment, service, seen.version, seen.flag_value, broken))

    def _facts(self) -> dict[str, _Facts]:
        paths = {FLAGS[s.flag].parameter_path(s.flag): s.flag for s in self.services.values()}
        answer = self._shared_client("ssm").get_parameters(Names=sorted(paths))
        flags = {paths[p["Name"]]: str(p["Value"]) for p in answer.get("Parameters", [])}
        return {
            name: _Facts(self._live_version(story), flags.get(story.flag))
            for name, story in self.services.items()
        }

    def _live_version(self, story: DemoService) -> str | None:
        if story.platform == "kubernetes":
            try:
                deployment = self.kubernetes.deployment(NAMESPACE, story.name)
            except KubeApiError:
                return None
            image = str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])
            return next((r.version for r in story.releases if r.image == image), image)
        described = self._shared_client("ecs").describe_services(cluster=NAMESPACE, services=[story.name])
        running = [s for s in described.get("services", []) if s.get("status") == "ACTIVE"]
        if not running:
            return None
        # moto keeps what it was given: an ARN, or family:revision.
        task_definition = str(running[0]["taskDefinition"])
        revision = task_definition.rsplit(":", 1)[-1]
        if revision.isdigit() and 1 <= int(revision) <= len(story.releases):
            return story.releases[int(revision) - 1].version
        return task_definition

    def _state_at(self, service: str, at: float) -> StateChange | None:
        with self._history_lock:
            changes = self._history.get(service, [])
            index = bisect.bisect_right([c.at.timestamp() for c in changes], at)
            return changes[index - 1] if index else None

    # --- the metrics source ----------------------------------------------------------------------------------

    def _query_range(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Prometheus's matrix result for a range query of the demo series."""
        matched = _QUERY.match(params.get("query", ""))
        if matched is None:
            raise _BadQuery(
                f"unknown query {params.get('query', '')!r}: the demo metrics source answers "
                f"{error_rate_query('<service>')} and {latency_query('<service>')}"
            )
        metric, service = matched.groups()
        start, end = _timestamp(params, "start"), _timestamp(params, "end")
        step = _step(params.get("step", ""))
        if end < start:
            raise _BadQuery("end timestamp must not be before start time")
        if (end - start) / step > MAX_POINTS:
            raise _BadQuery(
                f"exceeded maximum resolution of {MAX_POINTS:,} points per timeseries. "
                "Try decreasing the query resolution (?step=XX)"
            )
        try:
            now = self._observe()
        except Exception:  # a platform going away as the world stops: answer from what was last seen
            log.debug("demo world: looking at the platforms failed", exc_info=True)
            now = self._clock()
        values = []
        # Prometheus evaluates at start, start + step, ... up to end; nothing is known after now.
        for index in range(int((min(end, now) - start) / step) + 1 if start <= now else 0):
            at = start + index * step
            state = self._state_at(service, at)
            if state is not None:
                value = state.error_rate if metric == "error_rate" else self._latency_of(state)
                values.append([round(at, 3), repr(value)])
        if not values:
            return []  # as Prometheus answers for a series that has no samples in the window
        return [{"metric": {"__name__": f"demo_{metric}", "service": service}, "values": values}]

    # --- plumbing -------------------------------------------------------------------------------------------------

    def _new_client(self, service: str, region: str | None) -> Any:
        # One attempt per call, as TARS's own write clients make: a retried write could apply twice.
        return boto3.client(
            service,
            region_name=region or REGION,
            endpoint_url=self.aws_endpoint,
            aws_access_key_id="demo",
            aws_secret_access_key="demo",
            config=BotoConfig(retries={"mode": "standard", "total_max_attempts": 1}),
        )

    def _shared_client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._new_client(service, REGION)
        return self._clients[service]

    def _client_factory(self, service: str) -> Callable[[str | None], Any]:
        return lambda region: self._new_client(service, region)

    def _reset_moto(self) -> None:
        request = urllib.request.Request(f"{self.aws_endpoint}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def _spawn(self, target: Callable[..., None], name: str, **kwargs: Any) -> None:
        thread = threading.Thread(target=target, kwargs=kwargs, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _require_started(self) -> None:
        if not self.metrics_url:
            raise RuntimeError("start() the DemoWorld first")


class _MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, world: DemoWorld) -> None:
        super().__init__(("127.0.0.1", 0), _MetricsHandler)
        self.world = world


class _MetricsHandler(BaseHTTPRequestHandler):
    """GET (or form POST) /api/v1/query_range, answered in Prometheus's JSON shapes."""

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        self._answer(split.path, split.query)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(urlsplit(self.path).path, self.rfile.read(length).decode("utf-8", "replace"))

    def _answer(self, path: str, query: str) -> None:
        assert isinstance(self.server, _MetricsServer)
        world = self.server.world
        if path != "/api/v1/query_range":
            self._send(
                404, {"status": "error", "errorType": "not_found", "error": f"no such endpoint {path}"}
            )
            return
        params = {key: values[-1] for key, values in parse_qs(query).items()}
        try:
            result = world._query_range(params)
        except _BadQuery as error:
            self._send(400, {"status": "error", "errorType": "bad_data", "error": str(error)})
            return
        self._send(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the sandbox's prompt is no place for an access log


# --- small helpers ----------------------------------------------------------------------------------------------


def _timestamp(params: dict[str, str], name: str) -> float:
    """A Prometheus time parameter: Unix seconds or RFC 3339."""
    text = params.get(name, "")
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise _BadQuery(f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp') from None


_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _step(text: str) -> float:
    """A Prometheus step: seconds, or a duration like 15s or 1m."""
    try:
        seconds = float(text)
    except ValueError:
        matched = _DURATION.match(text)
        if matched is None:
            raise _BadQuery(f'invalid parameter "step": cannot parse "{text}" to a valid duration') from None
        seconds = int(matched.group(1)) * _UNIT_SECONDS[matched.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise _BadQuery(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
        )
    return seconds


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _rfc3339(seconds: float) -> str:
    return _utc(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_or_empty(body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body or b"{}")
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved
