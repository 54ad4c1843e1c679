"""Modal submissions: field errors go back in the ack so the form stays open; the work happens after.

Form values arrive as typed (unlike slash-command text, Slack does not escape them) and are stored that way;
`bot/slack/rendering.py` escapes them when they are shown. They pass the same checks as slash-command text
(`bot/incidents/input_rules.py`): no control characters, and the same length caps.
"""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import Ack, App

from bot.core.domain_errors import IllegalTransition, UsageError
from bot.incidents import input_rules
from bot.incidents.command_parser import Declare, parse_severity, parse_users_affected
from bot.incidents.input_rules import Field, FieldError
from bot.remediation.code_fixes import HotfixFields
from bot.runtime import Tars
from bot.slack import rendering
from handlers.listener_errors import guarded
from handlers.private_replies import origin_channel


def _values(view: dict[str, Any]) -> dict[str, Any]:
    state = view.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    return values if isinstance(values, dict) else {}


def _value(view: dict[str, Any], block_id: str) -> str | None:
    element = _values(view).get(block_id, {}).get("value", {})
    if not isinstance(element, dict):
        return None
    option = element.get("selected_option")
    if isinstance(option, dict) and option.get("value") is not None:
        return str(option["value"])
    value = element.get("value")
    return str(value) if value is not None else None


def _incident_id(view: dict[str, Any]) -> int:
    """The incident a form is about, from the metadata TARS put in it when it opened the form."""
    try:
        metadata = json.loads(view.get("private_metadata") or "")
        return int(metadata["incident_id"])
    except (ValueError, TypeError, KeyError) as error:
        raise UsageError("This form does not name an incident; open it again from the card.") from error


def _signal_id(view: dict[str, Any]) -> int | None:
    """The alert a declare form was opened from, if it was (its Declare button put the id in the metadata)."""
    try:
        metadata = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return None
    signal_id = metadata.get("signal_id") if isinstance(metadata, dict) else None
    return signal_id if isinstance(signal_id, int) and 0 < signal_id < 2**31 else None


def _text(view: dict[str, Any], block_id: str, field: Field, errors: dict[str, str]) -> str:
    """A free-text input as it will be stored; a broken rule is added to `errors` under its block."""
    try:
        return input_rules.clean(field, _value(view, block_id) or "")
    except FieldError as error:
        errors[block_id] = error.message
        return ""


def register(app: App, tars: Tars) -> None:
    @app.view(rendering.DECLARE_VIEW)
    @guarded
    def declare_submitted(ack: Ack, view: dict[str, Any], body: dict[str, Any]) -> None:
        errors: dict[str, str] = {}
        service = (_value(view, "service") or "").strip()
        if service not in tars.config.services:
            errors["service"] = "Pick a service from the list."
        severity = 0
        try:
            severity = parse_severity(_value(view, "severity") or "", rendering.DECLARE_VIEW)
        except UsageError:
            errors["severity"] = "Pick a severity, P1 to P4."
        description = _text(view, "description", input_rules.DESCRIPTION, errors)
        if not description and "description" not in errors:
            errors["description"] = "Say what is broken."
        impact = _text(view, "impact", input_rules.IMPACT, errors)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        command = Declare(service, severity, description, impact or None)
        actor = body["user"]["id"]
        signal_id = _signal_id(view)
        also = tars.signals.link_declared(signal_id, actor=actor) if signal_id is not None else None
        tars.flows.declare(command, actor=actor, origin_channel=origin_channel(body), also=also)
        ack()

    @app.view(rendering.RESOLVE_VIEW)
    @guarded
    def resolve_submitted(ack: Ack, view: dict[str, Any], body: dict[str, Any]) -> None:
        errors: dict[str, str] = {}
        root_cause = _text(view, "root_cause", input_rules.ROOT_CAUSE, errors)
        if not root_cause and "root_cause" not in errors:
            errors["root_cause"] = "The root cause is required, in one sentence."
        users: int | None = None
        try:
            users = parse_users_affected(_value(view, "users_affected"), "a whole number")
        except UsageError:
            errors["users_affected"] = "A whole number of users, or leave it empty."
        if errors:
            ack(response_action="errors", errors=errors)
            return
        incident_id = _incident_id(view)
        force_choice = _values(view).get("force", {}).get("value", {}).get("selected_options") or []
        force = any(option.get("value") == "force" for option in force_choice)
        actor = body["user"]["id"]
        if not force and tars.observability.queue_resolve(
            incident_id, root_cause=root_cause, users_affected=users, actor=actor, response_url=None
        ):
            # TARS reads the error rate first; the verdict goes to the thread, mentioning who asked.
            ack()
            return
        try:
            tars.flows.resolve(
                incident_id,
                root_cause=root_cause,
                users_affected=users,
                actor=actor,
                force=force,
            )
        except IllegalTransition as refused:
            # Nothing was stored, so the form stays open with what was typed and says why.
            ack(response_action="errors", errors={"root_cause": refused.message})
            return
        ack()

    @app.view(rendering.HOTFIX_VIEW)
    @guarded
    def hotfix_submitted(ack: Ack, view: dict[str, Any], body: dict[str, Any]) -> None:
        errors: dict[str, str] = {}
        text = {block: _text(view, block, field, errors) for block, field in rendering.HOTFIX_FIELDS.items()}
        fields = HotfixFields(**text)
        for block in ("summary", "evidence", "approach", "tests"):
            if not text[block] and block not in errors:
                errors[block] = "Required for the issue."
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        incident_id = _incident_id(view)
        tars.code_fixes.create_hotfix_issue(incident_id, fields, actor=body["user"]["id"])
