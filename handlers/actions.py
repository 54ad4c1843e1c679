"""Buttons and selects on the incident card."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import rendering
from bot.errors import UsageError
from bot.models import Status
from bot.runtime import Tars
from handlers.errors import guarded
from handlers.replies import origin_channel

STATUS_ACTION = re.compile(
    "^" + re.escape(rendering.STATUS_ACTION_PREFIX) + r"(investigating|mitigating|monitoring)$"
)


def _incident_id(value: str) -> int:
    head = value.split(":", 1)[0]
    if not head.isdigit():
        raise UsageError("This button does not name an incident; use `/incident list`.")
    return int(head)


def register(app: App, tars: Tars) -> None:
    @app.action(rendering.ACK_ACTION)
    @guarded
    def acknowledge(ack: Ack, action: dict[str, Any], body: dict[str, Any]) -> None:
        tars.flows.acknowledge(_incident_id(action["value"]), actor=body["user"]["id"])
        ack()

    @app.action(STATUS_ACTION)
    @guarded
    def change_status(ack: Ack, action: dict[str, Any], body: dict[str, Any]) -> None:
        match = STATUS_ACTION.match(action["action_id"])
        assert match is not None  # the listener only fires for matching ids
        tars.flows.set_status(_incident_id(action["value"]), Status(match.group(1)), actor=body["user"]["id"])
        ack()

    @app.action(rendering.SEVERITY_ACTION)
    @guarded
    def change_severity(ack: Ack, action: dict[str, Any], body: dict[str, Any]) -> None:
        value = action["selected_option"]["value"]
        incident_id, _, severity = value.partition(":")
        if not severity.isdigit():
            raise UsageError(
                "That severity option is not understood; use `/incident severity &lt;incident&gt; &lt;P1..P4&gt;`."
            )
        tars.flows.set_severity(_incident_id(incident_id), int(severity), actor=body["user"]["id"])
        ack()

    @app.action(rendering.RESOLVE_ACTION)
    @guarded
    def open_resolve_modal(ack: Ack, action: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        ack()
        incident = tars.flows.open_incident(_incident_id(action["value"]))
        client.views_open(
            trigger_id=body["trigger_id"],
            view=rendering.resolve_modal(incident, channel_id=origin_channel(body)),
        )

    @app.action(rendering.APPROVE_ACTION)
    @guarded
    def approve(ack: Ack, action: dict[str, Any], body: dict[str, Any], respond: Respond) -> None:
        vote = tars.remediation.vote(_incident_id(action["value"]), user=body["user"]["id"], approve=True)
        ack()
        respond(text=vote.message, response_type="ephemeral", replace_original=False)

    @app.action(rendering.DENY_ACTION)
    @guarded
    def deny(ack: Ack, action: dict[str, Any], body: dict[str, Any], respond: Respond) -> None:
        vote = tars.remediation.vote(_incident_id(action["value"]), user=body["user"]["id"], approve=False)
        ack()
        respond(text=vote.message, response_type="ephemeral", replace_original=False)

    @app.action(rendering.REVERT_FLAG_ACTION)
    @guarded
    def revert_flag(ack: Ack, action: dict[str, Any], body: dict[str, Any], respond: Respond) -> None:
        ack()
        request = tars.remediation.request_flag_revert(
            _incident_id(action["value"]), actor=body["user"]["id"]
        )
        respond(
            text=rendering.revert_requested_reply(request), response_type="ephemeral", replace_original=False
        )

    @app.action(rendering.MERGE_ACTION)
    @guarded
    def merge(ack: Ack, action: dict[str, Any], body: dict[str, Any], respond: Respond) -> None:
        ack()
        reply = tars.code_fixes.merge(action["value"], actor=body["user"]["id"])
        respond(text=reply, response_type="ephemeral", replace_original=False)
