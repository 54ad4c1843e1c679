"""What the signal tests share: sending to an endpoint, and reading what TARS stored and posted."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.signals.signal_records import Signal
from sandbox.emulator import Message
from tests.support import CHANNEL, Workspace


def post(team: Workspace, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        team.running.url + path,
        data=body,
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def signal_count(team: Workspace) -> int:
    """Signals stored, leaving out the dormant rows a service's digest and report cards reuse."""
    with Session(team.engine) as session:
        statement = select(func.count()).select_from(Signal).where(Signal.triage != "dormant")
        return int(session.scalar(statement) or 0)


def stored_signal(team: Workspace) -> Signal:
    with Session(team.engine) as session:
        latest = select(Signal).where(Signal.triage != "dormant").order_by(Signal.id.desc())
        signal = session.scalars(latest).first()
        assert signal is not None
        return signal


def triage_cards(team: Workspace) -> list[Message]:
    team.settle()
    return [m for m in team.slack.channel_messages(CHANNEL) if m.text.startswith("🔔")]
