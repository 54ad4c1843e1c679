"""Plumbing the AWS integrations (ecs, ssm_flags, lambda_env) share: clients, error translation, timestamps.

boto3 is only a dev/optional dependency, so nothing here imports it at module level: TARS stays importable
without it, and boto3/botocore are loaded only when a client is first built or a failure is translated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from integrations.plans import Integration, IntegrationError

# region -> client of the integration's service. An injected factory (tests, custom credentials) owns its
# clients' retry policy, so the one client it returns serves reads and writes alike.
ClientFactory = Callable[[str | None], Any]

# Reads are idempotent, so they may retry. A mutating call that timed out may still have been applied, and a
# blind retry would repeat it (a second ECS deployment, an SSM version bumped twice, a Lambda update sent
# again), so writes get exactly one attempt. total_max_attempts counts the first try; botocore's
# "max_attempts" counts RETRIES, so max_attempts=1 would still send a mutating call twice.
READ_RETRIES: dict[str, Any] = {"mode": "standard", "total_max_attempts": 3}
WRITE_RETRIES: dict[str, Any] = {"mode": "standard", "total_max_attempts": 1}

_OUTCOME_UNKNOWN = " (the change may or may not have been applied; check before retrying)"


def utc(value: Any) -> datetime | None:
    """A botocore timestamp as a UTC datetime; None for anything that is not a datetime (e.g. absent)."""
    if not isinstance(value, datetime):
        return None
    # botocore returns tz-aware datetimes in the local zone; a naive one would be ambiguous, so assume UTC.
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def call(
    client: Any,
    operation: str,
    method: str,
    *,
    mutating: bool = False,
    scrub: Callable[[str], str] | None = None,
    **params: Any,
) -> Any:
    """Run one API call, turning botocore failures into IntegrationError the channel can act on.

    `scrub` rewrites AWS's error text before it goes into the IntegrationError (lambda_env masks secret
    values AWS echoes back). With it, the botocore error is not chained to the IntegrationError either, since
    its unscrubbed text would otherwise reach tracebacks and error reporters.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return getattr(client, method)(**params)
    except (ClientError, BotoCoreError) as error:
        failure = _integration_error(error, operation, mutating=mutating, scrub=scrub)
        if scrub is None:
            raise failure from error
    # Raised outside the except block so neither __cause__ nor __context__ keeps the botocore error.
    raise failure


def _integration_error(
    error: Exception, operation: str, *, mutating: bool, scrub: Callable[[str], str] | None
) -> IntegrationError:
    from botocore.exceptions import ClientError

    clean = scrub or str
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        code = str(info.get("Code", "Unknown"))
        # Without a Message, the plain variant falls back to botocore's own rendering of the error; the
        # scrubbing variant has always reported it as empty.
        message = clean(str(info.get("Message", error if scrub is None else "")))
        return IntegrationError(
            f"AWS {operation}: {code}: {message}",
            status=error.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
            details={"operation": operation, "code": code, "message": message},
        )
    # A transport failure (BotoCoreError) on a write leaves the outcome unknown; say so rather than suggest a
    # retry.
    unknown = _OUTCOME_UNKNOWN if mutating else ""
    text = clean(str(error))
    return IntegrationError(
        f"AWS {operation}: {type(error).__name__}: {text}{unknown}",
        details={"operation": operation, "code": type(error).__name__, "message": text},
    )


class AwsClients:
    """Lazily built boto3 clients of one service, cached per (region, mutating) and safe to share across threads.

    Without an injected factory, reads and writes get separate clients because their retry policies differ
    (READ_RETRIES / WRITE_RETRIES); with one, the factory's single client per region serves both.
    """

    def __init__(
        self, service: str, *, client_factory: ClientFactory | None, endpoint_url: str | None
    ) -> None:
        self._service = service
        self._factory = client_factory
        self._endpoint_url = endpoint_url
        self._clients: dict[tuple[str | None, bool], Any] = {}
        self._lock = threading.Lock()

    def get(self, region: str | None, *, mutating: bool = False) -> Any:
        key = (region, mutating and self._factory is None)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._build(region, mutating=mutating)
            return self._clients[key]

    def _build(self, region: str | None, *, mutating: bool) -> Any:
        if self._factory is not None:
            return self._factory(region)
        import boto3
        from botocore.config import Config

        return boto3.client(
            self._service,
            region_name=region,
            endpoint_url=self._endpoint_url,
            config=Config(retries=WRITE_RETRIES if mutating else READ_RETRIES),
        )


class AwsIntegration(Integration):
    """What the AWS integrations share: their boto3 clients (built on first use), the default region, and a
    clock for waiting on AWS."""

    service: ClassVar[str]  # the boto3 service name: ecs, ssm, lambda

    def __init__(
        self,
        *,
        client_factory: ClientFactory | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        dry_run: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(dry_run=dry_run)
        self._clients = AwsClients(self.service, client_factory=client_factory, endpoint_url=endpoint_url)
        self._region = region
        self._clock = clock
        self._sleep = sleep

    def _client(self, region: str | None = None, *, mutating: bool = False) -> Any:
        return self._clients.get(region or self._region, mutating=mutating)
