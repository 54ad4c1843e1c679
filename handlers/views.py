"""Modal submissions: field errors go back in the ack so the form stays open; the work happens after."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import Ack, App

from bot import rendering
from bot.code_fixes import HotfixFields
from bot.commands import Declare, parse_severity, parse_users_affected
from bot.errors import IllegalTransition, UsageError
from bot.runtime import Tars
from handlers.errors import guarded
from handlers.replies import origin_channel


def _value(view: dict[str, Any], block_id: str) -> str | None:
    element = view["state"]["values"].get(block_id, {}).get("value", {})
    if element.get("selected_option"):
        return str(element["selected_option"]["value"])
    value = element.get("value")
    return slack_escape(str(value)) if value is not None else None


def slack_escape(text: str) -> str:
    """Form text arrives raw (slash-command text arrives escaped): escape it the same way, so `<!channel>` or a
    disguised `<https://…|link>` typed into a form is shown as typed, never as a mention or link in TARS's posts."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
        description = (_value(view, "description") or "").strip()
        if not description:
            errors["description"] = "Say what is broken."
        if errors:
            ack(response_action="errors", errors=errors)
            return
        command = Declare(service, severity, description, (_value(view, "impact") or "").strip() or None)
        tars.flows.declare(command, actor=body["user"]["id"], origin_channel=origin_channel(body))
        ack()

    @app.view(rendering.RESOLVE_VIEW)
    @guarded
    def resolve_submitted(ack: Ack, view: dict[str, Any], body: dict[str, Any]) -> None:
        errors: dict[str, str] = {}
        root_cause = (_value(view, "root_cause") or "").strip()
        if not root_cause:
            errors["root_cause"] = "The root cause is required, in one sentence."
        users: int | None = None
        try:
            users = parse_users_affected(_value(view, "users_affected"), "a whole number")
        except UsageError:
            errors["users_affected"] = "A whole number of users, or leave it empty."
        if errors:
            ack(response_action="errors", errors=errors)
            return
        incident_id = int(json.loads(view["private_metadata"])["incident_id"])
        force_choice = view["state"]["values"].get("force", {}).get("value", {}).get("selected_options") or []
        try:
            tars.flows.resolve(
                incident_id,
                root_cause=root_cause,
                users_affected=users,
                actor=body["user"]["id"],
                force=any(option.get("value") == "force" for option in force_choice),
            )
        except IllegalTransition as refused:
            # Nothing was stored, so the form stays open with what was typed and says why.
            ack(response_action="errors", errors={"root_cause": refused.message})
            return
        ack()

    @app.view(rendering.HOTFIX_VIEW)
    @guarded
    def hotfix_submitted(ack: Ack, view: dict[str, Any], body: dict[str, Any]) -> None:
        fields = HotfixFields(
            summary=(_value(view, "summary") or "").strip(),
            evidence=(_value(view, "evidence") or "").strip(),
            affected=(_value(view, "affected") or "").strip(),
            approach=(_value(view, "approach") or "").strip(),
            tests=(_value(view, "tests") or "").strip(),
        )
        required = {
            "summary": fields.summary,
            "evidence": fields.evidence,
            "approach": fields.approach,
            "tests": fields.tests,
        }
        errors = {block: "Required for the issue." for block, value in required.items() if not value}
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        incident_id = int(json.loads(view["private_metadata"])["incident_id"])
        tars.code_fixes.create_hotfix_issue(incident_id, fields, actor=body["user"]["id"])
