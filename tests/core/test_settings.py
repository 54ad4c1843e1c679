"""Configuration: environment + YAML, and start-up failures that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.settings import ConfigError, load_config


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tars.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_start_without_any_credentials() -> None:
    config = load_config({})
    assert config.database_url == "sqlite:///tars.db"
    assert config.port == 3000
    assert config.slack_api_url == "https://slack.com/api/"
    assert not config.socket_mode
    assert "payments" in config.services  # the built-in example catalog


def test_environment_and_yaml_together(tmp_path: Path) -> None:
    path = write(tmp_path, "incidents_channel: C0YAML\nservices:\n  search:\n    oncall: U0SEARCH\n")
    config = load_config(
        {
            "TARS_CONFIG": path,
            "DATABASE_URL": "postgresql://tars:secret@db:5432/tars",
            "SLACK_APP_TOKEN": "xapp-1",
            "SLACK_API_URL": "http://127.0.0.1:9999/api",
            "PORT": "8080",
        }
    )
    assert config.database_url == "postgresql+psycopg://tars:secret@db:5432/tars"
    assert config.incidents_channel == "C0YAML"
    assert config.services["search"].oncall == "U0SEARCH"
    assert config.socket_mode
    assert config.slack_api_url == "http://127.0.0.1:9999/api/"
    assert config.port == 8080


def test_environment_channel_wins_over_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "incidents_channel: C0YAML\n")
    assert load_config({"TARS_CONFIG": path, "TARS_INCIDENTS_CHANNEL": "C0ENV"}).incidents_channel == "C0ENV"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("incident_channel: C0X\n", "incident_channel: unknown key"),
        ("services:\n  payments:\n    oncal: U0X\n", "services.payments.oncal: unknown key"),
        ("services:\n  payments:\n    oncall: alice\n", "services.payments.oncall: must be a Slack user id"),
        ("services:\n  Pay Ments:\n    oncall: U0X1\n", "service name 'Pay Ments'"),
        ("incidents_channel: general\n", "incidents_channel: must be a Slack channel id"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("services: [\n", "not valid YAML"),
        (
            "services:\n  payments:\n    oncall: U0X1\n    metrics: {}\n",
            "services.payments.metrics: give exactly one of prometheus or cloudwatch",
        ),
        (
            "services:\n  payments:\n    oncall: U0X1\n    metrics:\n      prometheus: {url: prom:9090, error_rate: x}\n",
            "services.payments.metrics.prometheus.url",
        ),
        (
            "services:\n  payments:\n    oncall: U0X1\n    metrics:\n      cloudwatch:\n        error_rate:\n"
            "          metrics: {a: {namespace: N, metric: M}, b: {namespace: N, metric: M}}\n",
            "several metrics need an expression",
        ),
        (
            "services:\n  payments:\n    oncall: U0X1\n    logs: {log_groups: []}\n",
            "services.payments.logs.log_groups",
        ),
    ],
)
def test_bad_yaml_fails_naming_the_key(tmp_path: Path, yaml_text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"TARS_CONFIG": write(tmp_path, yaml_text)})
    assert expected in str(caught.value)


def test_bad_environment_fails_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PORT"):
        load_config({"PORT": "eighty"})
    with pytest.raises(ConfigError, match="TARS_INCIDENTS_CHANNEL"):
        load_config({"TARS_INCIDENTS_CHANNEL": "#incidents"})
    with pytest.raises(ConfigError, match="TARS_CONFIG: cannot read"):
        load_config({"TARS_CONFIG": str(tmp_path / "missing.yaml")})
