"""Feature flags kept in SSM Parameter Store at /production/<service>/<flag-name>.

Flipping a flag is the runbook's fastest config-level fix ("changes take effect within 60 seconds"). The plan
records the parameter's version; apply refuses (TargetChanged) if anyone wrote the parameter since.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from integrations.aws_clients import AwsIntegration, call, utc
from integrations.plans import (
    ActionResult,
    ConfigKind,
    IntegrationError,
    KindPlan,
    NothingToDo,
    Prepared,
    TargetChanged,
)

# Parameter Store's own character set for hierarchical names; rejecting early gives a clearer message.
_PATH = re.compile(r"(/[A-Za-z0-9_.\-]+)+")
_PROPAGATION = "takes effect within 60 seconds"


@dataclass(frozen=True)
class FlagValue:
    path: str
    value: str
    version: int
    last_modified: datetime | None


@dataclass(frozen=True)
class FlagChangePlan:
    current: FlagValue | None  # None when the parameter does not exist yet
    path: str
    new_value: str

    def describe(self) -> str:
        before = f"{self.current.value} (v{self.current.version})" if self.current else "(not set)"
        return f"{self.path}: {before} → {self.new_value}"


def _check_path(path: str) -> None:
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise IntegrationError(
            f"invalid flag path {path!r}: expected /<env>/<service>/<flag-name> "
            "(letters, digits, '_', '.', '-' between slashes)"
        )


# What the calls below need, for `tars policy aws`, on the catalog's own resources.
IAM_ACTIONS = {"scoped": ("ssm:GetParameter", "ssm:GetParameterHistory", "ssm:PutParameter")}


class FeatureFlags(AwsIntegration):
    service = "ssm"

    def _get(self, path: str) -> dict[str, Any] | None:
        _check_path(path)
        try:
            response = call(self._client(), "GetParameter", "get_parameter", Name=path)
        except IntegrationError as error:
            if error.details.get("code") == "ParameterNotFound":
                return None
            raise
        parameter: dict[str, Any] = response["Parameter"]
        return parameter

    @staticmethod
    def _flag(parameter: dict[str, Any]) -> FlagValue:
        return FlagValue(
            path=parameter["Name"],
            value=parameter["Value"],
            version=int(parameter["Version"]),
            last_modified=utc(parameter.get("LastModifiedDate")),
        )

    def read(self, path: str) -> FlagValue | None:
        parameter = self._get(path)
        return self._flag(parameter) if parameter is not None else None

    def plan(self, path: str, new_value: str) -> FlagChangePlan:
        if not isinstance(new_value, str) or not new_value:
            raise IntegrationError(f"new value for {path} must be a non-empty string, not {new_value!r}")
        parameter = self._get(path)
        if parameter is not None and parameter.get("Type", "String") != "String":
            # Apply writes Type=String; overwriting a SecureString/StringList would silently change its type.
            raise IntegrationError(
                f"{path} is a {parameter.get('Type')} parameter; TARS only changes plain String flags"
            )
        current = self._flag(parameter) if parameter is not None else None
        if current is not None and current.value == new_value:
            raise NothingToDo(f"{path} is already {new_value} (v{current.version})")
        return FlagChangePlan(current=current, path=path, new_value=new_value)

    def apply(self, plan: FlagChangePlan) -> ActionResult:
        now = self.read(plan.path)
        planned = plan.current
        if (planned is None) != (now is None) or (
            planned is not None and now is not None and now.version != planned.version
        ):
            seen = f"v{now.version} ({now.value})" if now else "deleted"
            was = f"v{planned.version}" if planned else "absent"
            raise TargetChanged(
                f"{plan.path} changed since the plan: it was {was}, now {seen}; re-plan the flag change",
                details={
                    "planned_version": planned.version if planned else None,
                    "current_version": now.version if now else None,
                },
            )
        # Creating uses Overwrite=False so a parameter created by someone else in the meantime is refused by
        # Parameter Store itself rather than silently overwritten.
        creating = planned is None
        params: dict[str, Any] = {
            "Name": plan.path,
            "Value": plan.new_value,
            "Type": "String",
            "Overwrite": not creating,
        }
        request = {"operation": "PutParameter", "params": params}

        def send() -> ActionResult:
            try:
                response = call(
                    self._client(mutating=True), "PutParameter", "put_parameter", mutating=True, **params
                )
            except IntegrationError as error:
                if creating and error.details.get("code") == "ParameterAlreadyExists":
                    raise TargetChanged(
                        f"{plan.path} was created by someone else since the plan; re-plan the flag change",
                        details=error.details,
                    ) from error
                raise
            version = int(response.get("Version", 0))
            details: dict[str, Any] = {
                "path": plan.path,
                "old_value": planned.value if planned else None,
                "new_value": plan.new_value,
                "version": version,
            }
            note = ""
            expected = (planned.version if planned else 0) + 1
            if version != expected:
                # Parameter Store has no conditional put: a write between our check and our put shows up only as
                # a version jump, so surface it instead of claiming a clean change.
                details["concurrent_write_suspected"] = True
                note = f" — expected v{expected}, so someone else also wrote it; check history"
            before = f"{planned.value} (v{planned.version})" if planned else "(not set)"
            return ActionResult(
                ok=True,
                summary=f"{plan.path}: {before} → {plan.new_value} (v{version}); {_PROPAGATION}{note}",
                request=request,
                details=details,
            )

        return self._apply(
            Prepared(f"set {plan.describe()} (would take effect within 60 seconds)", request, send)
        )

    def history(self, path: str, limit: int = 10) -> list[FlagValue]:
        """Newest first. Parameter Store returns oldest first and keeps ≤100 versions, so read them all."""
        _check_path(path)
        if limit < 1:
            raise IntegrationError(f"history limit must be ≥ 1, not {limit}")
        client = self._client()
        params: dict[str, Any] = {"Name": path, "MaxResults": 50}
        entries: list[FlagValue] = []
        while True:
            try:
                response = call(client, "GetParameterHistory", "get_parameter_history", **params)
            except IntegrationError as error:
                if error.details.get("code") == "ParameterNotFound":
                    return []
                raise
            entries.extend(self._flag(p) for p in response.get("Parameters", []))
            token = response.get("NextToken")
            if not token:
                break
            params["NextToken"] = token
        entries.sort(key=lambda flag: flag.version, reverse=True)
        return entries[:limit]


class FlagChange(ConfigKind):
    """The remediation kind `ssm_flag`: set a feature flag; nothing rolls out (the app reads it within 60 s)."""

    def __init__(self, client: FeatureFlags) -> None:
        self.client = client

    def plan(self, target: Mapping[str, Any], params: Mapping[str, Any]) -> KindPlan:
        plan = self.client.plan(str(params["path"]), str(params["value"]))
        current = plan.current
        return KindPlan(
            plan.describe(),
            {"path": str(params["path"]), "value": str(params["value"])},
            {"version": current.version if current else None, "value": current.value if current else None},
        )

    def apply(self, target: Mapping[str, Any], params: Mapping[str, Any]) -> ActionResult:
        return self.client.apply(self.client.plan(str(params["path"]), str(params["value"])))
