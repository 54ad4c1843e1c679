"""Configuration: environment variables for wiring, a YAML file for policy and the service catalog.

Both are public interfaces (Helm values, .env files), so every bad value fails start-up with a message that
names the offending key rather than a stack trace.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
SLACK_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
ESCALATION_TARGET = re.compile(r"^[UWS][A-Z0-9]{2,}$")
ENVIRONMENT_NAME = r"^[A-Z_][A-Z0-9_]{0,127}$"


class ConfigError(Exception):
    """Start-up configuration is unusable; the message names the key."""


def _duration(value: Any) -> timedelta:
    from bot.core.durations import parse_duration

    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration; write it like 30s, 15m, 1h or 2h30m")
    return parse_duration(value)


def _optional_duration(value: Any) -> timedelta | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "none", "never")):
        return None
    return _duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]
OptionalDuration = Annotated[timedelta | None, BeforeValidator(_optional_duration)]


class PerSeverity(BaseModel):
    """A duration per severity; `off` (or null) turns it off for that severity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    P1: OptionalDuration = None
    P2: OptionalDuration = None
    P3: OptionalDuration = None
    P4: OptionalDuration = None

    def for_severity(self, severity: int) -> timedelta | None:
        return getattr(self, f"P{severity}")  # type: ignore[no-any-return]


def _per_severity(defaults: dict[str, str | None]) -> Any:
    """Missing severities keep their defaults, so `update_interval: {P1: 15m}` changes only P1."""

    def merge(value: Any) -> Any:
        if value is None:
            return dict(defaults)
        if not isinstance(value, dict):
            raise ValueError("must be a mapping of P1..P4 to durations, e.g. {P1: 30m, P2: 1h}")
        return {**defaults, **value}

    return BeforeValidator(merge)


class ApprovalCounts(BaseModel):
    """Distinct approvals a remediation needs, by severity (remediation runbook: P1 one, P2 two)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    P1: int = Field(default=1, ge=1, le=10)
    P2: int = Field(default=2, ge=1, le=10)
    P3: int = Field(default=2, ge=1, le=10)
    P4: int = Field(default=2, ge=1, le=10)

    def for_severity(self, severity: int) -> int:
        return int(getattr(self, f"P{severity}"))


def _merge_counts(value: Any) -> Any:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of P1..P4 to a number of approvals, e.g. {P1: 1, P2: 2}")
    return value


class PolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    update_interval: Annotated[
        PerSeverity, _per_severity({"P1": "30m", "P2": "1h", "P3": None, "P4": None})
    ] = Field(default_factory=lambda: PerSeverity(P1=timedelta(minutes=30), P2=timedelta(hours=1)))
    ack_deadline: Annotated[PerSeverity, _per_severity({"P1": "15m", "P2": "1h", "P3": "4h", "P4": None})] = (
        Field(
            default_factory=lambda: PerSeverity(
                P1=timedelta(minutes=15), P2=timedelta(hours=1), P3=timedelta(hours=4)
            )
        )
    )
    max_escalations: int = Field(default=3, ge=0, le=20)
    approvals_required: Annotated[ApprovalCounts, BeforeValidator(_merge_counts)] = Field(
        default_factory=lambda: ApprovalCounts()
    )
    approval_ttl: Duration = timedelta(minutes=30)
    min_monitoring: Duration = timedelta(minutes=10)
    postmortem_due: Duration = timedelta(hours=48)
    customer_notification_min_users: int = Field(default=100, ge=0)


class ApproversConfig(BaseModel):
    """Who may approve remediation: listed users and/or members of a Slack user group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: list[str] = Field(default_factory=list)
    usergroup: str | None = None

    @field_validator("users")
    @classmethod
    def _user_ids(cls, value: list[str]) -> list[str]:
        for user in value:
            if not SLACK_USER_ID.match(user):
                raise ValueError(f"must be Slack user ids like U012ABCDEF, got {user!r}")
        return value

    @field_validator("usergroup")
    @classmethod
    def _group_id(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^S[A-Z0-9]{2,}$", value):
            raise ValueError(f"must be a Slack user group id like S012ABCDEF, got {value!r}")
        return value


class FlagConfig(BaseModel):
    """A feature flag TARS may change: only these, only to these values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str
    path: str | None = None  # default /production/<service>/<flag name>
    values: list[str] = Field(default_factory=lambda: ["true", "false"], min_length=1)
    description: str = ""

    def parameter_path(self, name: str) -> str:
        return self.path or f"/production/{self.service}/{name}"


class GitHubConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = "https://api.github.com"  # GitHub Enterprise: https://github.example.com/api/v3
    postmortem_repository: str | None = None


class KubernetesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kubeconfig: str | None = None  # default: in-cluster config, else ~/.kube/config


class AwsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str | None = None
    endpoint_url: str | None = None  # for AWS-compatible endpoints (LocalStack, moto); normally unset


class SchedulerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tick: Duration = timedelta(seconds=15)


class PagerDutyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    events_url: str = "https://events.pagerduty.com/v2/enqueue"


class AutoDeclareRule(BaseModel):
    """Alerts whose labels (or CloudWatch dimensions, or webhook fields) all match are declared at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: dict[str, str] = Field(min_length=1)
    severity: int

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, value: Any) -> int:
        text = str(value).strip().upper()
        if text not in ("P1", "P2", "P3", "P4"):
            raise ValueError(f"must be P1, P2, P3 or P4, got {value!r}")
        return int(text[1])

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.match.items())


class SignalsConfig(BaseModel):
    """How alerts find their catalog service. The endpoints' secrets come from the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The Alertmanager label (or webhook field) that names the service.
    service_label: str = Field(default="service", min_length=1, max_length=64)
    # CloudWatch: the alarm dimension that names the service, then alarm-name prefixes ("payments-" → payments).
    dimension: str = Field(default="Service", min_length=1, max_length=64)
    alarm_prefixes: dict[str, str] = Field(default_factory=dict)
    # Off unless listed: the runbook asks for a person to confirm an alert. The first matching rule wins.
    auto_declare: list[AutoDeclareRule] = Field(default_factory=list)
    # Past this many untriaged alerts firing for one service, the next ones share one digest card.
    digest_after: int = Field(default=5, ge=1, le=1000)
    # This many distinct customer reports about one service within report_window put a triage card up.
    customer_reports: int = Field(default=3, ge=1, le=100)
    report_window: Duration = timedelta(minutes=5)
    # POST /signals/sns takes messages only from these topics (any AWS account can sign SNS messages); empty,
    # the endpoint is off.
    sns_topics: list[str] = Field(default_factory=list)
    # Where SNS signing certificates and SubscribeURLs may be fetched from: SNS's own hosts.
    sns_url_pattern: str = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"

    @field_validator("sns_url_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return value

    @field_validator("sns_topics")
    @classmethod
    def _topics(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not re.match(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$", arn):
                raise ValueError(f"not an SNS topic ARN: {arn!r}")
        return value


class KubernetesTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str
    deployment: str
    context: str | None = None


class EcsTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster: str
    service: str
    region: str | None = None


class PrometheusSource(BaseModel):
    """A Prometheus server and the PromQL that gives the service's error rate (a fraction: 0.001 is 0.1%) and,
    optionally, its latency in seconds. Each query must return one series (wrap it in sum(...))."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # No user:password@ in the URL: urllib would not send it; basic auth is username + password_env.
    url: str = Field(pattern=r"^https?://[^\s/@]+(/|$)", description="e.g. http://prometheus.monitoring:9090")
    error_rate: str = Field(min_length=1, max_length=2000)
    latency: str | None = Field(default=None, min_length=1, max_length=2000)
    # Secrets stay in the environment: these name the variables that hold them.
    bearer_token_env: str | None = Field(default=None, pattern=ENVIRONMENT_NAME)
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=ENVIRONMENT_NAME)

    @model_validator(mode="after")
    def _auth(self) -> PrometheusSource:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("basic auth needs both username and password_env")
        if self.username is not None and self.bearer_token_env is not None:
            raise ValueError("give either bearer_token_env or username/password_env, not both")
        return self


class CloudWatchMetricSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(min_length=1, max_length=255)
    metric: str = Field(min_length=1, max_length=255)
    dimensions: dict[str, str] = Field(default_factory=dict, max_length=30)
    stat: str = Field(
        default="Average", pattern=r"^(Average|Sum|Minimum|Maximum|SampleCount|p\d{1,2}(\.\d+)?)$"
    )


class CloudWatchSeries(BaseModel):
    """One metric, or several named metrics combined by a metric-math expression (e.g. `errors / requests`);
    `scale` turns the result into TARS's units (0.01 for a percentage, 0.001 for milliseconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metrics: dict[str, CloudWatchMetricSpec] = Field(min_length=1, max_length=10)
    expression: str | None = Field(default=None, min_length=1, max_length=1024)
    scale: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _shape(self) -> CloudWatchSeries:
        for name in self.metrics:
            if name == "tars_result":
                raise ValueError(
                    "metric id 'tars_result' is TARS's own (the expression's result); pick another"
                )
            if not re.fullmatch(r"[a-z][a-zA-Z0-9_]{0,254}", name):
                raise ValueError(
                    f"metric id {name!r} must start with a lower-case letter (CloudWatch's rule)"
                )
        if self.expression is None and len(self.metrics) != 1:
            raise ValueError(
                "several metrics need an expression that combines them, e.g. `errors / requests`"
            )
        return self


class CloudWatchSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str | None = None  # default: aws.region
    error_rate: CloudWatchSeries
    latency: CloudWatchSeries | None = None


class MetricsConfig(BaseModel):
    """Where TARS reads a service's error rate (and latency): Prometheus or CloudWatch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prometheus: PrometheusSource | None = None
    cloudwatch: CloudWatchSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MetricsConfig:
        if (self.prometheus is None) == (self.cloudwatch is None):
            raise ValueError("give exactly one of prometheus or cloudwatch")
        return self

    @property
    def has_latency(self) -> bool:
        source = self.prometheus or self.cloudwatch
        return source is not None and source.latency is not None


class LogsConfig(BaseModel):
    """The service's CloudWatch log groups, searched by `/incident logs` and the validation's new-pattern check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log_groups: list[str] = Field(min_length=1, max_length=20)
    region: str | None = None  # default: aws.region

    @field_validator("log_groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for group in value:
            if not re.match(r"^[\w./#-]{1,512}$", group):
                raise ValueError(f"not a CloudWatch log group name: {group!r}")
        return value


class ServiceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    oncall: str = Field(description="Slack user id paged when an incident is declared for this service")
    description: str = ""
    escalation: str | None = None
    pagerduty_routing_key: str | None = None
    kubernetes: KubernetesTarget | None = None
    ecs: EcsTarget | None = None
    max_replicas: int = Field(default=20, ge=1, le=1000)
    lambda_functions: list[str] = Field(default_factory=list)
    repository: str | None = None
    metrics: MetricsConfig | None = None
    logs: LogsConfig | None = None

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", value):
            raise ValueError(f"must be owner/name, got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_platform(self) -> ServiceConfig:
        if self.kubernetes is not None and self.ecs is not None:
            raise ValueError("give either kubernetes or ecs, not both: TARS must know which one to roll back")
        return self

    @property
    def platform(self) -> str | None:
        return "kubernetes" if self.kubernetes else "ecs" if self.ecs else None

    @field_validator("escalation")
    @classmethod
    def _escalation_target(cls, value: str | None) -> str | None:
        if value is not None and not ESCALATION_TARGET.match(value):
            raise ValueError(f"must be a Slack user id (U...) or user group id (S...), got {value!r}")
        return value

    @field_validator("oncall")
    @classmethod
    def _user_id(cls, value: str) -> str:
        if not SLACK_USER_ID.match(value):
            raise ValueError(f"must be a Slack user id like U012ABCDEF, got {value!r}")
        return value


# Where each of Config's fields may come from. The environment carries wiring and secrets (Helm values, .env
# files); the YAML file named by TARS_CONFIG carries policy and the service catalog. A field marked with neither
# is set by TARS itself.
def _from_environment(name: str) -> dict[str, Any]:
    return {"environment": name}


_FROM_FILE: dict[str, Any] = {"file": True}


class Config(BaseSettings):
    """Everything TARS needs to start, declared once and validated once: `load_config` fills it from the
    environment and the YAML file; tests and tools construct it directly from keyword arguments."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    database_url: str = Field(
        default="sqlite:///tars.db", json_schema_extra=_from_environment("DATABASE_URL")
    )
    slack_bot_token: str | None = Field(default=None, json_schema_extra=_from_environment("SLACK_BOT_TOKEN"))
    slack_signing_secret: str | None = Field(
        default=None, json_schema_extra=_from_environment("SLACK_SIGNING_SECRET")
    )
    slack_app_token: str | None = Field(default=None, json_schema_extra=_from_environment("SLACK_APP_TOKEN"))
    slack_api_url: str = Field(
        default=DEFAULT_SLACK_API_URL, json_schema_extra=_from_environment("SLACK_API_URL")
    )
    port: int = Field(default=3000, ge=0, le=65535, json_schema_extra=_from_environment("PORT"))
    github_token: str | None = Field(default=None, json_schema_extra=_from_environment("GITHUB_TOKEN"))
    # POST /signals/alertmanager answers only requests carrying this bearer token; unset, the endpoint is off.
    alertmanager_token: str | None = Field(
        default=None, json_schema_extra=_from_environment("TARS_ALERTMANAGER_TOKEN")
    )
    # POST /signals/webhook answers only requests signed with this HMAC key; unset, the endpoint is off.
    signal_webhook_secret: str | None = Field(
        default=None, json_schema_extra=_from_environment("TARS_SIGNAL_WEBHOOK_SECRET")
    )
    # The environment's TARS_INCIDENTS_CHANNEL wins over the file's incidents_channel.
    incidents_channel: str | None = Field(
        default=None, json_schema_extra={**_from_environment("TARS_INCIDENTS_CHANNEL"), **_FROM_FILE}
    )
    services: dict[str, ServiceConfig] = Field(default_factory=dict, json_schema_extra=_FROM_FILE)
    policy: PolicyConfig = Field(default_factory=PolicyConfig, json_schema_extra=_FROM_FILE)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig, json_schema_extra=_FROM_FILE)
    pagerduty: PagerDutyConfig = Field(default_factory=PagerDutyConfig, json_schema_extra=_FROM_FILE)
    signals: SignalsConfig = Field(default_factory=SignalsConfig, json_schema_extra=_FROM_FILE)
    approvers: ApproversConfig = Field(default_factory=ApproversConfig, json_schema_extra=_FROM_FILE)
    dry_run: bool = Field(default=False, json_schema_extra=_FROM_FILE)
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig, json_schema_extra=_FROM_FILE)
    aws: AwsConfig = Field(default_factory=AwsConfig, json_schema_extra=_FROM_FILE)
    flags: dict[str, FlagConfig] = Field(default_factory=dict, json_schema_extra=_FROM_FILE)
    github: GitHubConfig = Field(default_factory=GitHubConfig, json_schema_extra=_FROM_FILE)
    config_source: str = "built-in example catalog"
    # Pace posts to Slack's published rate limits. Always on in production; tests against the emulator turn it
    # off unless they test the pacing itself, so they do not wait a second per post.
    pace_slack: bool = True

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments first, then whatever `load_config` is loading from (nothing otherwise, so that a
        # Config built in a test never picks up the developer's own environment).
        return (init_settings, *_LOADING.get())

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "github_token",
        "alertmanager_token",
        "signal_webhook_secret",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _psycopg_url(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("incidents_channel")
    @classmethod
    def _channel_id(cls, value: str | None) -> str | None:
        if value is not None and not SLACK_CHANNEL_ID.match(value):
            raise ValueError(f"must be a Slack channel id like C012ABCDEF, got {value!r}")
        return value

    @field_validator("services")
    @classmethod
    def _service_names(cls, value: dict[str, ServiceConfig]) -> dict[str, ServiceConfig]:
        for name in value:
            if not SERVICE_NAME.match(name):
                raise ValueError(f"service name {name!r} must be lower-case letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _flags_name_known_services(self) -> Config:
        for name, flag in self.flags.items():
            if flag.service not in self.services:
                raise ValueError(f"flags.{name}.service: {flag.service!r} is not a service in `services`")
        return self


def _origin(name: str, key: str) -> Any:
    extra = Config.model_fields[name].json_schema_extra
    return extra.get(key) if isinstance(extra, dict) else None


ENVIRONMENT_VARIABLES = {
    str(_origin(name, "environment")): name for name in Config.model_fields if _origin(name, "environment")
}
FILE_KEYS = frozenset(name for name in Config.model_fields if _origin(name, "file"))


class _Values(PydanticBaseSettingsSource):
    """Field values already read from one place (the environment, or the YAML document)."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self.values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


_LOADING: ContextVar[tuple[PydanticBaseSettingsSource, ...]] = ContextVar("tars_config_sources", default=())


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for Postgres URLs written the way people usually write them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _read_document(path: str | None) -> tuple[dict[str, Any], str]:
    """The YAML policy file, or the built-in example catalog when no file is named."""
    if path is None:
        text = resources.files("bot.core").joinpath("default_config.yaml").read_text(encoding="utf-8")
        source = "built-in example catalog"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"TARS_CONFIG: cannot read {path}: {error.strerror}") from None
        source = f"TARS_CONFIG {path}"
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys to values")
    unknown = sorted(str(key) for key in document if key not in FILE_KEYS)
    if unknown:
        raise ConfigError(f"{source}: " + "; ".join(f"{key}: unknown key" for key in unknown))
    return document, source


def load_config(environ: dict[str, str] | None = None) -> Config:
    """Build the configuration from the environment (and the YAML file it names)."""
    variables = {key.upper(): value for key, value in (os.environ if environ is None else environ).items()}
    from_environment = {
        field: variables[variable]
        for variable, field in ENVIRONMENT_VARIABLES.items()
        if variable in variables
    }
    document, source = _read_document(variables.get("TARS_CONFIG") or None)
    token = _LOADING.set((_Values(Config, from_environment), _Values(Config, document)))
    try:
        return Config(config_source=source)
    except ValidationError as error:
        raise ConfigError(_explain(error, from_environment, source)) from None
    finally:
        _LOADING.reset(token)


def _explain(error: ValidationError, from_environment: dict[str, Any], source: str) -> str:
    """Each problem named by the key a person wrote: the variable for the environment, the YAML path else."""
    variable_of = {field: variable for variable, field in ENVIRONMENT_VARIABLES.items()}
    problems: dict[str, list[str]] = {}
    for item in error.errors():
        location = [str(part) for part in item["loc"]]
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        if location and location[0] in from_environment:
            where, key = "environment", variable_of[location[0]]
        else:
            where, key = source, ".".join(location)
        problems.setdefault(where, []).append(f"{key}: {message}" if key else message)
    return "; ".join(f"{where}: " + "; ".join(found) for where, found in problems.items())
