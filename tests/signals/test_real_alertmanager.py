"""Alerts from a real Alertmanager (Debian's prometheus-alertmanager) through its webhook receiver into TARS:
the triage card, deduplication and resolution, as Alertmanager really sends them."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from bot.core.clock import FrozenClock
from sandbox.emulator import Message, SlackEmulator
from tests.support import CHANNEL, Workspace, debian_tool, loopback_port, start_tars

TOKEN = "alertmanager-real-token"


@pytest.fixture
def team(slack: SlackEmulator, engine: Engine, clock: FrozenClock) -> Iterator[Workspace]:
    with start_tars(slack, engine, clock, alertmanager_token=TOKEN) as running:
        yield Workspace(running, slack, engine, clock)


@pytest.fixture
def alertmanager(team: Workspace, tmp_path: Path) -> Iterator[str]:
    """Alertmanager with one receiver, TARS, grouping by alertname with short waits; yields its base URL."""
    binary = debian_tool("prometheus-alertmanager", "prometheus-alertmanager")
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        json.dumps(
            {
                "route": {
                    "receiver": "tars",
                    "group_by": ["alertname"],
                    "group_wait": "1s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "tars",
                        "webhook_configs": [
                            {
                                "url": f"{team.running.url}/signals/alertmanager",
                                "send_resolved": True,
                                "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}},
                            }
                        ],
                    }
                ],
            }
        )
    )
    port = loopback_port()
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    try:
        team.wait_until(ready, timeout=30, message="Alertmanager did not become ready")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def push(alertmanager: str, *alerts: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{alertmanager}/api/v2/alerts",
        data=json.dumps(list(alerts)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def firing(name: str, service: str, summary: str, *, ended: bool = False) -> dict[str, Any]:
    now = datetime.now(UTC)
    alert: dict[str, Any] = {
        "labels": {"alertname": name, "service": service, "severity": "critical", "instance": service + "-1"},
        "annotations": {"summary": summary},
        "startsAt": (now - timedelta(minutes=2)).isoformat(),
    }
    if ended:
        alert["endsAt"] = (now - timedelta(seconds=1)).isoformat()
    return alert


def triage_cards(team: Workspace) -> list[Message]:
    return [m for m in team.slack.channel_messages(CHANNEL) if m.text.startswith("🔔")]


def wait_for_cards(team: Workspace, condition: Any, message: str) -> list[Message]:
    def met() -> bool:
        team.running.app.settle()
        return bool(condition(triage_cards(team)))

    team.wait_until(met, timeout=60, message=message)
    return triage_cards(team)


def test_a_real_alertmanager_alert_gets_one_card_updated_in_place_then_marked_resolved(
    team: Workspace, alertmanager: str
) -> None:
    push(alertmanager, firing("HighErrorRate", "payments", "5xx above 5%"))
    [card] = wait_for_cards(team, lambda cards: len(cards) == 1, "no triage card from Alertmanager")
    assert card.text == "🔔 [firing] payments: HighErrorRate — 5xx above 5%"
    assert "<@U0PAYONCALL>" in json.dumps(card.blocks)

    # A second alert joins the group: Alertmanager sends the whole group again, the first alert included.
    push(alertmanager, firing("HighErrorRate", "checkout", "5xx above 8%"))
    cards = wait_for_cards(team, lambda cards: len(cards) == 2, "the second alert got no card")
    first = next(c for c in cards if c.ts == card.ts)
    assert "*Seen:* 2×" in json.dumps(first.blocks, ensure_ascii=False)
    assert sorted(c.text for c in cards) == [
        "🔔 [firing] checkout: HighErrorRate — 5xx above 8%",
        "🔔 [firing] payments: HighErrorRate — 5xx above 5%",
    ]

    push(alertmanager, firing("HighErrorRate", "payments", "5xx above 5%", ended=True))
    cards = wait_for_cards(
        team,
        lambda cards: any(c.ts == card.ts and c.text.startswith("🔔 [resolved]") for c in cards),
        "the resolution never reached the card",
    )
    assert len(cards) == 2
    resolved = next(c for c in cards if c.ts == card.ts)
    assert "✅ Resolved at" in json.dumps(resolved.blocks, ensure_ascii=False)
