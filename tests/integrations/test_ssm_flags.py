"""FeatureFlags against a moto SSM server: plan/apply with versions, history, TargetChanged, dry run."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest

from integrations.plans import IntegrationError, NothingToDo, TargetChanged
from integrations.ssm_flags import FeatureFlags
from tests.integrations.aws_fixtures import (
    REGION,
    client,
    client_factory,
)

FLAG = "/production/payments/payment.new_processor.enabled"


@pytest.fixture
def ssm(endpoint: str) -> Any:
    return client(endpoint, "ssm")


@pytest.fixture
def flag_on(ssm: Any) -> str:
    ssm.put_parameter(Name=FLAG, Value="true", Type="String")
    return FLAG


def _flags(endpoint: str, *, dry_run: bool = False) -> FeatureFlags:
    return FeatureFlags(client_factory=client_factory(endpoint, "ssm"), region=REGION, dry_run=dry_run)


def _stored(ssm: Any, path: str = FLAG) -> tuple[str, int]:
    parameter = ssm.get_parameter(Name=path)["Parameter"]
    return parameter["Value"], parameter["Version"]


def test_read(endpoint: str, flag_on: str) -> None:
    flags = _flags(endpoint)

    flag = flags.read(flag_on)

    assert flag is not None
    assert (flag.path, flag.value, flag.version) == (FLAG, "true", 1)
    assert flag.last_modified is not None and flag.last_modified.tzinfo == UTC
    assert flags.read("/production/payments/missing") is None


def test_plan_and_apply_overwrites_with_version_increment(endpoint: str, ssm: Any, flag_on: str) -> None:
    flags = _flags(endpoint)

    plan = flags.plan(flag_on, "false")
    assert plan.describe() == f"{FLAG}: true (v1) → false"

    result = flags.apply(plan)

    assert result.ok and not result.dry_run
    assert result.request == {
        "operation": "PutParameter",
        "params": {"Name": FLAG, "Value": "false", "Type": "String", "Overwrite": True},
    }
    assert result.details == {"path": FLAG, "old_value": "true", "new_value": "false", "version": 2}
    assert "takes effect within 60 seconds" in result.summary
    assert result.summary.startswith(f"{FLAG}: true (v1) → false (v2)")
    assert _stored(ssm) == ("false", 2)

    history = flags.history(FLAG)
    assert [(h.value, h.version) for h in history] == [("false", 2), ("true", 1)]


def test_history_is_newest_first_across_pages(endpoint: str, ssm: Any) -> None:
    # 55 versions spans two GetParameterHistory pages (50 per page), oldest first from the API.
    for version in range(1, 56):
        ssm.put_parameter(Name=FLAG, Value=f"v{version}", Type="String", Overwrite=True)
    flags = _flags(endpoint)

    assert [h.version for h in flags.history(FLAG, limit=3)] == [55, 54, 53]
    assert len(flags.history(FLAG, limit=100)) == 55
    assert flags.history("/production/payments/missing") == []


def test_apply_refuses_when_someone_wrote_since_plan(endpoint: str, ssm: Any, flag_on: str) -> None:
    flags = _flags(endpoint)
    plan = flags.plan(flag_on, "false")
    ssm.put_parameter(Name=FLAG, Value="maybe", Type="String", Overwrite=True)

    with pytest.raises(TargetChanged, match=r"it was v1, now v2 \(maybe\)"):
        flags.apply(plan)
    assert _stored(ssm) == ("maybe", 2)


def test_apply_refuses_when_deleted_since_plan(endpoint: str, ssm: Any, flag_on: str) -> None:
    flags = _flags(endpoint)
    plan = flags.plan(flag_on, "false")
    ssm.delete_parameter(Name=FLAG)

    with pytest.raises(TargetChanged, match="now deleted"):
        flags.apply(plan)


def test_same_value_is_nothing_to_do(endpoint: str, flag_on: str) -> None:
    with pytest.raises(NothingToDo, match=r"already true \(v1\)"):
        _flags(endpoint).plan(flag_on, "true")


def test_dry_run_sends_nothing(endpoint: str, ssm: Any, flag_on: str) -> None:
    flags = _flags(endpoint, dry_run=True)

    result = flags.apply(flags.plan(flag_on, "false"))

    assert result.ok and result.dry_run
    assert result.summary.startswith(f"DRY RUN: would set {FLAG}: true (v1) → false")
    assert result.request["params"]["Value"] == "false"
    assert _stored(ssm) == ("true", 1)


def test_missing_parameter_is_created(endpoint: str, ssm: Any) -> None:
    flags = _flags(endpoint)

    plan = flags.plan(FLAG, "false")
    assert plan.current is None
    assert plan.describe() == f"{FLAG}: (not set) → false"

    result = flags.apply(plan)

    # Overwrite=False: Parameter Store itself refuses if someone created it in the meantime.
    assert result.request["params"]["Overwrite"] is False
    assert result.details == {"path": FLAG, "old_value": None, "new_value": "false", "version": 1}
    assert _stored(ssm) == ("false", 1)


def test_missing_parameter_created_by_someone_else(endpoint: str, ssm: Any) -> None:
    flags = _flags(endpoint)
    plan = flags.plan(FLAG, "false")
    ssm.put_parameter(Name=FLAG, Value="true", Type="String")

    with pytest.raises(TargetChanged, match="it was absent, now v1"):
        flags.apply(plan)
    assert _stored(ssm) == ("true", 1)


def test_refuses_non_string_parameters(endpoint: str, ssm: Any) -> None:
    ssm.put_parameter(Name=FLAG, Value="true", Type="SecureString")

    with pytest.raises(IntegrationError, match="SecureString"):
        _flags(endpoint).plan(FLAG, "false")


def test_rejects_bad_paths_and_values(endpoint: str, flag_on: str) -> None:
    flags = _flags(endpoint)

    for path in ("production/payments/x", "/production//x", "/production/pay ments/x", ""):
        with pytest.raises(IntegrationError, match="invalid flag path"):
            flags.plan(path, "false")
    with pytest.raises(IntegrationError, match="non-empty"):
        flags.plan(flag_on, "")


def test_aws_errors_are_wrapped(endpoint: str) -> None:
    flags = _flags(endpoint)
    plan = flags.plan("/ssm/flag", "false")  # "ssm"-prefixed names are reserved by Parameter Store

    with pytest.raises(IntegrationError) as error:
        flags.apply(plan)

    assert error.value.message.startswith("AWS PutParameter: ValidationException: Parameter name: can't be")
    assert error.value.details["code"] == "ValidationException"


def test_default_factory_never_retries_mutations(endpoint: str) -> None:
    flags = FeatureFlags(endpoint_url=endpoint, region=REGION)

    writer = flags._client(mutating=True)

    assert writer.meta.endpoint_url == endpoint
    assert writer.meta.config.retries["total_max_attempts"] == 1
    assert flags._client().meta.config.retries["total_max_attempts"] > 1
