"""`/incident ...`: parse, ack, hand over to the flows, reply."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.core.domain_errors import UsageError
from bot.incidents.command_parser import (
    Acknowledge,
    Declare,
    DraftPostmortem,
    Help,
    ListOpen,
    OpenDeclareModal,
    OpenHotfixModal,
    PostUpdate,
    ReportFromCustomer,
    RequestEnv,
    RequestFlag,
    RequestRollback,
    RequestScale,
    Resolve,
    RollbackByCommit,
    SearchLogs,
    SetSeverity,
    SetStatus,
    Show,
    ShowMetrics,
    parse_command,
)
from bot.runtime import Tars
from bot.slack import rendering
from handlers.listener_errors import guarded


def register(app: App, tars: Tars) -> None:
    @app.command("/incident")
    @guarded
    def incident_command(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        try:
            parsed = parse_command(command.get("text", ""), tars.config.services)
        except UsageError as error:
            ack(text=error.message, response_type="ephemeral")
            return
        actor = command["user_id"]
        channel = command.get("channel_id")
        reply = _instant_reply(
            tars, parsed, actor=actor, channel=channel, response_url=command.get("response_url")
        )
        if reply is not None:
            # The change (and the posts announcing it) is committed: only now does Slack hear back.
            ack(text=reply, response_type="ephemeral")
            return
        match parsed:
            case OpenDeclareModal():
                ack()
                client.views_open(
                    trigger_id=command["trigger_id"],
                    view=rendering.declare_modal(tars.config.services, channel_id=channel),
                )
            case OpenHotfixModal(incident_id, summary):
                incident = tars.flows.open_incident(incident_id)
                ack()
                client.views_open(
                    trigger_id=command["trigger_id"],
                    view=rendering.hotfix_modal(incident, summary, channel_id=channel),
                )
            case (
                RequestRollback()
                | RequestScale()
                | RequestFlag()
                | RequestEnv()
                | RollbackByCommit()
                | DraftPostmortem()
            ):
                # A command that calls a cluster, AWS or GitHub: committed now, carried out by a worker, which
                # answers through the response_url.
                tars.jobs.queue(
                    command.get("text", ""),
                    parsed.incident_id,
                    actor=actor,
                    channel=channel,
                    response_url=command.get("response_url"),
                )
                ack(text=rendering.working_reply(_WORKING_ON[type(parsed)]), response_type="ephemeral")
            case ShowMetrics(incident_id, window):
                incident = tars.observability.request(
                    incident_id,
                    {"job": "chart", "window_seconds": int(window.total_seconds()), "purpose": "asked"},
                    actor=actor,
                    response_url=command.get("response_url"),
                )
                ack(text=rendering.metrics_working_reply(incident), response_type="ephemeral")
            case SearchLogs(incident_id, query, window, correlation_id):
                incident = tars.observability.request(
                    incident_id,
                    {
                        "job": "logs",
                        "query": query,
                        "correlation_id": correlation_id,
                        "window_seconds": int(window.total_seconds()),
                    },
                    actor=actor,
                    response_url=command.get("response_url"),
                )
                ack(text=rendering.logs_working_reply(incident), response_type="ephemeral")


_WORKING_ON: dict[type, str] = {
    RequestRollback: "reading the deployment to plan the rollback",
    RequestScale: "reading the service to plan the scaling",
    RequestFlag: "reading the flag's current value",
    RequestEnv: "reading the function's environment",
    RollbackByCommit: "opening the rollback issue and the revert PR on GitHub",
    DraftPostmortem: "drafting the post-mortem from the timeline",
}


def _instant_reply(
    tars: Tars, parsed: object, *, actor: str, channel: str | None, response_url: str | None
) -> str | None:
    """Carry out a command that only touches the database and return the private reply; None for the rest."""
    flows = tars.flows
    match parsed:
        case Help(topic):
            return rendering.flags_help_text(tars.config.flags) if topic == "flags" else rendering.help_text()
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
            if not force:
                waiting = tars.observability.queue_resolve(
                    incident_id,
                    root_cause=root_cause,
                    users_affected=users_affected,
                    actor=actor,
                    response_url=response_url,
                )
                if waiting is not None:
                    return rendering.resolve_checking_reply(waiting)
            change = flows.resolve(
                incident_id, root_cause=root_cause, users_affected=users_affected, actor=actor, force=force
            )
            return f"Resolved {change.incident.ref}."
        case ListOpen():
            shown, total = flows.open_incidents()
            return rendering.incident_list_text(shown, tars.clock.now(), total=total)
        case ReportFromCustomer(service, text):
            outcome = tars.signals.report(service, text, reporter=actor)
            return rendering.report_reply(outcome)
        case Show(incident_id):
            incident, events = flows.incident_with_timeline(incident_id)
            onset = tars.observability.last_onset(events)
            advice = tars.remediation.advice_for(incident, onset) if incident.is_open else None
            signals = tars.signals.of_incident(incident_id)
            return rendering.incident_detail_text(incident, events, advice=advice, signals=signals)
    return None
