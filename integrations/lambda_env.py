"""Config-only Lambda changes: set environment variables without touching code.

UpdateFunctionConfiguration replaces the WHOLE variable map, so a plan always carries the merged map; sending
only the changed keys would wipe the rest. Secret-looking values never leave this module unmasked: not in
the plan's text, the ActionResult, nor error messages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.aws_clients import AwsIntegration, call
from integrations.plans import (
    ActionResult,
    ConfigKind,
    IntegrationError,
    KindPlan,
    NothingToDo,
    Prepared,
    TargetChanged,
)

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]+")
_MASK = "••••"
_SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE", "DSN", "AUTH", "APIKEY")
_SECRET_TOKENS = frozenset({"KEY", "KEYS", "PASS", "PWD"})
# postgres://user:pw@host — a password hiding in a URL-valued variable (DATABASE_URL) whatever its name.
_URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
# Lambda's 4 KB error quotes the whole variable map back ("String measured: {...}").
_MEASURED = re.compile(r"String measured:.*", re.DOTALL)
# Keys a local fingerprint so it can stand in for RevisionId without being a hash an onlooker could test
# guesses of secret values against; a fingerprint from another process simply reads as "changed".
_FINGERPRINT_KEY = secrets.token_bytes(32)
_LOCAL_REVISION_PREFIX = "local:"


def is_secret_key(key: str) -> bool:
    """Whether a variable name suggests a credential; errs towards masking (AUTHOR is masked, MONKEY is not)."""
    upper = key.upper()
    if any(word in upper for word in _SECRET_WORDS):
        return True
    return any(token in _SECRET_TOKENS for token in upper.split("_"))


def mask(value: str) -> str:
    """A fixed placeholder: never reveals a value's length or any of its characters."""
    return _MASK


def _is_secret(key: str, value: str | None) -> bool:
    return is_secret_key(key) or (value is not None and bool(_URL_WITH_PASSWORD.search(value)))


def _shown(key: str, value: str | None, *, secret: bool) -> str:
    if value is None:
        return "(unset)"
    return mask(value) if secret else repr(value)


def _masked_map(variables: Mapping[str, str]) -> dict[str, str]:
    return {k: mask(v) if _is_secret(k, v) else v for k, v in variables.items()}


@dataclass(frozen=True)
class LambdaEnvSnapshot:
    function: str
    variables: dict[str, str] = field(repr=False)  # repr=False: secrets must not reach logs via repr()
    revision_id: str
    last_update_status: str | None


@dataclass(frozen=True)
class LambdaEnvPlan:
    snapshot: LambdaEnvSnapshot
    changes: dict[str, str] = field(repr=False)  # only keys whose value actually changes
    after: dict[str, str] = field(repr=False)  # the full map to send: current merged with changes

    def diff_lines(self) -> list[str]:
        lines = []
        for key in self.changes:  # the order the change was requested in, as the requester reads it
            old = self.snapshot.variables.get(key)
            new = self.changes[key]
            # Mask both sides if either looks secret: a half-masked pair can still leak the other half.
            secret = _is_secret(key, old) or _is_secret(key, new)
            lines.append(f"{key}: {_shown(key, old, secret=secret)} → {_shown(key, new, secret=secret)}")
        return lines

    def describe(self) -> str:
        return f"lambda {self.snapshot.function}: " + "; ".join(self.diff_lines())

    def secret_values(self) -> set[str]:
        """Every value that is masked anywhere, for scrubbing text AWS echoes back."""
        values = {**self.snapshot.variables, **self.after}
        found = {v for k, v in values.items() if _is_secret(k, v)}
        found |= {old for k, old in self.snapshot.variables.items() if _is_secret(k, old)}
        return {v for v in found if v}


def _scrub(text: str, hidden: Iterable[str]) -> str:
    text = _MEASURED.sub("String measured: (withheld)", text)
    # Longest first so a secret that contains another is replaced whole.
    for value in sorted(hidden, key=len, reverse=True):
        if len(value) >= 3:  # shorter values would mangle ordinary words and are not credentials anyway
            text = text.replace(value, mask(value))
    return text


def _call(
    client: Any,
    operation: str,
    method: str,
    *,
    mutating: bool = False,
    hidden: Iterable[str] = (),
    **params: Any,
) -> Any:
    """integrations.aws_clients.call, with secret values (and Lambda's quoted variable map) scrubbed from errors."""
    hidden = list(hidden)
    return call(
        client, operation, method, mutating=mutating, scrub=lambda text: _scrub(text, hidden), **params
    )


def _local_revision(config: Mapping[str, Any]) -> str:
    """Stand-in revision for endpoints that return no RevisionId (moto): changes whenever config changes."""
    material = json.dumps(
        {
            "LastModified": config.get("LastModified"),
            "CodeSha256": config.get("CodeSha256"),
            "Environment": config.get("Environment"),
        },
        sort_keys=True,
    )
    digest = hmac.new(_FINGERPRINT_KEY, material.encode(), hashlib.sha256).hexdigest()
    return _LOCAL_REVISION_PREFIX + digest[:32]


# What the calls below need, for `tars policy aws`, on the catalog's own resources.
IAM_ACTIONS = {"scoped": ("lambda:GetFunctionConfiguration", "lambda:UpdateFunctionConfiguration")}


class LambdaEnvironment(AwsIntegration):
    service = "lambda"

    def _configuration(self, function: str, hidden: Iterable[str] = ()) -> dict[str, Any]:
        try:
            configuration: dict[str, Any] = _call(
                self._client(),
                "GetFunctionConfiguration",
                "get_function_configuration",
                hidden=hidden,
                FunctionName=function,
            )
        except IntegrationError as error:
            if error.details.get("code") == "ResourceNotFoundException":
                raise IntegrationError(
                    f"Lambda function {function!r} not found", status=error.status, details=error.details
                ) from None
            raise
        return configuration

    def snapshot(self, function: str) -> LambdaEnvSnapshot:
        if not isinstance(function, str) or not function.strip():
            raise IntegrationError(f"invalid Lambda function name {function!r}")
        config = self._configuration(function)
        environment = config.get("Environment") or {}
        if environment.get("Error"):
            # Variables are missing when Lambda cannot decrypt them (KMS); writing a merged map built from
            # nothing would wipe every other variable.
            error = environment["Error"]
            raise IntegrationError(
                f"Lambda {function}: cannot read its environment ({error.get('ErrorCode')}: "
                f"{error.get('Message')}); refusing to change it"
            )
        return LambdaEnvSnapshot(
            function=function,
            variables=dict(environment.get("Variables") or {}),
            revision_id=config.get("RevisionId") or _local_revision(config),
            last_update_status=config.get("LastUpdateStatus"),
        )

    def plan(self, function: str, changes: dict[str, str]) -> LambdaEnvPlan:
        if not changes:
            raise IntegrationError("no environment variable changes given")
        bad_keys = [k for k in changes if not isinstance(k, str) or not _KEY.fullmatch(k)]
        if bad_keys:
            raise IntegrationError(
                f"invalid environment variable name(s): {', '.join(map(repr, bad_keys))} "
                "(a letter, then letters, digits or '_', at least 2 characters)"
            )
        bad_values = sorted(k for k, v in changes.items() if not isinstance(v, str))
        if bad_values:
            raise IntegrationError(f"values must be strings: {', '.join(bad_values)}")
        snap = self.snapshot(function)
        effective = {k: v for k, v in changes.items() if snap.variables.get(k) != v}
        if not effective:
            raise NothingToDo(f"Lambda {function} already has {', '.join(sorted(changes))} set as requested")
        return LambdaEnvPlan(snapshot=snap, changes=effective, after={**snap.variables, **effective})

    def apply(self, plan: LambdaEnvPlan, *, timeout: float = 120, poll: float = 2) -> ActionResult:
        function = plan.snapshot.function
        hidden = plan.secret_values()
        current = self.snapshot(function)
        # Checked up front as well as via RevisionId: endpoints without RevisionId support (moto) would
        # otherwise overwrite a concurrent change, and this gives a clearer message than a 412.
        if current.revision_id != plan.snapshot.revision_id:
            raise TargetChanged(
                f"Lambda {function} configuration changed since the plan; re-plan the environment change",
                details={
                    "planned_revision": plan.snapshot.revision_id,
                    "current_revision": current.revision_id,
                },
            )
        params: dict[str, Any] = {"FunctionName": function, "Environment": {"Variables": dict(plan.after)}}
        if not plan.snapshot.revision_id.startswith(_LOCAL_REVISION_PREFIX):
            params["RevisionId"] = plan.snapshot.revision_id
        shown_params = {**params, "Environment": {"Variables": _masked_map(plan.after)}}
        request = {"operation": "UpdateFunctionConfiguration", "params": shown_params}
        diff = plan.diff_lines()

        def send() -> ActionResult:
            try:
                response = _call(
                    self._client(mutating=True),
                    "UpdateFunctionConfiguration",
                    "update_function_configuration",
                    mutating=True,
                    hidden=hidden,
                    **params,
                )
            except IntegrationError as error:
                if error.details.get("code") == "PreconditionFailedException":
                    raise TargetChanged(
                        f"Lambda {function} configuration changed since the plan; re-plan the environment change",
                        status=error.status,
                        details=error.details,
                    ) from None
                if error.details.get("code") == "ResourceConflictException":
                    raise IntegrationError(
                        f"Lambda {function} is busy with another update ({error.message}); try again shortly",
                        status=error.status,
                        details=error.details,
                    ) from None
                raise
            details: dict[str, Any] = {"diff": diff, "previous_revision_id": plan.snapshot.revision_id}
            status, reason, revision = self._wait_for_update(function, hidden, timeout=timeout, poll=poll)
            details["revision_id"] = revision or response.get("RevisionId")
            details["last_update_status"] = status
            if status == "Failed":
                raise IntegrationError(
                    f"Lambda {function}: configuration update failed: {_scrub(reason or 'no reason given', hidden)}",
                    details=details,
                )
            if status != "Successful":
                why = f" ({_scrub(reason, hidden)})" if reason else ""
                return ActionResult(
                    ok=False,
                    summary=(
                        f"{function}: environment update sent, but LastUpdateStatus is still {status or 'unknown'} "
                        f"after {timeout:g}s{why}; check the function before retrying"
                    ),
                    request=request,
                    details=details,
                )
            return ActionResult(
                ok=True,
                summary=f"{function}: environment updated: {'; '.join(diff)}",
                request=request,
                details=details,
            )

        return self._apply(Prepared(f"set {plan.describe()}", request, send))

    def _wait_for_update(
        self, function: str, hidden: Iterable[str], *, timeout: float, poll: float
    ) -> tuple[str | None, str | None, str | None]:
        """(LastUpdateStatus, reason, RevisionId) once the update settles or the timeout passes."""
        hidden = list(hidden)
        deadline = self._clock() + timeout
        while True:
            try:
                config = self._configuration(function, hidden)
            except IntegrationError as error:
                # The update was already sent; a failed read must not be reported as a failed update.
                config = {"LastUpdateStatus": "unknown", "LastUpdateStatusReason": error.message}
            status = config.get("LastUpdateStatus")
            # Absent status means an API that applies configuration synchronously.
            if status in (None, "Successful", "Failed"):
                return status or "Successful", config.get("LastUpdateStatusReason"), config.get("RevisionId")
            remaining = deadline - self._clock()
            if remaining <= 0:
                return status, config.get("LastUpdateStatusReason"), config.get("RevisionId")
            self._sleep(min(poll, remaining))


class EnvironmentChange(ConfigKind):
    """The remediation kind `lambda_env`: set environment variables; nothing rolls out."""

    def __init__(self, client: LambdaEnvironment) -> None:
        self.client = client

    def plan(self, target: Mapping[str, Any], params: Mapping[str, Any]) -> KindPlan:
        function = str(params["function"])
        plan = self.client.plan(function, dict(params["changes"]))
        return KindPlan(
            plan.describe(),
            {"function": function, "changes": dict(plan.changes)},
            {"revision_id": plan.snapshot.revision_id},
            audit={"function": function, "diff": plan.diff_lines()},
        )

    def apply(self, target: Mapping[str, Any], params: Mapping[str, Any]) -> ActionResult:
        return self.client.apply(self.client.plan(str(params["function"]), dict(params["changes"])))
