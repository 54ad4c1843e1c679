"""LambdaEnvironment against a moto Lambda server: merged maps, masked secrets, TargetChanged, dry run."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from botocore.exceptions import ClientError

from integrations.lambda_env import LambdaEnvironment, LambdaEnvPlan, is_secret_key, mask
from integrations.plans import IntegrationError, NothingToDo, TargetChanged
from tests.integrations.aws_fixtures import (
    REGION,
    FakeClock,
    client,
    client_factory,
)

FUNCTION = "payments-webhook"
OLD_PASSWORD = "hunter2-old-db-password"
NEW_PASSWORD = "n3w-db-pa55word"
URL_PASSWORD = "url-embedded-pw"
ORIGINAL = {
    "FEATURE_X": "on",
    "LOG_LEVEL": "info",
    "DB_PASSWORD": OLD_PASSWORD,
    "DATABASE_URL": f"postgres://app:{URL_PASSWORD}@db:5432/app",
}


@pytest.fixture
def lam(endpoint: str) -> Any:
    return client(endpoint, "lambda")


@pytest.fixture
def function(endpoint: str, lam: Any) -> str:
    role = client(endpoint, "iam").create_role(
        RoleName="payments-webhook-role",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handle(event, context):\n    return None\n")
    lam.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.11",
        Role=role,
        Handler="handler.handle",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": dict(ORIGINAL)},
    )
    return FUNCTION


def _env(
    endpoint: str, *, dry_run: bool = False, proxy: Any = None, fake: FakeClock | None = None
) -> LambdaEnvironment:
    fake = fake or FakeClock()
    factory = (lambda region: proxy) if proxy is not None else client_factory(endpoint, "lambda")
    return LambdaEnvironment(
        client_factory=factory, region=REGION, dry_run=dry_run, clock=fake, sleep=fake.sleep
    )


def _variables(lam: Any) -> dict[str, str]:
    return lam.get_function_configuration(FunctionName=FUNCTION)["Environment"]["Variables"]


def _assert_no_secret(*texts: object) -> None:
    for text in texts:
        for secret in (OLD_PASSWORD, NEW_PASSWORD, URL_PASSWORD):
            assert secret not in str(text)


# -- masking ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "DB_PASSWORD",
        "DB_PASSWD",
        "DB_PASS",
        "STRIPE_SECRET",
        "GITHUB_TOKEN",
        "API_KEY",
        "AWS_ACCESS_KEY_ID",
        "APIKEY",
        "KEY",
        "SIGNING_KEYS",
        "GOOGLE_CREDENTIALS",
        "PRIVATE_PEM",
        "SENTRY_DSN",
        "BASIC_AUTH",
        "db_password",
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["FEATURE_X", "LOG_LEVEL", "MONKEY", "KEYBOARD_LAYOUT", "TIMEOUT_MS"])
def test_plain_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_mask_reveals_nothing() -> None:
    assert mask("a") == mask("a much longer secret value") == "••••"


# -- snapshot / plan ----------------------------------------------------------------------------------------


def test_snapshot(endpoint: str, function: str) -> None:
    snap = _env(endpoint).snapshot(function)

    assert snap.function == FUNCTION
    assert snap.variables == ORIGINAL
    assert snap.revision_id  # moto returns no RevisionId, so this is the local stand-in
    assert OLD_PASSWORD not in repr(snap)


def test_unknown_function(endpoint: str, function: str) -> None:
    with pytest.raises(IntegrationError) as error:
        _env(endpoint).snapshot("ledger-webhook")
    assert error.value.message == "Lambda function 'ledger-webhook' not found"


@pytest.mark.parametrize("key", ["1ABC", "A-B", "X", "", "HAS SPACE", "ÄPFEL"])
def test_bad_key(endpoint: str, function: str, key: str) -> None:
    with pytest.raises(IntegrationError, match="invalid environment variable name"):
        _env(endpoint).plan(function, {key: "v", "FEATURE_X": "off"})


def test_no_op_changes_are_nothing_to_do(endpoint: str, function: str) -> None:
    env = _env(endpoint)

    with pytest.raises(NothingToDo):
        env.plan(function, {"FEATURE_X": "on", "LOG_LEVEL": "info"})
    # A partly no-op request keeps only the real changes.
    assert env.plan(function, {"FEATURE_X": "on", "LOG_LEVEL": "debug"}).changes == {"LOG_LEVEL": "debug"}


# -- apply --------------------------------------------------------------------------------------------------


def test_only_named_keys_change(endpoint: str, lam: Any, function: str) -> None:
    env = _env(endpoint)

    plan = env.plan(function, {"FEATURE_X": "off"})
    assert plan.after == {**ORIGINAL, "FEATURE_X": "off"}
    assert plan.diff_lines() == ["FEATURE_X: 'on' → 'off'"]
    assert plan.describe() == "lambda payments-webhook: FEATURE_X: 'on' → 'off'"

    result = env.apply(plan)

    assert result.ok and not result.dry_run
    assert result.summary == "payments-webhook: environment updated: FEATURE_X: 'on' → 'off'"
    assert result.details["diff"] == ["FEATURE_X: 'on' → 'off'"]
    assert result.details["last_update_status"] == "Successful"
    assert result.request["operation"] == "UpdateFunctionConfiguration"
    assert _variables(lam) == {**ORIGINAL, "FEATURE_X": "off"}
    _assert_no_secret(result.summary, result.request, result.details)


def test_secrets_are_masked_everywhere(endpoint: str, lam: Any, function: str) -> None:
    env = _env(endpoint)

    plan = env.plan(
        function, {"FEATURE_X": "off", "DB_PASSWORD": NEW_PASSWORD, "NEW_FLAG": "v", "NEW_KEY": "k"}
    )
    result = env.apply(plan)

    assert plan.diff_lines() == [
        "FEATURE_X: 'on' → 'off'",
        "DB_PASSWORD: •••• → ••••",
        "NEW_FLAG: (unset) → 'v'",
        "NEW_KEY: (unset) → ••••",  # a _KEY suffix counts as secret
    ]
    sent = result.request["params"]["Environment"]["Variables"]
    assert sent["DB_PASSWORD"] == sent["DATABASE_URL"] == "••••"
    assert sent["LOG_LEVEL"] == "info"
    _assert_no_secret(
        plan.describe(), plan.diff_lines(), repr(plan), result.summary, result.request, result.details
    )
    # The real value was sent; only what TARS shows is masked.
    assert _variables(lam) == {
        **ORIGINAL,
        "DB_PASSWORD": NEW_PASSWORD,
        "NEW_FLAG": "v",
        "NEW_KEY": "k",
        "FEATURE_X": "off",
    }


def test_password_in_url_masked_whatever_the_name(endpoint: str, function: str) -> None:
    plan = _env(endpoint).plan(function, {"DATABASE_URL": "postgres://app:other-pw@db2:5432/app"})

    assert plan.diff_lines() == ["DATABASE_URL: •••• → ••••"]


def test_refuses_when_changed_since_plan(endpoint: str, lam: Any, function: str) -> None:
    env = _env(endpoint)
    plan = env.plan(function, {"FEATURE_X": "off"})
    lam.update_function_configuration(
        FunctionName=FUNCTION, Environment={"Variables": {**ORIGINAL, "LOG_LEVEL": "debug"}}
    )

    with pytest.raises(TargetChanged, match="re-plan"):
        env.apply(plan)
    assert _variables(lam) == {**ORIGINAL, "LOG_LEVEL": "debug"}  # the concurrent change survived


def test_dry_run_sends_nothing(endpoint: str, lam: Any, function: str) -> None:
    env = _env(endpoint, dry_run=True)

    result = env.apply(env.plan(function, {"FEATURE_X": "off", "DB_PASSWORD": NEW_PASSWORD}))

    assert result.ok and result.dry_run
    assert result.summary == (
        "DRY RUN: would set lambda payments-webhook: FEATURE_X: 'on' → 'off'; DB_PASSWORD: •••• → ••••"
    )
    assert result.request["params"]["Environment"]["Variables"]["FEATURE_X"] == "off"
    _assert_no_secret(result.summary, result.request, result.details)
    assert _variables(lam) == ORIGINAL


# -- behaviour moto cannot produce ----------------------------------------------------------------------------


class _Scripted:
    """Thin proxy over the moto-backed Lambda client that edits or replaces a few answers.

    moto applies configuration synchronously (LastUpdateStatus is always "Successful"), returns no
    RevisionId and ignores the RevisionId precondition, so the real-AWS paths for an update still in
    progress, a failed update, and a 412 cannot be reached through moto alone. Calls not scripted here go
    straight to moto, so the update itself is still really applied where the script lets it through.
    """

    def __init__(
        self,
        real: Any,
        *,
        statuses: list[tuple[str, str | None]] | None = None,
        revision_id: str | None = None,
        update_error: dict[str, str] | None = None,
    ) -> None:
        self._real = real
        self._statuses = list(statuses or [])
        self._revision_id = revision_id
        self._update_error = update_error
        self._updated = False
        self.update_calls: list[dict[str, Any]] = []

    def get_function_configuration(self, **kwargs: Any) -> dict[str, Any]:
        response = self._real.get_function_configuration(**kwargs)
        if self._revision_id:
            response["RevisionId"] = self._revision_id
        if self._updated and self._statuses:
            response["LastUpdateStatus"], reason = self._statuses.pop(0)
            if reason:
                response["LastUpdateStatusReason"] = reason
        return response

    def update_function_configuration(self, **kwargs: Any) -> dict[str, Any]:
        self.update_calls.append(kwargs)
        if self._update_error:
            raise ClientError({"Error": self._update_error}, "UpdateFunctionConfiguration")
        self._updated = True
        return self._real.update_function_configuration(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_waits_for_update_to_finish(endpoint: str, lam: Any, function: str) -> None:
    proxy = _Scripted(client(endpoint, "lambda"), statuses=[("InProgress", None), ("InProgress", None)])
    fake = FakeClock()

    result = _env(endpoint, proxy=proxy, fake=fake).apply(
        _env(endpoint).plan(function, {"FEATURE_X": "off"}), poll=2
    )

    assert result.ok
    assert fake.sleeps == [2, 2]
    assert _variables(lam)["FEATURE_X"] == "off"


def test_failed_update_raises_with_reason(endpoint: str, function: str) -> None:
    proxy = _Scripted(
        client(endpoint, "lambda"),
        statuses=[("InProgress", None), ("Failed", f"KMS key disabled; value {NEW_PASSWORD} rejected")],
    )
    env = _env(endpoint, proxy=proxy)

    with pytest.raises(IntegrationError, match="configuration update failed: KMS key disabled") as error:
        env.apply(env.plan(function, {"DB_PASSWORD": NEW_PASSWORD}))
    _assert_no_secret(error.value.message, error.value.details)


def test_timeout_is_a_clear_not_ok_result(endpoint: str, function: str) -> None:
    proxy = _Scripted(client(endpoint, "lambda"), statuses=[("InProgress", None)] * 100)
    fake = FakeClock()
    env = _env(endpoint, proxy=proxy, fake=fake)

    result = env.apply(env.plan(function, {"FEATURE_X": "off"}), timeout=10, poll=4)

    assert not result.ok and not result.dry_run
    assert "still InProgress after 10s" in result.summary
    assert fake.sleeps == [4, 4, 2]


def test_revision_id_precondition(endpoint: str, function: str) -> None:
    # Real Lambda returns a RevisionId; it is sent back so Lambda refuses a write over a concurrent change.
    proxy = _Scripted(client(endpoint, "lambda"), revision_id="rev-1")
    env = _env(endpoint, proxy=proxy)

    result = env.apply(env.plan(function, {"FEATURE_X": "off"}))

    assert proxy.update_calls[0]["RevisionId"] == "rev-1"
    assert result.request["params"]["RevisionId"] == "rev-1"


def test_precondition_failed_is_target_changed(endpoint: str, lam: Any, function: str) -> None:
    proxy = _Scripted(
        client(endpoint, "lambda"),
        revision_id="rev-1",
        update_error={
            "Code": "PreconditionFailedException",
            "Message": "The RevisionId provided does not match",
        },
    )
    env = _env(endpoint, proxy=proxy)

    with pytest.raises(TargetChanged):
        env.apply(env.plan(function, {"FEATURE_X": "off"}))
    assert _variables(lam) == ORIGINAL


def test_aws_error_text_is_scrubbed(endpoint: str, function: str) -> None:
    # Lambda's size-limit error quotes the submitted variables back verbatim.
    quoted = json.dumps({**ORIGINAL, "DB_PASSWORD": NEW_PASSWORD})
    proxy = _Scripted(
        client(endpoint, "lambda"),
        update_error={
            "Code": "InvalidParameterValueException",
            "Message": f"Lambda was unable to configure your environment variables because the environment "
            f"variables you have provided exceeded the 4KB limit. String measured: {quoted}",
        },
    )
    env = _env(endpoint, proxy=proxy)

    with pytest.raises(
        IntegrationError, match="AWS UpdateFunctionConfiguration: InvalidParameterValueException"
    ) as error:
        env.apply(env.plan(function, {"DB_PASSWORD": NEW_PASSWORD}))
    assert error.value.__cause__ is None and error.value.__context__ is None
    _assert_no_secret(error.value.message, error.value.details)


def test_plan_dataclass_repr_hides_values(endpoint: str, function: str) -> None:
    plan: LambdaEnvPlan = _env(endpoint).plan(function, {"DB_PASSWORD": NEW_PASSWORD})

    _assert_no_secret(repr(plan), repr(plan.snapshot))


def test_default_factory_never_retries_mutations(endpoint: str) -> None:
    env = LambdaEnvironment(endpoint_url=endpoint, region=REGION)

    writer = env._client(mutating=True)

    assert writer.meta.endpoint_url == endpoint
    assert writer.meta.config.retries["total_max_attempts"] == 1
    assert env._client().meta.config.retries["total_max_attempts"] > 1
