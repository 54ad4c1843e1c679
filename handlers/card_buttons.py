"""Buttons and selects on the incident card."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.core.domain_errors import UsageError
from bot.incidents.incident_records import Status
from bot.incidents.lifecycle import Guard
from bot.remediation.code_fixes import parse_merge_value
from bot.runtime import Tars
from bot.slack import rendering
from handlers.id_checks import record_id
from handlers.listener_errors import guarded
from handlers.private_replies import acting_user, clicked_message, origin_channel

STATUS_ACTION = re.compile(
    "^" + re.escape(rendering.STATUS_ACTION_PREFIX) + r"(investigating|mitigating|monitoring)$"
)


_SEVERITY = re.compile(r"[0-9]{1,2}")


def _record_id(value: object, refusal: str) -> int:
    """The id a button's value starts with; the value is client-controlled, so anything else is refused."""
    return record_id(value.split(":", 1)[0] if isinstance(value, str) else None, refusal)


def _incident_id(value: object) -> int:
    return _record_id(value, "This button does not name an incident; use `/incident list`.")


def _action_id(value: object) -> int:
    return _record_id(
        value, "This button does not name a remediation request; use the buttons on its approval card."
    )


def _severity_choice(action: dict[str, Any]) -> tuple[int, int]:
    option = action.get("selected_option")
    value = option.get("value") if isinstance(option, dict) else None
    incident_id = _incident_id(value)
    severity = str(value).partition(":")[2]
    if not _SEVERITY.fullmatch(severity):
        raise UsageError(
            "That severity option is not understood; use `/incident severity &lt;incident&gt; &lt;P1..P4&gt;`."
        )
    return incident_id, int(severity)


def register(app: App, tars: Tars) -> None:
    def on_incident_card(
        body: dict[str, Any], incident_id: int, button: str
    ) -> AbstractContextManager[Guard]:
        return tars.buttons.incident_card(
            incident_id, clicked_message(body), actor=acting_user(body), button=button
        )

    @app.action(rendering.ACK_ACTION)
    @guarded
    def acknowledge(ack: Ack, action: dict[str, Any], body: dict[str, Any]) -> None:
        incident_id = _incident_id(action.get("value"))
        with on_incident_card(body, incident_id, "Acknowledge") as guard:
            tars.flows.acknowledge(incident_id, actor=acting_user(body), guard=guard)
        ack()

    @app.action(STATUS_ACTION)
    @guarded
    def change_status(ack: Ack, action: dict[str, Any], body: dict[str, Any]) -> None:
        match = STATUS_ACTION.match(action["action_id"])
        assert match is not None  # the listener only fires for matching ids
        incident_id = _incident_id(action.get("value"))
        with on_incident_card(body, incident_id, "Status") as guard:
            tars.flows.set_status(incident_id, Status(match.group(1)), actor=acting_user(body), guard=guard)
        ack()

    @app.action(rendering.SEVERITY_ACTION)
    @guarded
    def change_severity(ack: Ack, action: dict[str, Any], body: dict[str, Any]) -> None:
        incident_id, severity = _severity_choice(action)
        with on_incident_card(body, incident_id, "Severity") as guard:
            tars.flows.set_severity(incident_id, severity, actor=acting_user(body), guard=guard)
        ack()

    @app.action(rendering.RESOLVE_ACTION)
    @guarded
    def open_resolve_modal(ack: Ack, action: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        ack()
        incident_id = _incident_id(action.get("value"))
        with on_incident_card(body, incident_id, "Resolve") as guard:
            incident = tars.flows.open_incident(incident_id, guard=guard)
        client.views_open(
            trigger_id=body["trigger_id"],
            view=rendering.resolve_modal(incident, channel_id=origin_channel(body)),
        )

    def cast_vote(action: dict[str, Any], body: dict[str, Any], *, approve: bool) -> str:
        action_id = _action_id(action.get("value"))
        user = acting_user(body)
        button = "Approve" if approve else "Deny"
        tars.buttons.action_card(action_id, clicked_message(body), actor=user, button=button)
        vote = tars.remediation.vote(action_id, user=user, approve=approve)
        return rendering.vote_reply(vote, approvers=tars.remediation.approvers.describe())

    @app.action(rendering.APPROVE_ACTION)
    @guarded
    def approve(ack: Ack, action: dict[str, Any], body: dict[str, Any], respond: Respond) -> None:
        message = cast_vote(action, body, approve=True)
        ack()
        respond(text=message, response_type="ephemeral", replace_original=False)

    @app.action(rendering.DENY_ACTION)
    @guarded
    def deny(ack: Ack, action: dict[str, Any], body: dict[str, Any], respond: Respond) -> None:
        message = cast_vote(action, body, approve=False)
        ack()
        respond(text=message, response_type="ephemeral", replace_original=False)

    @app.action(rendering.REVERT_FLAG_ACTION)
    @guarded
    def revert_flag(ack: Ack, action: dict[str, Any], body: dict[str, Any], respond: Respond) -> None:
        ack()
        action_id = _action_id(action.get("value"))
        user = acting_user(body)
        tars.buttons.action_thread(action_id, clicked_message(body), actor=user, button="Revert flag")
        request = tars.remediation.request_flag_revert(action_id, actor=user)
        respond(
            text=rendering.revert_requested_reply(request), response_type="ephemeral", replace_original=False
        )

    @app.action(rendering.MERGE_ACTION)
    @guarded
    def merge(ack: Ack, action: dict[str, Any], body: dict[str, Any], respond: Respond) -> None:
        ack()
        target = parse_merge_value(action.get("value"))
        user = acting_user(body)
        tars.buttons.incident_thread(
            target.incident, clicked_message(body), actor=user, button="Merge", record=target.record
        )
        merged = tars.code_fixes.merge(target, actor=user)
        reply = rendering.merge_reply(
            merged.outcome, merged.detail, approvers=tars.code_fixes.approvers.describe()
        )
        respond(text=reply, response_type="ephemeral", replace_original=False)
