"""GET /metrics: what TARS counts, in a format Prometheus's own tools accept and its server scrapes.

promtool and prometheus come from Debian's `prometheus` package (`make test` installs it when missing). Without
them these tests skip locally; in CI (CI=true) they fail instead.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Workspace, debian_tool, loopback_port

ROOT = Path(__file__).resolve().parents[2]


def sample(exposition: str, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    for family in text_string_to_metric_families(exposition):
        for point in family.samples:
            if point.name == name and all(point.labels.get(key) == value for key, value in labels.items()):
                return float(point.value)
    return 0.0


def scrape(workspace: Workspace) -> str:
    with urllib.request.urlopen(workspace.running.url + "/metrics", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        return str(answer.read().decode())


def tool(name: str) -> str:
    return debian_tool(name, "prometheus")


def test_metrics_count_what_people_did(workspace: Workspace) -> None:
    before = scrape(workspace)
    declared = sample(before, "tars_requests_total", kind="/incident declare", outcome="ok")
    refused = sample(before, "tars_requests_total", kind="/incident status", outcome="refused")
    posts = sample(before, "tars_slack_calls_total", method="chat.postMessage", result="ok")
    acks = sample(before, "tars_ack_seconds_count")

    incident = workspace.declare("payments P1 Card payments failing with 502")
    workspace.command(f"status {incident.id} monitoring")
    workspace.command(f"status {incident.id} monitoring")  # already Monitoring: refused
    workspace.settle()

    after = scrape(workspace)
    assert sample(after, "tars_requests_total", kind="/incident declare", outcome="ok") == declared + 1
    assert sample(after, "tars_requests_total", kind="/incident status", outcome="refused") == refused + 1
    assert sample(after, "tars_slack_calls_total", method="chat.postMessage", result="ok") > posts
    assert sample(after, "tars_ack_seconds_count") >= acks + 3
    assert sample(after, "tars_open_incidents", severity="P1") == 1
    assert sample(after, "tars_outbox_pending") == 0
    assert sample(after, "tars_outbox_oldest_pending_seconds") == 0


def test_a_typed_sub_command_never_becomes_a_label(workspace: Workspace) -> None:
    workspace.command("definitely-not-a-command")
    workspace.settle()
    exposition = scrape(workspace)
    assert "definitely-not-a-command" not in exposition
    assert sample(exposition, "tars_requests_total", kind="/incident other", outcome="ok") >= 1


def test_promtool_accepts_the_exposition(workspace: Workspace) -> None:
    promtool = tool("promtool")
    workspace.declare()
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=scrape(workspace),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture
def prometheus(workspace: Workspace, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus server scraping this TARS every second; yields its HTTP API's base URL."""
    binary = tool("prometheus")
    target = workspace.running.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: tars\n    static_configs:\n      - targets: ['{target}']\n"
    )
    port = loopback_port()
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_real_prometheus_scrapes_a_counter(workspace: Workspace, prometheus: str) -> None:
    workspace.declare()
    query = urllib.parse.urlencode({"query": 'tars_requests_total{kind="/incident declare",outcome="ok"}'})
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{prometheus}/api/v1/query?{query}", timeout=5) as answer:
                result = json.loads(answer.read())["data"]["result"]
        except OSError:  # the server is still starting
            result = []
        if result:
            break
        assert time.monotonic() < deadline, "Prometheus never reported the counter"
        time.sleep(0.2)
    assert float(result[0]["value"][1]) >= 1


def test_promtool_accepts_the_alerting_rules(tmp_path: Path) -> None:
    promtool = tool("promtool")
    rule = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "monitoring" / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    rules = tmp_path / "tars-rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]}
    assert {"TarsOutboxFallingBehind", "TarsSlackRefusingPosts", "TarsSchedulerNotTicking"} <= alerts
    assert "TarsRemediationFailed" in alerts
