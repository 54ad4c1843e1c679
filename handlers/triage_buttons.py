"""Buttons on an alert's triage card: declare it (through the pre-filled declare form) or dismiss it."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.core.domain_errors import DomainError
from bot.ingress.button_binding import check_triage_card
from bot.runtime import Tars
from bot.signals.signal_records import Signal, Triage
from bot.slack import rendering
from handlers.id_checks import record_id
from handlers.listener_errors import guarded
from handlers.private_replies import acting_user, clicked_message, origin_channel

DECLARE_ACTION = re.compile("^" + re.escape(rendering.TRIAGE_DECLARE_PREFIX) + "([12])$")


def register(app: App, tars: Tars) -> None:
    def clicked_signal(action: dict[str, Any], body: dict[str, Any]) -> Signal:
        refusal = "This button does not name an alert; use the buttons on its triage card."
        signal = tars.signals.get(record_id(action.get("value"), refusal))
        check_triage_card(signal, clicked_message(body))
        if signal.triage != Triage.OPEN.value:
            raise DomainError(rendering.signal_already_triaged(signal))
        return signal

    @app.action(DECLARE_ACTION)
    @guarded
    def declare_from_alert(ack: Ack, action: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        ack()
        signal = clicked_signal(action, body)
        match = DECLARE_ACTION.match(action["action_id"])
        assert match is not None  # the listener only fires for matching ids
        summary = f": {signal.summary}" if signal.summary else ""
        draft = rendering.DeclareDraft(signal.id, signal.service, int(match.group(1)), signal.title + summary)
        client.views_open(
            trigger_id=body["trigger_id"],
            view=rendering.declare_modal(tars.config.services, channel_id=origin_channel(body), draft=draft),
        )

    @app.action(rendering.TRIAGE_ATTACH_ACTION)
    @guarded
    def attach(ack: Ack, action: dict[str, Any], body: dict[str, Any]) -> None:
        option = action.get("selected_option")
        value = option.get("value") if isinstance(option, dict) else None
        signal_part, _, incident_part = value.partition(":") if isinstance(value, str) else ("", "", "")
        incident_id = record_id(
            incident_part, "That choice does not name an incident; pick one from the card's list."
        )
        signal = clicked_signal({"value": signal_part}, body)
        tars.signals.attach(signal.id, incident_id, actor=acting_user(body))
        ack()

    @app.action(rendering.TRIAGE_DISMISS_ACTION)
    @guarded
    def dismiss(ack: Ack, action: dict[str, Any], body: dict[str, Any]) -> None:
        signal = clicked_signal(action, body)
        tars.signals.dismiss(signal.id, actor=acting_user(body))
        ack()
