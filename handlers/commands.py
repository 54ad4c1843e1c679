"""`/incident ...`: parse, ack, hand over to the flows, reply."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import rendering
from bot.commands import (
    Acknowledge,
    Declare,
    DraftPostmortem,
    Help,
    ListOpen,
    OpenDeclareModal,
    OpenHotfixModal,
    PostUpdate,
    RequestEnv,
    RequestFlag,
    RequestRollback,
    RequestScale,
    Resolve,
    RollbackByCommit,
    SetSeverity,
    SetStatus,
    Show,
    help_text,
    parse_command,
)
from bot.errors import UsageError
from bot.runtime import Tars
from handlers.errors import guarded


def register(app: App, tars: Tars) -> None:
    @app.command("/incident")
    @guarded
    def incident_command(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        try:
            parsed = parse_command(command.get("text", ""), tars.config.services)
        except UsageError as error:
            ack(text=error.message, response_type="ephemeral")
            return
        actor = command["user_id"]
        channel = command.get("channel_id")
        reply = _instant_reply(tars, parsed, actor=actor, channel=channel)
        if reply is not None:
            # The change (and the posts announcing it) is committed: only now does Slack hear back.
            ack(text=reply, response_type="ephemeral")
            return
        # What is left calls outside systems (a cluster, GitHub, a modal): answer first, then do it.
        working = _WORKING_ON.get(type(parsed))
        if working:
            ack(text=rendering.working_reply(working), response_type="ephemeral")
        else:
            ack()
        match parsed:
            case OpenDeclareModal():
                client.views_open(
                    trigger_id=command["trigger_id"],
                    view=rendering.declare_modal(tars.config.services, channel_id=channel),
                )
            case RequestRollback(incident_id, service, to_revision):
                action = tars.remediation.request_rollback(incident_id, service, to_revision, actor=actor)
                respond(text=rendering.requested_reply(action), response_type="ephemeral")
            case RequestScale(incident_id, service, replicas):
                action = tars.remediation.request_scale(incident_id, service, replicas, actor=actor)
                respond(text=rendering.requested_reply(action), response_type="ephemeral")
            case RequestFlag(incident_id, flag, value):
                action = tars.remediation.request_flag(incident_id, flag, value, actor=actor)
                respond(text=rendering.requested_reply(action), response_type="ephemeral")
            case RequestEnv(incident_id, function, changes):
                action = tars.remediation.request_env(incident_id, function, changes, actor=actor)
                respond(text=rendering.requested_reply(action), response_type="ephemeral")
            case RollbackByCommit(incident_id, service, commit):
                issue, pull = tars.code_fixes.rollback_by_issue(incident_id, service, commit, actor=actor)
                respond(
                    text=f"Opened rollback issue {issue.url} and revert PR {pull.url}; the PR card with Merge is "
                    "in the incident thread.",
                    response_type="ephemeral",
                )
            case OpenHotfixModal(incident_id, summary):
                incident = tars.flows.open_incident(incident_id)
                client.views_open(
                    trigger_id=command["trigger_id"],
                    view=rendering.hotfix_modal(incident, summary, channel_id=channel),
                )
            case DraftPostmortem(incident_id):
                link = tars.code_fixes.postmortem(incident_id, actor=actor)
                respond(text=rendering.postmortem_posted_reply(link), response_type="ephemeral")


_WORKING_ON: dict[type, str] = {
    RequestRollback: "reading the deployment to plan the rollback",
    RequestScale: "reading the service to plan the scaling",
    RequestFlag: "reading the flag's current value",
    RequestEnv: "reading the function's environment",
    RollbackByCommit: "opening the rollback issue and the revert PR on GitHub",
    DraftPostmortem: "drafting the post-mortem from the timeline",
}


def _instant_reply(tars: Tars, parsed: object, *, actor: str, channel: str | None) -> str | None:
    """Carry out a command that only touches the database and return the private reply; None for the rest."""
    flows = tars.flows
    match parsed:
        case Help(topic):
            return rendering.flags_help_text(tars.config.flags) if topic == "flags" else help_text()
        case Declare():
            incident = flows.declare(parsed, actor=actor, origin_channel=channel)
            return rendering.declared_reply(incident)
        case Acknowledge(incident_id):
            change = flows.acknowledge(incident_id, actor=actor)
            return f"You acknowledged {change.incident.ref}."
        case SetStatus(incident_id, status):
            change = flows.set_status(incident_id, status, actor=actor)
            return f"{change.incident.ref}: {change.event.text}."
        case SetSeverity(incident_id, severity):
            change = flows.set_severity(incident_id, severity, actor=actor)
            return f"{change.incident.ref}: {change.event.text}."
        case PostUpdate(incident_id, findings, eta):
            change = flows.post_update(incident_id, findings=findings, eta=eta, actor=actor)
            return f"Recorded the update for {change.incident.ref}; the 📊 post is on its way."
        case Resolve(incident_id, root_cause, users_affected, force):
            change = flows.resolve(
                incident_id, root_cause=root_cause, users_affected=users_affected, actor=actor, force=force
            )
            return f"Resolved {change.incident.ref}."
        case ListOpen():
            shown, total = flows.open_incidents()
            return rendering.incident_list_text(shown, tars.clock.now(), total=total)
        case Show(incident_id):
            incident, events = flows.incident_with_timeline(incident_id)
            advice = tars.remediation.advice_for(incident) if incident.is_open else None
            return rendering.incident_detail_text(incident, events, advice=advice)
    return None
