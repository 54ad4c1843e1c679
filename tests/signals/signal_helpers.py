"""What the signal tests share: sending to an endpoint, and reading what TARS stored and posted."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.signals.signal_records import Signal
from bot.slack import rendering
from sandbox.emulator import Message, View
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


def open_declare_form(team: Workspace, card: Message, signal_id: int, *, severity: int, user: str) -> View:
    """Click Declare P<severity> on a triage card as `user`; the declare form it opened."""
    team.client.click_button(
        user_id=user,
        channel_id=CHANNEL,
        message_ts=card.ts,
        action_id=rendering.TRIAGE_DECLARE_PREFIX + str(severity),
        value=str(signal_id),
    )
    team.wait_until(lambda: bool(team.slack.views(user_id=user)), message="no declare form opened")
    [view] = team.slack.views(user_id=user)
    return view
