"""Everything TARS shows in Slack: message text, Block Kit and modals, built in one place.

Message `text` always carries the full runbook template, so notifications, screen readers and clients that
ignore blocks still show the whole message.

Two rules hold for every function here:

- Anything a person typed (or an outside system returned) goes into mrkdwn through `escape`, so `<!here>`,
  `<!channel>`, `<!subteam^…>`, `<@U…>` and `<https://…|label>` show as typed instead of pinging people or
  disguising a link. Mentions TARS adds itself (`mention`, `mention_target`) still work. What is stored stays
  as the person typed it; escaping happens only here.
- Every message, ephemeral reply and modal returned here passes through `bot/slack/slack_limits.py`, so it fits
  Slack's limits however long the stored text is.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, ParamSpec

from bot.core.durations import format_duration
from bot.incidents import input_rules
from bot.incidents.incident_records import OPEN_STATUSES, Incident, Status, TimelineEvent
from bot.observability.log_patterns import Pattern
from bot.observability.metric_analysis import (
    Bucket,
    DeployRates,
    Excursion,
    Quiet,
    Verdict,
    percent,
    threshold_for,
)
from bot.remediation.action_records import Vote, VoteOutcome
from bot.remediation.rollback_rule import RollbackRule
from bot.signals.signal_records import ReportOutcome, Signal, SignalState, Triage
from bot.slack.slack_limits import FIELD_TEXT, MESSAGE_TEXT, SECTION_TEXT, fit_blocks, fit_text, fit_view
from integrations.observability_reads import LogLine

Block = dict[str, Any]
P = ParamSpec("P")

# action_ids the handlers listen for; Slack requires them unique within one actions block.
ACK_ACTION = "incident_ack"
STATUS_ACTION_PREFIX = "incident_status_"
SEVERITY_ACTION = "incident_severity"
RESOLVE_ACTION = "incident_resolve"
DECLARE_VIEW = "incident_declare"
TRIAGE_DECLARE_PREFIX = "triage_declare_p"  # + severity
TRIAGE_DISMISS_ACTION = "triage_dismiss"
TRIAGE_ATTACH_ACTION = "triage_attach"
RESOLVE_VIEW = "incident_resolve"

# The reply to any request TARS cannot act on because its database does not answer.
DATABASE_DOWN_TEXT = "TARS cannot reach its database right now; nothing was changed. Try again in a minute."


def fmt_time(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "—"


def fmt_duration(start: datetime, end: datetime) -> str:
    minutes = max(0, int((end - start).total_seconds()) // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} {'hour' if hours == 1 else 'hours'} {minutes} {'minute' if minutes == 1 else 'minutes'}"


def escape(text: str | None) -> str:
    """Text from a person or an outside system, safe in mrkdwn: Slack's three escapes (`&`, `<`, `>`)."""
    if not text:
        return ""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def echo(text: str, limit: int = 60) -> str:
    """Something a person typed, quoted back in a reply: control characters made visible, cut, escaped."""
    visible = "".join("�" if unicodedata.category(char) in ("Cc", "Cs") else char for char in text)
    return escape(fit_text(visible, limit))


def _short(text: str | None, limit: int) -> str:
    """User text escaped and cut to `limit` characters, for a place in a message that has a budget."""
    return fit_text(escape(text), limit)


def mention(user_id: str | None) -> str:
    if not user_id:
        return "unassigned"
    if input_rules.USER_ID.fullmatch(user_id):
        return f"<@{user_id}>"
    return "TARS" if user_id == "tars" else escape(user_id)


def severity_label(severity: int) -> str:
    return f"P{severity}"


def _mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": text}


def _plain(text: str) -> Block:
    return {"type": "plain_text", "text": text, "emoji": True}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [_mrkdwn(text)]}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {"type": "button", "text": _plain(text), "action_id": action_id, "value": value}
    if style:
        button["style"] = style
    return button


def _option(text: str, value: str) -> Block:
    return {"text": _plain(text), "value": value}


def _fitted_text(render: Callable[P, str]) -> Callable[P, str]:
    """A renderer of message text whose output always fits Slack's message text limit."""

    @wraps(render)
    def fitted(*args: P.args, **kwargs: P.kwargs) -> str:
        return fit_text(render(*args, **kwargs))

    return fitted


def _fitted_blocks(render: Callable[P, list[Block]]) -> Callable[P, list[Block]]:
    """A renderer of message blocks whose output always fits Slack's Block Kit limits."""

    @wraps(render)
    def fitted(*args: P.args, **kwargs: P.kwargs) -> list[Block]:
        return fit_blocks(render(*args, **kwargs), in_place=True)

    return fitted


def _fitted_message(render: Callable[P, tuple[str, list[Block]]]) -> Callable[P, tuple[str, list[Block]]]:
    @wraps(render)
    def fitted(*args: P.args, **kwargs: P.kwargs) -> tuple[str, list[Block]]:
        text, blocks = render(*args, **kwargs)
        return fit_text(text), fit_blocks(blocks, in_place=True)

    return fitted


def _fitted_view(render: Callable[P, Block]) -> Callable[P, Block]:
    @wraps(render)
    def fitted(*args: P.args, **kwargs: P.kwargs) -> Block:
        return fit_view(render(*args, **kwargs), in_place=True)

    return fitted


# --- the incident card: 🚨 initial notification, updated in place ---------------------------------------------


def initial_lines(incident: Incident) -> list[str]:
    return [
        f"🚨 [{severity_label(incident.severity)}] Incident declared: {escape(incident.description)}",
        f"🚨 INCIDENT {severity_label(incident.severity)}: {incident.service} — {incident.ref}",
        f"Impact: {escape(incident.impact) or 'Being assessed'}",
        f"Status: {incident.status_enum.label}",
        f"On-call: {mention(incident.oncall)}",
        f"Started: {fmt_time(incident.declared_at)}",
    ]


@_fitted_text
def card_text(incident: Incident) -> str:
    lines = initial_lines(incident)
    if incident.acknowledged_at:
        lines.append(
            f"Acknowledged: {mention(incident.acknowledged_by)} at {fmt_time(incident.acknowledged_at)}"
        )
    if incident.status_enum == Status.RESOLVED:
        lines.append(f"Resolved: {fmt_time(incident.resolved_at)} — {escape(incident.root_cause)}")
    return "\n".join(lines)


@_fitted_blocks
def card_blocks(incident: Incident) -> list[Block]:
    sev = severity_label(incident.severity)
    description = _short(incident.description, SECTION_TEXT - 100)
    heading = f"🚨 *[{sev}] Incident declared: {description}*"
    if incident.status_enum == Status.RESOLVED:
        heading = f"✅ *[{sev}] Resolved: {description}*"
    fields = [
        _mrkdwn(f"*Incident*\n{incident.ref} · `{incident.service}` · {sev}"),
        _mrkdwn(f"*Status*\n{incident.status_enum.label}"),
        _mrkdwn(f"*Impact*\n{escape(incident.impact) or 'Being assessed'}"),
        _mrkdwn(f"*On-call*\n{mention(incident.oncall)}"),
        _mrkdwn(f"*Started*\n{fmt_time(incident.declared_at)}"),
        _mrkdwn(
            "*Acknowledged*\n"
            + (
                f"{mention(incident.acknowledged_by)} at {fmt_time(incident.acknowledged_at)}"
                if incident.acknowledged_at
                else "Not yet"
            )
        ),
    ]
    if incident.commander:
        fields.append(_mrkdwn(f"*Commander*\n{mention(incident.commander)}"))
    if incident.latest_findings:
        fields.append(_mrkdwn(f"*Latest findings*\n{escape(incident.latest_findings)}"))
    if incident.eta:
        fields.append(_mrkdwn(f"*ETA to resolution*\n{escape(incident.eta)}"))
    if incident.status_enum == Status.RESOLVED:
        fields.append(_mrkdwn(f"*Resolved*\n{fmt_time(incident.resolved_at)}"))
        fields.append(_mrkdwn(f"*Root cause*\n{escape(incident.root_cause)}"))
    blocks: list[Block] = [_section(heading), {"type": "section", "fields": fields[:10]}]
    if incident.is_open:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"incident_card_{incident.id}",
                "elements": card_actions(incident),
            }
        )
    return blocks


def card_actions(incident: Incident) -> list[Block]:
    value = str(incident.id)
    elements: list[Block] = []
    if incident.acknowledged_at is None:
        elements.append(_button("Acknowledge", ACK_ACTION, value, "primary"))
    for status in OPEN_STATUSES:
        if status != incident.status_enum:
            elements.append(_button(status.label, STATUS_ACTION_PREFIX + status.value, value))
    options = [_option(severity_label(s), f"{incident.id}:{s}") for s in (1, 2, 3, 4)]
    elements.append(
        {
            "type": "static_select",
            "action_id": SEVERITY_ACTION,
            "placeholder": _plain("Severity"),
            "options": options,
            "initial_option": options[incident.severity - 1],
        }
    )
    elements.append(_button("Resolve", RESOLVE_ACTION, value, "danger"))
    return elements


# --- 📊 update and ✅ resolution ----------------------------------------------------------------------------


@_fitted_text
def update_text(incident: Incident) -> str:
    return "\n".join(
        [
            f"📊 INCIDENT UPDATE {severity_label(incident.severity)}: {incident.service}",
            f"Status: {incident.status_enum.label}",
            f"Latest findings: {_short(incident.latest_findings, FIELD_TEXT) or 'No findings recorded yet'}",
            f"ETA to resolution: {_short(incident.eta, 400) or 'unknown'}",
            f"Incident: {incident.ref}",
        ]
    )


@_fitted_blocks
def update_blocks(incident: Incident) -> list[Block]:
    lines = update_text(incident).split("\n")
    return [
        _section(f"*{lines[0]}*\n" + "\n".join(lines[1:-1])),
        _context(f"{incident.ref} · {escape(incident.description)}"),
    ]


def postmortem_line(incident: Incident) -> str:
    if incident.postmortem_due_at:
        return f"Scheduled for {fmt_time(incident.postmortem_due_at)}"
    return "Not required"


@_fitted_text
def resolved_text(incident: Incident) -> str:
    assert incident.resolved_at is not None
    users = f"{incident.users_affected:,}" if incident.users_affected is not None else "unknown"
    return "\n".join(
        [
            f"✅ INCIDENT RESOLVED {severity_label(incident.severity)}: {incident.service}",
            f"Root cause: {_short(incident.root_cause, FIELD_TEXT)}",
            f"Duration: {fmt_duration(incident.declared_at, incident.resolved_at)}",
            f"Users affected: {users}",
            f"Post-mortem: {postmortem_line(incident)}",
            f"Incident: {incident.ref}",
        ]
    )


@_fitted_blocks
def resolved_blocks(incident: Incident) -> list[Block]:
    lines = resolved_text(incident).split("\n")
    return [
        _section(f"*{lines[0]}*\n" + "\n".join(lines[1:-1])),
        _context(f"{incident.ref} · {escape(incident.description)}"),
    ]


@_fitted_text
def resolved_summary(incident: Incident) -> str:
    """The one-line Phase 4 announcement, used in the card's thread."""
    return (
        f"✅ [{severity_label(incident.severity)}] Incident resolved: {incident.service} — "
        f"{escape(incident.root_cause)}"
    )


@_fitted_text
def page_text(incident: Incident, *, escalation_level: int | None = None) -> str:
    prefix = f"⏫ Escalation {escalation_level}, still not acknowledged. " if escalation_level else ""
    return (
        f"{prefix}🚨 You are on call for `{incident.service}`: {incident.ref} [{severity_label(incident.severity)}] "
        f"{_short(incident.description, FIELD_TEXT)}. Acknowledge with `/incident ack {incident.id}` or the "
        "button on the card."
    )


def mention_target(target: str | None) -> str:
    """A user (U…/W…) or a user group (S…) from the catalog, as Slack mentions them."""
    if not target:
        return ""
    if target.startswith("S") and input_rules.USER_ID.fullmatch("U" + target[1:]):
        return f"<!subteam^{target}>"
    return mention(target)


@_fitted_message
def scheduled_update(
    incident: Incident, *, nag_user: str | None, late_due: datetime | None
) -> tuple[str, list[Block]]:
    """The 📊 template on the cadence, asking for findings when none came since the last update."""
    lines = update_text(incident).split("\n")
    extra = []
    if nag_user:
        extra.append(
            f"{mention(nag_user)} no new findings since the last update; "
            f"please post them with `/incident update {incident.id} &lt;findings&gt;`."
        )
    if late_due:
        extra.append(f"⏰ Late: this update was due at {fmt_time(late_due)}; TARS was not running then.")
    text = "\n".join(lines[:-1] + extra + lines[-1:])
    blocks = [_section(f"*{lines[0]}*\n" + "\n".join(lines[1:-1]))]
    blocks += [_context(line) for line in extra]
    blocks.append(_context(f"{incident.ref} · {escape(incident.description)}"))
    return text, blocks


@_fitted_text
def escalation_text(incident: Incident, level: int, max_level: int, target: str | None, now: datetime) -> str:
    waited = fmt_duration(incident.declared_at, now)
    who = " ".join(
        filter(None, [mention_target(target), mention(incident.oncall) if incident.oncall else ""])
    )
    return (
        f"⏫ ESCALATION {level}/{max_level} [{severity_label(incident.severity)}] {incident.service}: "
        f"{incident.ref} has not been acknowledged {waited} after it was declared. "
        f"{who} please respond: `/incident ack {incident.id}`."
    )


@_fitted_text
def customer_notification_text(incident: Incident) -> str:
    users = f"{incident.users_affected:,}" if incident.users_affected is not None else "an unknown number of"
    rule = "P1: always" if incident.severity == 1 else "P2 with more than 100 users affected"
    owner = mention(incident.commander or incident.resolved_by)
    return (
        f"📣 Customer notification needed for {incident.ref} ({rule}): {users} users were affected. "
        f"{owner} please notify affected customers."
    )


@_fitted_text
def postmortem_reminder_text(incident: Incident, owner: str | None, *, due_now: bool) -> str:
    when = "is due now" if due_now else f"is due in 24 hours ({fmt_time(incident.postmortem_due_at)})"
    return (
        f"📝 {mention(owner)} the post-mortem for {incident.ref} [{severity_label(incident.severity)}] "
        f"{incident.service} {when}: timeline, root cause, contributing factors, action items, what went well."
    )


# --- ephemeral read-outs ----------------------------------------------------------------------------------------


# A private read-out is not a document: past this it is cut, oldest timeline entries first.
DETAIL_TEXT = 12_000
TIMELINE_ENTRY = 1_500

# Timeline entries whose text TARS writes from ids and its own words (or from a message already rendered
# here): shown as stored, so their mentions work. Every other entry may carry someone's text and is escaped.
_OWN_WORDS_KINDS = frozenset(
    {
        "acknowledged",
        "status_changed",
        "severity_changed",
        "announced",
        "paged",
        "escalated",
        "update_posted",
        "customer_notification_reminder",
        "postmortem_reminder",
        "action_approval",
        "action_expired",
        "action_started",
        "reminder",
        "metrics_chart",
        "resolve_refused",
    }
)


def timeline_text(event: TimelineEvent) -> str:
    """A timeline entry's text as mrkdwn."""
    text = event.text if event.kind in _OWN_WORDS_KINDS else escape(event.text)
    return fit_text(text, TIMELINE_ENTRY)


@_fitted_text
def incident_list_text(incidents: Sequence[Incident], now: datetime, *, total: int | None = None) -> str:
    """The open incidents shown (most severe, oldest first), and a line for those left out of `total`."""
    if not incidents:
        return "No open incidents. :tada:"
    total = len(incidents) if total is None else total
    lines = [f"*Open incidents ({total}):*"]
    for incident in incidents:
        age = fmt_duration(incident.declared_at, now)
        acked = "acknowledged" if incident.acknowledged_at else "*not acknowledged*"
        lines.append(
            f"• *{incident.ref}* {severity_label(incident.severity)} `{incident.service}` — "
            f"{incident.status_enum.label}, {acked} — {_short(incident.description, 200)} "
            f"(open {age}, on-call {mention(incident.oncall)})"
        )
    if total > len(incidents):
        lines.append(f"…and {total - len(incidents)} more; `/incident show &lt;incident&gt;` has each one")
    return _clip_lines(
        lines, MESSAGE_TEXT, lambda n: f"…{n} more; `/incident show &lt;incident&gt;` has each one"
    )


def _clip_lines(lines: list[str], budget: int, more: Callable[[int], str]) -> str:
    """As many whole lines as fit in `budget`, then a line saying how many were left out."""
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        if used + len(line) + 1 > budget - 100:
            return "\n".join([*kept, more(len(lines) - index)])
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept)


SIGNALS_SHOWN = 10


@_fitted_text
def incident_detail_text(
    incident: Incident,
    events: Sequence[TimelineEvent],
    *,
    advice: str | None = None,
    signals: Sequence[Signal] = (),
) -> str:
    """`/incident show`: the incident, then its timeline; a long timeline keeps its latest entries."""
    lines = [
        f"*{incident.ref}* [{severity_label(incident.severity)}] `{incident.service}` — "
        f"{_short(incident.description, FIELD_TEXT)}",
        f"Status: {incident.status_enum.label}",
        f"Impact: {_short(incident.impact, FIELD_TEXT) or 'Being assessed'}",
        f"On-call: {mention(incident.oncall)} · Commander: {mention(incident.commander)} · "
        f"Reporter: {mention(incident.reporter)}",
        f"Declared: {fmt_time(incident.declared_at)}",
    ]
    if incident.acknowledged_at:
        lines.append(
            f"Acknowledged: {fmt_time(incident.acknowledged_at)} by {mention(incident.acknowledged_by)}"
        )
    if incident.mitigated_at:
        lines.append(f"Mitigated: {fmt_time(incident.mitigated_at)}")
    if incident.latest_findings:
        lines.append(
            f"Latest findings: {_short(incident.latest_findings, FIELD_TEXT)} "
            f"(ETA {_short(incident.eta, 400) or 'unknown'})"
        )
    if incident.resolved_at:
        users = f"{incident.users_affected:,}" if incident.users_affected is not None else "unknown"
        lines += [
            f"Resolved: {fmt_time(incident.resolved_at)} by {mention(incident.resolved_by)} "
            f"after {fmt_duration(incident.declared_at, incident.resolved_at)}",
            f"Root cause: {_short(incident.root_cause, FIELD_TEXT)}",
            f"Users affected: {users}",
            f"Post-mortem: {postmortem_line(incident)}",
        ]
    if signals:
        lines.append(f"*Signals* ({len(signals)})")
        lines += [
            f"• [{s.state}] {escape(s.source)}: {_short(s.title, 200)} · {s.count}× · last {fmt_time(s.last_seen)}"
            for s in signals[:SIGNALS_SHOWN]
        ]
        if len(signals) > SIGNALS_SHOWN:
            lines.append(f"…and {len(signals) - SIGNALS_SHOWN} more")
    lines.append("*Timeline*")
    tail = [f"*Rollback advice*: {escape(advice)}"] if advice else []
    head = "\n".join(lines)
    budget = DETAIL_TEXT - len(head) - sum(len(line) + 1 for line in tail)
    entries = [
        f"• {event.at:%Y-%m-%d %H:%M:%S} — {mention(event.actor)}: {timeline_text(event)}" for event in events
    ]
    # Newest first into the budget, then shown in order: the latest entries are the ones that matter now.
    shown = _clip_lines(entries[::-1], budget, lambda n: f"…{n} earlier entries not shown").split("\n")
    timeline = shown[::-1] if entries else []
    return "\n".join([head, *timeline, *tail])


# --- modals ---------------------------------------------------------------------------------------------------


def _input(
    block_id: str, label: str, element: Block, *, optional: bool = False, hint: str | None = None
) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": _plain(label),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = _plain(hint)
    return block


@_fitted_view
def declare_modal(
    services: Iterable[str], *, channel_id: str | None, draft: DeclareDraft | None = None
) -> Block:
    names = sorted(services)
    service_options = [_option(name, name) for name in names]
    severity_options = [_option(severity_label(s), severity_label(s)) for s in (1, 2, 3, 4)]
    service_select: Block = {"type": "static_select", "action_id": "value", "options": service_options}
    severity_select: Block = {"type": "static_select", "action_id": "value", "options": severity_options}
    description: Block = {
        "type": "plain_text_input",
        "action_id": "value",
        "max_length": input_rules.DESCRIPTION.limit,
    }
    metadata: dict[str, Any] = {"channel_id": channel_id}
    if draft is not None:
        metadata["signal_id"] = draft.signal_id
        if draft.service in names:
            service_select["initial_option"] = _option(draft.service, draft.service)
        label = severity_label(draft.severity)
        severity_select["initial_option"] = _option(label, label)
        description["initial_value"] = draft.description[: input_rules.DESCRIPTION.limit]
    return {
        "type": "modal",
        "callback_id": DECLARE_VIEW,
        "title": _plain("Declare an incident"),
        "submit": _plain("Declare"),
        "close": _plain("Cancel"),
        "private_metadata": json.dumps(metadata),
        "blocks": [
            _input("service", "Service", service_select),
            _input(
                "severity",
                "Severity",
                severity_select,
                hint="P1 outage · P2 major degradation · P3 minor, workaround exists · P4 cosmetic",
            ),
            _input("description", "What is broken?", description),
            _input(
                "impact",
                "User impact",
                {"type": "plain_text_input", "action_id": "value", "max_length": input_rules.IMPACT.limit},
                optional=True,
            ),
        ],
    }


@_fitted_view
def resolve_modal(incident: Incident, *, channel_id: str | None) -> Block:
    return {
        "type": "modal",
        "callback_id": RESOLVE_VIEW,
        "title": _plain(f"Resolve {incident.ref}"),
        "submit": _plain("Resolve"),
        "close": _plain("Cancel"),
        "private_metadata": json.dumps({"incident_id": incident.id, "channel_id": channel_id}),
        "blocks": [
            _section(
                f"*{incident.ref}* [{severity_label(incident.severity)}] `{incident.service}` — "
                f"{_short(incident.description, FIELD_TEXT)}"
            ),
            _input(
                "root_cause",
                "Root cause (one sentence)",
                {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "multiline": True,
                    "max_length": input_rules.ROOT_CAUSE.limit,
                },
            ),
            _input(
                "users_affected",
                "Users affected (estimate)",
                {"type": "number_input", "action_id": "value", "is_decimal_allowed": False, "min_value": "0"},
                optional=True,
            ),
            _input(
                "force",
                "Monitoring rule",
                {
                    "type": "checkboxes",
                    "action_id": "value",
                    "options": [
                        _option("Resolve now even if it has not been Monitoring long enough", "force")
                    ],
                },
                optional=True,
                hint="The runbook asks for 10+ minutes in Monitoring first; an override is recorded in the timeline.",
            ),
        ],
    }


# --- remediation approval cards ----------------------------------------------------------------------------------

APPROVE_ACTION = "remediation_approve"
DENY_ACTION = "remediation_deny"

_STATE_LINES = {
    "pending": "⏳ Waiting for approval",
    "executing": "▶️ Approved, running",
    "succeeded": "✅ Succeeded",
    "failed": "❌ Failed",
    "denied": "🚫 Denied",
    "expired": "⌛ Expired",
}


@_fitted_text
def action_outcome_text(action: Any) -> str:
    """What someone clicking a decided request is told."""
    state = action.state
    who = mention(action.decided_by) if action.decided_by else "nobody"
    result = escape((action.result or {}).get("summary"))
    if state == "executing":
        return f"Request {action.ref} was already approved (last by {who}) and is running now."
    if state in ("succeeded", "failed"):
        return f"Request {action.ref} was already approved (last by {who}) and {state}: {result}"
    if state == "denied":
        return f"Request {action.ref} was denied by {who}."
    if state == "expired":
        return f"Request {action.ref} expired at {fmt_time(action.expires_at)}; make a new request."
    return f"Request {action.ref} is {state}."


@_fitted_text
def action_card_text(action: Any, incident: Incident) -> str:
    approvals = ", ".join(mention(user) for user in action.approvers) or "none yet"
    lines = [
        f"🔧 Remediation {action.ref} for {incident.ref} [{severity_label(incident.severity)}]: "
        f"{_short(action.summary, FIELD_TEXT)}",
        f"Requested by {mention(action.requested_by)} at {fmt_time(action.requested_at)}",
        f"Approvals: {approvals} ({len(action.approvers)}/{action.required_approvals} needed, "
        f"{severity_label(incident.severity)} policy; the requester cannot approve)",
        f"State: {_STATE_LINES.get(action.state, action.state)}",
    ]
    if action.state == "pending":
        lines.append(f"Expires at {fmt_time(action.expires_at)}")
    if action.state == "expired":
        lines.append(
            f"Expired at {fmt_time(action.expires_at)} without enough approvals; make a new request."
        )
    if action.state == "denied":
        lines.append(f"Denied by {mention(action.decided_by)}")
    if action.result and action.result.get("summary"):
        lines.append(f"Result: {_short(action.result['summary'], 500)}")
    if action.advice:
        lines.append(f"Rollback advice: {_short(action.advice, 500)}")
    return "\n".join(lines)


@_fitted_blocks
def action_card_blocks(action: Any, incident: Incident) -> list[Block]:
    lines = action_card_text(action, incident).split("\n")
    blocks: list[Block] = [_section(f"*{lines[0]}*\n" + "\n".join(lines[1:]))]
    if action.state == "pending":
        value = str(action.id)
        approve = _button("Approve", APPROVE_ACTION, value, "primary")
        summary = escape(action.summary)
        approve["confirm"] = _confirm("Approve this remediation?", summary, "Approve", "primary")
        deny = _button("Deny", DENY_ACTION, value, "danger")
        deny["confirm"] = _confirm("Deny this remediation?", summary, "Deny", "danger")
        blocks.append(
            {"type": "actions", "block_id": f"remediation_{action.id}", "elements": [approve, deny]}
        )
    return blocks


def _confirm(title: str, text: str, confirm: str, style: str) -> Block:
    """A confirmation dialog; `text` is mrkdwn (escaped by the caller) and is cut to fit by slack_limits."""
    return {
        "title": _plain(title),
        "text": _mrkdwn(text),
        "confirm": _plain(confirm),
        "deny": _plain("Cancel"),
        "style": style,
    }


@_fitted_text
def action_started_text(action: Any, incident: Incident, *, dry_run: bool) -> str:
    approvers = ", ".join(mention(user) for user in action.approvers)
    prefix = "🧪 DRY RUN " if dry_run else ""
    return (
        f"{prefix}▶️ {incident.ref}: started remediation {action.ref}: {_short(action.summary, FIELD_TEXT)} "
        f"(approved by {approvers})"
    )


@_fitted_text
def action_result_text(action: Any, incident: Incident, *, ok: bool, summary: str) -> str:
    mark = "✅" if ok else "❌"
    verb = "succeeded" if ok else "failed"
    return f"{mark} {incident.ref}: remediation {action.ref} {verb}: {_short(summary, FIELD_TEXT)}"


@_fitted_text
def action_progress_note(action: Any, message: str) -> str:
    """A rollout's progress, as the platform reports it, in the incident thread."""
    return f"⏳ {action.ref}: {_short(message, FIELD_TEXT)}"


@_fitted_text
def action_denied_note(action: Any, user: str) -> str:
    return f"🚫 {mention(user)} denied remediation {action.ref}: {_short(action.summary, FIELD_TEXT)}"


@_fitted_text
def action_expired_note(action: Any) -> str:
    return (
        f"⌛ Remediation {action.ref} expired without enough approvals: {_short(action.summary, FIELD_TEXT)}"
    )


@_fitted_text
def requested_reply(action: Any) -> str:
    """The requester's private confirmation of a remediation request."""
    return (
        f"Requested remediation {action.ref}: {_short(action.summary, FIELD_TEXT)}. It needs "
        f"{action.required_approvals} approval(s) from someone else; the card is in the incident thread."
    )


@_fitted_text
def revert_requested_reply(action: Any) -> str:
    return f"Requested {action.ref} to revert: {_short(action.summary, FIELD_TEXT)}. It needs approval."


@_fitted_text
def working_reply(what: str) -> str:
    """The answer to a command whose work calls another system: what happens next, before it does."""
    return f"On it: {what}. The result follows here."


def declared_reply(incident: Incident) -> str:
    return f"Declared *{incident.ref}* and paged {mention(incident.oncall)}; the card is going up in <#{incident.channel_id}>."


@_fitted_text
def reminder_text(mentions: Sequence[str], text: str, *, late_due: datetime | None) -> str:
    """A reminder TARS set itself (`Planner.remind_at`), posted in the incident thread."""
    who = " ".join(mention(user) for user in mentions)
    line = f"⏰ {who} {text}".replace("  ", " ").strip()
    if late_due:
        line += f" (late: was due {fmt_time(late_due)})"
    return line


REVERT_FLAG_ACTION = "flag_revert"


@_fitted_text
def flags_help_text(flags: dict[str, Any]) -> str:
    if not flags:
        return "No feature flags are in the catalog (`flags:` in TARS_CONFIG)."
    lines = [
        "*Feature flags TARS may change* (`/incident flag &lt;incident&gt; &lt;flag&gt; &lt;value&gt;`, after approval):"
    ]
    for name, flag in sorted(flags.items()):
        values = " | ".join(flag.values)
        lines.append(
            f"• `{name}` ({flag.service}) [{values}]: {flag.description or 'no description'} "
            f"— `{flag.parameter_path(name)}`"
        )
    lines.append("Changes take effect within 60 seconds; no deployment is needed.")
    return "\n".join(lines)


@_fitted_blocks
def flag_revert_blocks(text: str, action_id: int) -> list[Block]:
    button = _button("Revert flag", REVERT_FLAG_ACTION, str(action_id))
    button["confirm"] = _confirm(
        "Request a revert?", "Puts the previous value back, after approval.", "Request", "primary"
    )
    return [_section(text), {"type": "actions", "block_id": f"flag_revert_{action_id}", "elements": [button]}]


# --- GitHub: rollback issues, PR cards, hotfix issues ------------------------------------------------------------

MERGE_ACTION = "pull_merge"
HOTFIX_VIEW = "incident_hotfix"
# The hotfix form's inputs (block ids) and the caps they share with everything else TARS accepts.
HOTFIX_FIELDS = {
    "summary": input_rules.HOTFIX_SUMMARY,
    "evidence": input_rules.HOTFIX_EVIDENCE,
    "affected": input_rules.HOTFIX_AFFECTED,
    "approach": input_rules.HOTFIX_APPROACH,
    "tests": input_rules.HOTFIX_TESTS,
}

CODE_FIX_REVIEW_TABLE = (
    "*Code fix review* (remediation runbook)\n"
    "• P1 (hotfix): 1 engineer approval, merge immediately after approval\n"
    "• P2: 2 engineer approvals, normal merge process\n"
    "• P3/P4: standard PR process, wait for the next release\n"
    "TARS merges only when CI has passed: never force-merged."
)


def rollback_justification(
    incident: Incident, events: Sequence[TimelineEvent], rates: DeployRates | None = None
) -> str:
    findings = [str(e.data.get("findings", e.text)) for e in events if e.kind == "update"]
    lines = [
        f"Incident {incident.ref} [{severity_label(incident.severity)}] {incident.service}: {incident.description}",
        f"Impact: {incident.impact or 'being assessed'}; declared {fmt_time(incident.declared_at)}.",
    ]
    if rates is not None:
        before = percent(rates.before) if rates.before is not None else "no data"
        after = percent(rates.after) if rates.after is not None else "no data"
        peak = f", peak {percent(rates.peak)}" if rates.peak is not None else ""
        lines.append(
            f"Error rate before/after the deployment at {fmt_time(rates.deployed_at)} ({rates.backend}): "
            f"{before} in the hour before, {after} on average since{peak}."
        )
    lines.append(
        "From the incident's findings:"
        if rates
        else "Error rate before/after the deployment, from the incident's findings:"
    )
    lines += [f"- {finding}" for finding in findings] or ["- (no findings recorded yet)"]
    return "\n".join(lines)


def rollback_issue_body(incident: Incident, plan: Any, justification: str) -> str:
    return "\n".join(
        [
            "type: rollback",
            "",
            f"Roll back to commit `{plan.parent_sha}` by reverting `{plan.target_sha}` "
            f"({plan.target_subject}) on `{plan.branch}`.",
            "",
            "## Justification",
            justification,
            "",
            f"Opened by TARS for {incident.ref}. A revert PR follows; it merges only after approval and green CI.",
        ]
    )


@_fitted_text
def rollback_opened_text(incident: Incident, description: str, issue: Any, pull: Any) -> str:
    return (
        f"↩️ {incident.ref}: rollback issue <{issue.url}|{issue.repo}#{issue.number}> and revert PR "
        f"<{pull.url}|{pull.repo}#{pull.number}> opened ({_short(description, FIELD_TEXT)})."
    )


@_fitted_text
def merged_text(incident: Incident, actor: str, summary: str) -> str:
    return f"🔀 {incident.ref}: {mention(actor)} merged {_short(summary, FIELD_TEXT)}"


@_fitted_text
def hotfix_opened_text(incident: Incident, actor: str, label: str, issue: Any, summary: str) -> str:
    return (
        f"🛠️ {incident.ref}: {mention(actor)} opened {label} issue <{issue.url}|{issue.repo}#{issue.number}>: "
        f"{_short(summary, FIELD_TEXT)}"
    )


@_fitted_message
def pull_card(incident: Incident, pull: Any, *, required: int, merge_value: str) -> tuple[str, list[Block]]:
    head = pull.head_sha[:7] if pull.head_sha else "(dry run)"
    text = (
        f"🔀 Revert PR <{pull.url}|{pull.repo}#{pull.number}> for {incident.ref} (head {head}): needs {required} "
        f"approving review(s) on GitHub ({severity_label(incident.severity)}) and green CI before Merge."
    )
    merge = _button("Merge", MERGE_ACTION, merge_value, "primary")
    merge["confirm"] = _confirm(
        "Merge this PR?", f"{pull.repo}#{pull.number} into production.", "Merge", "primary"
    )
    blocks = [
        _section(text),
        _section(CODE_FIX_REVIEW_TABLE),
        {"type": "actions", "block_id": f"pull_{pull.number}", "elements": [merge]},
    ]
    return text, blocks


def hotfix_issue_body(incident: Incident, fields: Any) -> str:
    return "\n".join(
        [
            f"Incident: {incident.ref} [{severity_label(incident.severity)}] `{incident.service}` — {incident.description}",
            "",
            "## Error description and log evidence",
            fields.evidence or "_to be added_",
            "",
            "## Affected service and file",
            f"Service: `{incident.service}`" + (f"; file: `{fields.affected}`" if fields.affected else ""),
            "",
            "## Suggested fix approach",
            fields.approach or "_to be added_",
            "",
            "## Test cases to verify the fix",
            fields.tests or "_to be added_",
        ]
    )


@_fitted_view
def hotfix_modal(incident: Incident, summary: str, *, channel_id: str | None) -> Block:
    def text_input(block_id: str, label: str, *, initial: str = "", optional: bool = False) -> Block:
        field = HOTFIX_FIELDS[block_id]
        element: Block = {
            "type": "plain_text_input",
            "action_id": "value",
            "multiline": field.multiline,
            "max_length": field.limit,
        }
        if initial:
            element["initial_value"] = initial  # a form value, not mrkdwn: as typed
        return _input(block_id, label, element, optional=optional)

    return {
        "type": "modal",
        "callback_id": HOTFIX_VIEW,
        "title": _plain(f"Hotfix {incident.ref}"),
        "submit": _plain("Create issue"),
        "close": _plain("Cancel"),
        "private_metadata": json.dumps({"incident_id": incident.id, "channel_id": channel_id}),
        "blocks": [
            text_input("summary", "Summary", initial=summary),
            text_input("evidence", "Error description and log evidence"),
            text_input("affected", "Affected file (if known from the stack trace)", optional=True),
            text_input("approach", "Suggested fix approach"),
            text_input("tests", "Test cases to verify the fix"),
        ],
    }


# --- post-mortem drafts -----------------------------------------------------------------------------------------

# Slack's advice for message text; a longer draft goes up as a file, with its start in the message.
POSTMORTEM_INLINE = 4_000


@dataclass(frozen=True)
class PostmortemDraft:
    """The post-mortem draft as it goes to the incident thread: a message, and a file when it is long."""

    text: str  # the thread message: the whole draft, or its start when `file_name` is set
    file_name: str | None = None  # set: upload `file_content` as this file (files_upload_v2)
    file_content: str | None = (
        None  # the whole draft as Markdown; a file is not mrkdwn, so nothing is escaped
    )
    file_title: str | None = None  # the file's title in Slack (also how a lost upload is recognised)
    file_comment: str | None = None  # the message the file is shared with


def postmortem_draft(incident: Incident, markdown: str, link: str) -> PostmortemDraft:
    """Decide how the draft is posted: in the message when it is short, else as a file with a preview."""
    heading = f"📝 Post-mortem draft for {incident.ref}" + (f": {escape(link)}" if link else "")
    body = escape(markdown)
    whole = f"{heading}\n```\n{body}\n```"
    if len(whole) <= POSTMORTEM_INLINE:
        return PostmortemDraft(whole)
    lines = [fit_text(line, 300) for line in body.split("\n")]
    preview = _clip_lines(
        lines,
        POSTMORTEM_INLINE - len(heading) - 300,
        lambda n: f"…{n} more lines (the whole timeline is in `/incident show {incident.id}`)",
    )
    filed = f"; it is filed at {escape(link)}" if link.startswith("http") else ""
    file_name = f"{incident.ref}-postmortem.md"
    text = (
        f"{heading}\n```\n{preview}\n```\n"
        f"The whole draft ({len(markdown):,} characters) is too long for a message, so it follows as the "
        f"file `{file_name}`{filed}."
    )
    return PostmortemDraft(
        fit_text(text),
        file_name,
        markdown,
        f"Post-mortem draft for {incident.ref}",
        f"📎 The whole post-mortem draft for {incident.ref}, as Markdown.",
    )


@_fitted_text
def rollback_by_commit_reply(issue_url: str, pull_url: str) -> str:
    return (
        f"Opened rollback issue {escape(issue_url)} and revert PR {escape(pull_url)}; the PR card with Merge is in "
        "the incident thread."
    )


@_fitted_text
def postmortem_posted_reply(link: str) -> str:
    return "Posted the post-mortem draft in the incident thread" + (f": {escape(link)}" if link else ".")


# --- the resolve guard and change notes ----------------------------------------------------------------------


def monitoring_shortfall(incident: Incident, *, minimum: timedelta, watched: timedelta | None) -> str:
    """How resolving now falls short of the runbook's minimum monitoring, in one clause."""
    if watched is None:
        return f"{incident.ref} is {incident.status_enum.label}, not Monitoring"
    return f"{incident.ref} has been Monitoring for {_watched(watched)} of {format_duration(minimum)}"


def monitoring_refusal(incident: Incident, *, minimum: timedelta, watched: timedelta | None) -> str:
    """The private reply when `resolve` comes before the runbook's minimum monitoring."""
    needed = format_duration(minimum)
    if watched is None:
        return (
            f"{incident.ref} is {incident.status_enum.label}, not Monitoring; the runbook asks for at least "
            f"{needed} of monitoring before resolving. Move it with `/incident status {incident.id} monitoring`, "
            f"or add `--force` to resolve now (recorded in the timeline)."
        )
    assert incident.monitoring_since is not None  # it is being watched
    ready = incident.monitoring_since + minimum
    return (
        f"{incident.ref} has been Monitoring for {_watched(watched)}; the runbook asks for at least {needed} before "
        f"resolving (ready at {ready:%H:%M} UTC). Add `--force` to resolve now (recorded in the timeline)."
    )


def _watched(watched: timedelta) -> str:
    return format_duration(watched) if watched.total_seconds() >= 1 else "0s"


def change_note(incident: Incident, event: TimelineEvent) -> str:
    """The line in the card's thread that tells a change, from its timeline entry."""
    who, data = mention(event.actor), event.data or {}
    if event.kind == "acknowledged":
        return f"{who} acknowledged {incident.ref}."
    if event.kind == "status_changed":
        old, new = Status(data["old"]).label, Status(data["new"]).label
        return f"{who} changed the status of {incident.ref}: {old} → {new}."
    if event.kind == "severity_changed":
        return f"{who} changed the severity of {incident.ref}: P{data['old']} → P{data['new']}."
    if event.kind == "resolved":
        return resolved_summary(incident)
    return f"{who} changed {incident.ref}: {escape(event.text)}"


def approvers_text(users: Sequence[str], usergroup: str | None) -> str:
    parts = [mention(user) for user in users]
    if usergroup:
        parts.append(mention_target(usergroup))
    return ", ".join(parts) or "nobody (set `approvers` in TARS_CONFIG)"


def vote_reply(vote: Vote, *, approvers: str) -> str:
    """The private reply to a click on Approve or Deny."""
    action, incident = vote.action, vote.incident
    if vote.outcome == VoteOutcome.EXECUTE:
        return f"Approved; running {action.ref} now."
    if vote.outcome == VoteOutcome.APPROVED_MORE_NEEDED:
        return f"Approved; {action.ref} needs {vote.missing} more approval(s) from a different approver."
    if vote.outcome == VoteOutcome.DENIED:
        return f"You {vote.why} {action.ref}."
    if vote.outcome == VoteOutcome.EXPIRED and vote.why == "incident resolved":
        return f"{incident.ref} is resolved, so request {action.ref} was retired; nothing was changed."
    if vote.outcome == VoteOutcome.EXPIRED:
        return f"Request {action.ref} expired at {action.expires_at:%H:%M} UTC; make a new request."
    if vote.why == "self-approval":
        return f"You requested {action.ref}; someone else has to approve it."
    if vote.why == "not an approver":
        return f"Only approvers can decide remediation ({approvers}). Your click was recorded."
    if vote.why == "already voted":
        return f"You already voted on {action.ref}; it needs {vote.missing} more approval(s)."
    return action_outcome_text(action)


def rollback_advice(rule: RollbackRule | None) -> str:
    """The runbook's rollback rule applied to an incident, for `show` and the approval card."""
    if rule is None:
        return "Last deployment time unknown: check the rollback criteria by hand."
    verdict = (
        "✅ the runbook's rollback rule holds"
        if rule.holds
        else "⚠️ the runbook's rollback rule does not hold"
    )
    started = (
        fmt_duration(rule.deployed_at, rule.declared_at)
        if rule.declared_at >= rule.deployed_at
        else "before it"
    )
    what = (
        f"the error rate rose at {fmt_time(rule.declared_at)} (the metrics' onset), {started} after it"
        if rule.from_metrics
        else f"the incident started {started} after it"
    )
    return (
        f"Last deployment {fmt_time(rule.deployed_at)} ({fmt_duration(rule.deployed_at, rule.now)} ago); "
        f"{what}. {verdict} (deployed within 2 h: {_yes(rule.recent)}; "
        f"incident within 30 min of it: {_yes(rule.close)})."
    )


def rollback_advice_unknown(reason: str) -> str:
    return f"Last deployment unknown ({escape(reason)})."


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def merge_reply(outcome: str, detail: str, *, approvers: str) -> str:
    """The private reply to a click on Merge."""
    if outcome == "not an approver":
        return f"Only approvers can merge fixes ({approvers}). Your click was recorded."
    if outcome == "refused":
        return f"Not merged: {escape(detail)}"
    if outcome == "already merged":
        return f"{escape(detail)}; nothing to do."
    if outcome == "dry run":
        return f"DRY RUN: {escape(detail)}; nothing was merged."
    return f"Merged: {escape(detail)}"


# --- refusals: the domain decides, these word it -----------------------------------------------------------


def _code_list(names: Iterable[str], none: str = "(none configured)") -> str:
    return ", ".join(f"`{echo(name)}`" for name in sorted(names)) or none


def no_such_incident(incident_id: int) -> str:
    return f"There is no incident INC-{incident_id}. `/incident list` shows the open ones."


def unknown_service(service: str, known: Iterable[str], *, none: str = "(none configured)") -> str:
    return f"Unknown service `{echo(service)}`. Known services: {_code_list(known, none)}."


def already_acknowledged(incident: Incident) -> str:
    at = f"{incident.acknowledged_at:%H:%M}" if incident.acknowledged_at else "?"
    return f"{incident.ref} was already acknowledged by {mention(incident.acknowledged_by)} at {at} UTC."


RESOLVE_WITH_RESOLVE = "Use `/incident resolve &lt;incident&gt; &lt;root cause&gt;` to resolve an incident."


def no_repository(service: str) -> str:
    return f"`{echo(service)}` has no `repository` in the catalog, so TARS cannot open issues or PRs for it."


def flag_did_not_exist(flag: str, action_ref: str) -> str:
    return (
        f"`{echo(flag)}` did not exist before {action_ref}; TARS will not delete parameters. "
        "Remove it by hand if needed."
    )


def replicas_out_of_bounds(replicas: int, service: str, max_replicas: int) -> str:
    return (
        f"{replicas} replicas is out of bounds for `{echo(service)}`: choose 1 to {max_replicas} "
        f"(`max_replicas` in the catalog)."
    )


def unknown_flag(name: str, catalog: Iterable[str]) -> str:
    return f"`{echo(name)}` is not a flag TARS may change. Flags in the catalog: {_code_list(catalog)}."


def flag_value_not_allowed(value: str, name: str, allowed: Sequence[str]) -> str:
    listed = ", ".join(f"`{echo(v)}`" for v in allowed)
    return f"`{echo(value)}` is not an allowed value for `{echo(name)}`; allowed: {listed}."


def unknown_lambda(function: str, known: Iterable[str]) -> str:
    return (
        f"`{echo(function)}` is not a Lambda function in the catalog. Known functions: {_code_list(known)}."
    )


def no_platform(doing: str, service: str) -> str:
    return f"TARS cannot {doing} `{echo(service)}`: its catalog entry names no `kubernetes` or `ecs` target."


def flag_moved(flag: str, now_path: str, then_path: str) -> str:
    return (
        f"the catalog now keeps `{echo(flag)}` at {escape(now_path)}, not {escape(then_path)}; "
        "make a new request."
    )


def unknown_action_kind(action_kind: str) -> str:
    return f"TARS does not know how to carry out a `{echo(action_kind)}` request."


# --- the /incident grammar, as shown to people ----------------------------------------------------------

_COMMAND_USAGE = {
    "declare": '/incident declare <service> <P1|P2|P3|P4> <description...> [impact="..."]',
    "ack": "/incident ack <incident>",
    "status": "/incident status <incident> <investigating|mitigating|monitoring>",
    "severity": "/incident severity <incident> <P1|P2|P3|P4>",
    "update": '/incident update <incident> <latest findings...> [eta="..."]',
    "resolve": "/incident resolve <incident> <root cause...> [users=<number affected>] [--force]",
    "rollback": "/incident rollback <incident> [<service>] [to=<revision> | commit=<sha>]",
    "hotfix": "/incident hotfix <incident> <summary...>",
    "postmortem": "/incident postmortem <incident>",
    "scale": "/incident scale <incident> <service> <replicas>",
    "flag": "/incident flag <incident> <flag> <value>",
    "env": "/incident env <incident> <function> KEY=value [KEY=value...]",
    "list": "/incident list",
    "show": "/incident show <incident>",
    "report": "/incident report <service> <what the customer says...>",
    "metrics": "/incident metrics <incident> [<window, default 2h>]",
    "logs": "/incident logs <incident> [errors | timeouts | corr=<id>] [<window, default 1h>]",
    "help": "/incident help",
}
# As shown in mrkdwn replies: `<service>` must not reach Slack as markup.
COMMAND_USAGE = {name: escape(usage) for name, usage in _COMMAND_USAGE.items()}


def help_text() -> str:
    lines = ["*TARS incident commands* (an incident is `42`, `#42` or `INC-42`):"]
    lines += [f"• `{usage}`" for usage in COMMAND_USAGE.values()]
    lines.append("`/incident declare` with no arguments opens a form.")
    return "\n".join(lines)


# What a person typed wrong in `/incident ...`; `{…}` is what they typed, echoed back.
_GRAMMAR_PROBLEMS = {
    "not_a_ref": "`{token}` is not an incident reference; write it as `42`, `#42` or `INC-42`.",
    "not_a_severity": "`{token}` is not a severity; use one of P1, P2, P3, P4.",
    "option_twice": "`{key}=` is given twice.",
    "missing": "Missing {what}.",
    "only_incident": "`{command}` takes only the incident.",
    "status_arity": "`status` takes the incident and one status.",
    "not_a_status": "`{token}` is not a status; use investigating, mitigating or monitoring.",
    "severity_arity": "`severity` takes the incident and one severity.",
    "users_not_number": "`users={value}` must be a whole number of users, e.g. `users=1200`.",
    "rollback_arity": "`rollback` takes the incident and at most one service.",
    "to_and_commit": "Give either `to=` (a deployment revision) or `commit=` (a Git commit), not both.",
    "commit_needs_service": "A rollback by commit needs the service, whose repository it is.",
    "not_a_sha": "`commit={value}` is not a commit sha (7 to 40 hex digits).",
    "not_a_revision": "`to={value}` must be a revision number, e.g. `to=6`.",
    "scale_arity": "`scale` takes the incident, the service and a number.",
    "not_replicas": "`{token}` is not a number of replicas.",
    "flag_arity": "`flag` takes the incident, one flag and one value.",
    "not_a_pair": "`{token}` is not a KEY=value pair.",
    "key_twice": "`{key}` is given twice.",
    "not_a_window": "`{token}` is not a time window; write it like `30m`, `2h` or `6h`.",
    "window_too_long": "`{token}` is longer than TARS reads at once ({limit}).",
    "window_too_short": "`{token}` is too short to show a trend; give at least `5m`.",
    "metrics_arity": "`metrics` takes the incident and at most a time window.",
    "logs_two_queries": "Give one of `errors`, `timeouts` or `corr=&lt;id&gt;`, not several.",
    "not_a_correlation_id": "`{token}` is not a correlation id (3 to 128 letters, digits or `._:/+=-`).",
    "not_a_log_query": "`{token}` is not `errors`, `timeouts`, `corr=&lt;id&gt;` or a time window like `1h`.",
    "list_arity": "`list` takes no arguments.",
}

RESOLVE_NEEDS_ROOT_CAUSE = f"To resolve, use `{COMMAND_USAGE['resolve']}`: the root cause is required."


def grammar_refusal(problem: str, usage: str | None, **typed: str) -> str:
    """A mistake in `/incident ...`, with the usage line (already escaped) to write it right."""
    text = _GRAMMAR_PROBLEMS[problem].format(**{name: echo(value) for name, value in typed.items()})
    return f"{text}\nUsage: `{usage}`" if usage else text


def unknown_subcommand(word: str) -> str:
    return f"Unknown sub-command `{echo(word)}`.\n" + help_text()


def unknown_service_in(command: str, name: str, known: Sequence[str]) -> str:
    refusal = unknown_service(name, known, none="(none configured: add `services:` to TARS_CONFIG)")
    return f"{refusal}\nUsage: `{COMMAND_USAGE[command]}`"


# --- metrics and logs ---------------------------------------------------------------------------------------


def no_metrics_configured(incident: Incident) -> str:
    return (
        f"{escape(incident.service)} has no `metrics:` in the catalog, so TARS cannot chart {incident.ref}'s "
        "error rate. Add Prometheus or CloudWatch under the service in TARS_CONFIG (README: Observability)."
    )


def no_logs_configured(incident: Incident) -> str:
    return (
        f"{escape(incident.service)} has no `logs:` in the catalog, so TARS cannot search its logs. Add its "
        "CloudWatch log groups under the service in TARS_CONFIG (README: Observability)."
    )


def chart_title(incident: Incident, backend: str, window: timedelta) -> str:
    return f"{incident.ref} {incident.service}: error rate, last {format_duration(window)} ({backend})"


def chart_file_title(incident: Incident, at: datetime) -> str:
    return f"{incident.ref} error rate at {at:%H:%M:%S} UTC"


def _at(moment: datetime | None) -> str:
    return f"{moment:%H:%M} UTC" if moment else "—"


def _rate(point: Any) -> str:
    return percent(point.value) if point is not None else "no data"


def metrics_summary(
    incident: Incident, backend: str, window: timedelta, summary: Excursion, means: Sequence[Bucket] = ()
) -> str:
    """The numbers beside the chart: current, baseline (the hour before onset), peak, onset."""
    peak = f"{_rate(summary.peak)} at {_at(summary.peak.at)}" if summary.peak else "no data"
    onset = (
        _at(summary.onset)
        if summary.onset
        else f"none: never at or above the P{incident.severity} threshold in this window"
    )
    baseline = percent(summary.baseline) if summary.baseline is not None else "no data in the hour before"
    lines = [
        f"📈 *{incident.ref}* {escape(incident.service)} error rate, last {format_duration(window)} ({backend})",
        f"• Now: *{_rate(summary.current)}*  (P{incident.severity} threshold {percent(summary.threshold)})",
        f"• Baseline (hour before onset): {baseline}",
        f"• Peak: {peak}",
        f"• Onset: {onset}",
    ]
    if means:
        lines.append("• 15-minute means: " + " · ".join(f"{b.start:%H:%M} {percent(b.mean)}" for b in means))
    return fit_text("\n".join(lines))


def chart_record(purpose: str, payload: dict[str, Any]) -> str:
    actor = payload.get("actor")
    if purpose == "update":
        return "Error-rate chart posted with the first 📊 update"
    return (
        f"Error-rate chart posted, asked for by {mention(str(actor))}" if actor else "Error-rate chart posted"
    )


def chart_posted_reply(incident: Incident, summary: Excursion) -> str:
    return f"Posted {incident.ref}'s error-rate chart to its thread: now {_rate(summary.current)}."


def read_failed_note(incident: Incident, reason: str) -> str:
    return f"⚠️ {incident.ref}: {escape(reason)}. Nothing else was affected; ask again in a minute."


def metrics_working_reply(incident: Incident) -> str:
    return working_reply(
        f"reading {escape(incident.service)}'s error rate; the chart goes to {incident.ref}'s thread"
    )


def logs_working_reply(incident: Incident) -> str:
    return working_reply(f"searching the logs; the results go to {incident.ref}'s thread")


_VERDICT_MARK = {True: "✓", False: "✗", None: "–"}


def validation_text(
    incident: Incident, action: Any, stage: int, verdicts: Sequence[Verdict], *, next_option: str | None
) -> str:
    """TARS's own validation of a fix at +5 or +10 minutes, one line per runbook criterion."""
    failed = any(verdict.ok is False for verdict in verdicts)
    head = f"🔎 *{incident.ref}* validation of {action.ref} ({escape(action.summary)}), +{stage} min: "
    head += "*not yet holding*" if failed else "*holding*"
    lines = [head]
    lines += [
        f"{_VERDICT_MARK[verdict.ok]} {escape(verdict.criterion)}: {escape(verdict.detail)}"
        for verdict in verdicts
    ]
    if next_option:
        lines.append(
            f"*The fix has not worked after 10 minutes.* The runbook's next option is {next_option}."
        )
    elif not failed and stage >= 10:
        lines.append("The fix held for 10 minutes: move the incident to Monitoring.")
    return fit_text("\n".join(lines))


def with_mentions(text: str, users: Sequence[str]) -> str:
    who = " ".join(mention(user) for user in users)
    return f"{who} {text}".strip() if who else text


def validation_record(action: Any, stage: int, verdicts: Sequence[Verdict]) -> str:
    parts = [f"{_VERDICT_MARK[verdict.ok]} {verdict.criterion} ({verdict.detail})" for verdict in verdicts]
    return f"Validated {action.ref} at +{stage} min: " + "; ".join(parts)


def new_patterns_detail(patterns: Sequence[Pattern]) -> str:
    if not patterns:
        return "none"
    shown = ", ".join(f"“{fit_text(pattern.template, 80)}” ×{pattern.count}" for pattern in patterns)
    return f"new: {shown}"


def log_patterns_text(
    incident: Incident, query: str, window: timedelta, found: int, patterns: Sequence[Pattern]
) -> str:
    what = "error messages" if query == "errors" else "timeout and connection errors"
    head = f"🪵 *{incident.ref}* {escape(incident.service)}: most frequent {what}, last {format_duration(window)}"
    if not patterns:
        return f"{head}\nNone found."
    lines = [f"{head} ({found} lines):"]
    for pattern in patterns:
        lines.append(f"• ×{pattern.count} `{escape(fit_text(pattern.template, 200))}`")
        lines.append(
            f"   e.g. {_at_seconds(pattern.example.at)} `{escape(fit_text(pattern.example.message, 200))}`"
        )
    return fit_text("\n".join(lines))


def correlated_lines(
    incident: Incident, correlation_id: str, window: timedelta, lines: Sequence[LogLine]
) -> str:
    head = f"🪵 *{incident.ref}* lines with correlation id `{echo(correlation_id)}`, all services, last {format_duration(window)}"
    if not lines:
        return f"{head}\nNone found."
    shown = lines[-CORRELATED_SHOWN:]
    body = [
        f"{_at_seconds(line.at)} {escape(line.group)}: `{escape(fit_text(line.message, 200))}`"
        for line in shown
    ]
    more = f"\n…{len(lines) - len(shown)} earlier lines not shown" if len(lines) > len(shown) else ""
    return fit_text(f"{head} ({len(lines)} lines):\n" + "\n".join(body) + more)


CORRELATED_SHOWN = 40


def _at_seconds(moment: datetime) -> str:
    return f"{moment:%H:%M:%S}"


def logs_record(query: str, correlation_id: Any, window: timedelta) -> str:
    what = f"correlation id {correlation_id}" if query == "corr" else query
    return f"Searched the logs for {what} over the last {format_duration(window)}"


def resolve_checking_reply(incident: Incident) -> str:
    return working_reply(
        f"reading {escape(incident.service)}'s error rate: {incident.ref} resolves once it has been under the "
        f"P{incident.severity} threshold for 10 minutes"
    )


def _quiet_numbers(quiet: Quiet) -> str:
    since = f"since {_at(quiet.since)}" if quiet.since else "not at all"
    newest = f"now {percent(quiet.newest.value)}" if quiet.newest else "no data"
    worst = f"; highest in the last 10 minutes {percent(quiet.worst)}" if quiet.worst is not None else ""
    stale = f"; the newest reading is from {_at(quiet.newest.at)}" if quiet.stale and quiet.newest else ""
    return f"under it {since} ({format_duration(quiet.lasted)}), {newest}{worst}{stale}"


def resolve_refused_by_metrics(incident: Incident, quiet: Quiet) -> str:
    threshold = percent(threshold_for(incident.severity))
    return (
        f"⛔ Not resolving {incident.ref}: the runbook wants the error rate under {threshold} "
        f"(P{incident.severity}) for 10 consecutive minutes. It has been {_quiet_numbers(quiet)}. "
        f"Resolve again once it holds, or add `--force` to override (recorded in the timeline)."
    )


def resolve_criteria_met(incident: Incident, quiet: Quiet) -> str:
    threshold = percent(threshold_for(incident.severity))
    return f"error rate under {threshold} for {format_duration(quiet.lasted)}, now {_rate(quiet.newest)}"


def resolved_by_metrics_reply(incident: Incident, quiet: Quiet) -> str:
    return f"Resolved {incident.ref}: {resolve_criteria_met(incident, quiet)}."


def resolve_unchecked_reply(incident: Incident, reason: str) -> str:
    return (
        f"{incident.ref} was not resolved: TARS could not read the error rate ({escape(reason)}). "
        "Try again in a minute, or add `--force` if you are sure (recorded in the timeline)."
    )


def logs_posted_reply(incident: Incident) -> str:
    return f"Posted the log search to {incident.ref}'s thread."


# --- signals and triage -------------------------------------------------------------------------------------


def _signal_line(signal: Signal) -> str:
    where = escape(signal.service) if signal.service else "unrouted"
    summary = f" — {escape(signal.summary)}" if signal.summary else ""
    return f"[{signal.state}] {where}: {escape(signal.title)}{summary}"


@_fitted_message
def triage_card(
    signal: Signal,
    *,
    oncall: str | None,
    members: Sequence[Signal] = (),
    open_incidents: Sequence[Incident] = (),
) -> tuple[str, list[Block]]:
    """🔔 An alert (or enough customer reports) nobody has triaged yet: declare it, or dismiss it as a fluke."""
    headline = f"🔔 {_signal_line(signal)}"
    facts = [
        f"*Source:* {escape(signal.source)}",
        f"*Since:* {fmt_time(signal.since)}",
        f"*Seen:* {signal.count}× · last {fmt_time(signal.last_seen)}",
    ]
    if signal.severity_hint:
        facts.append(f"*Severity:* {escape(signal.severity_hint)}")
    if signal.service is None:
        facts.append("*Service:* unrouted (no catalog service named in it)")
    labels = " · ".join(f"{escape(k)}={escape(v)}" for k, v in sorted(signal.labels.items()))
    blocks: list[Block] = [_section(f"*{headline}*"), _section("\n".join(facts))]
    if members:
        lines = [_member_line(member) for member in members[:GATHERED_SHOWN]]
        if len(members) > GATHERED_SHOWN:
            lines.append(f"…and {len(members) - GATHERED_SHOWN} more")
        blocks.append(_section("\n".join(lines)))
    elif labels:
        blocks.append(_context(labels))
    triage = Triage(signal.triage)
    if triage is Triage.OPEN:
        if oncall:
            blocks.append(_context(f"{mention(oncall)} is this real? Declare it, or dismiss it as a fluke."))
        value = str(signal.id)
        elements = [
            _button("Declare P1", f"{TRIAGE_DECLARE_PREFIX}1", value, "danger"),
            _button("Declare P2", f"{TRIAGE_DECLARE_PREFIX}2", value, "primary"),
        ]
        if open_incidents:
            # Part of an incident already open (for another service, or an alert TARS could not route).
            elements.append(
                {
                    "type": "static_select",
                    "action_id": TRIAGE_ATTACH_ACTION,
                    "placeholder": _plain("Attach to…"),
                    "options": [
                        _option(
                            f"{i.ref} [{severity_label(i.severity)}] {i.service}: {i.description}"[:75],
                            f"{signal.id}:{i.id}",
                        )
                        for i in open_incidents
                    ],
                }
            )
        elements.append(_button("Dismiss as fluke", TRIAGE_DISMISS_ACTION, value))
        blocks.append({"type": "actions", "block_id": f"triage_{signal.id}", "elements": elements})
    else:
        blocks.append(_context(_triage_outcome(signal)))
    if signal.state == SignalState.RESOLVED.value:
        blocks.append(_context(f"✅ Resolved at {fmt_time(signal.resolved_at)}"))
    return headline, blocks


def _triage_outcome(signal: Signal) -> str:
    who = mention(signal.triaged_by) if signal.triaged_by else "TARS"
    if signal.triage == Triage.DISMISSED.value:
        return f"Dismissed as a fluke by {who}."
    ref = f"INC-{signal.incident_id}" if signal.incident_id is not None else "an incident"
    if signal.triage == Triage.DECLARED.value:
        return f"Declared as {ref} by {who}."
    return f"Attached to {ref} by {who}."


@_fitted_text
def signal_attached_note(signal: Signal, actor: str | None = None) -> str:
    how = f"by {mention(actor)}" if actor else "automatically"
    return f"🔔 Alert attached {how} ({escape(signal.source)}): {_signal_line(signal)}"


@_fitted_text
def signal_state_note(signal: Signal) -> str:
    if signal.state == SignalState.RESOLVED.value:
        return f"✅ Alert resolved ({escape(signal.source)}): {_signal_line(signal)}"
    return f"🔔 Alert firing again ({escape(signal.source)}): {_signal_line(signal)}"


@_fitted_text
def signal_confirmed_text(signal: Signal, actor: str) -> str:
    return (
        f"Declared from alert {escape(signal.title)} ({escape(signal.source)}, {signal.ref}), "
        f"confirmed as real by {mention(actor)}"
    )


_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
GATHERED_SHOWN = 20


def _member_line(member: Signal) -> str:
    if member.source == "customer_report":
        return f"• {_reporter(member)}: {escape(member.summary)}"
    summary = f" — {escape(member.summary)}" if member.summary else ""
    return f"• [{member.state}] {escape(member.title)}{summary}"


def digest_title(count: int) -> str:
    return f"{count} more alerts firing at once"


def _reporter(report: Signal) -> str:
    reporter = report.labels.get("reporter", "")
    return mention(reporter) if _SLACK_USER.fullmatch(reporter) else escape(reporter or "someone")


def _in_words(delta: timedelta) -> str:
    minutes, seconds = divmod(int(delta.total_seconds()), 60)
    if seconds or not minutes:
        return format_duration(delta)
    if minutes % 60 == 0:
        return f"{minutes // 60} hour{'s' if minutes != 60 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def report_cluster_title(count: int, service: str, window: timedelta) -> str:
    return f"{count} customer reports about {service} in {_in_words(window)}"


@_fitted_text
def customer_report_note(report: Signal) -> str:
    return f"📣 Customer report via {_reporter(report)}: {escape(report.summary)}"


def report_reply(outcome: ReportOutcome) -> str:
    service = escape(outcome.service)
    if outcome.attached_to is not None:
        return f"Thanks: added to {outcome.attached_to}, which is open for {service}."
    window = _in_words(outcome.window)
    if outcome.triage_posted:
        return (
            f"Thanks: that makes {outcome.in_window} reports about {service} in {window}; "
            "a triage card is up in the incidents channel."
        )
    if outcome.in_window >= outcome.threshold:
        return f"Thanks: added to the {outcome.in_window} reports about {service} on the triage card."
    return (
        f"Thanks: recorded. {outcome.in_window} of {outcome.threshold} reports about {service} within {window}; "
        "at that many TARS asks the on-call to triage."
    )


@_fitted_text
def declared_automatically_text(signal: Signal) -> str:
    return f"Declared automatically from alert {escape(signal.title)} ({escape(signal.source)}, {signal.ref})"


def signal_already_triaged(signal: Signal) -> str:
    return f"That alert was already triaged: {_triage_outcome(signal)}"


@dataclass(frozen=True)
class DeclareDraft:
    """What the declare form starts with when it is opened from an alert."""

    signal_id: int
    service: str | None
    severity: int
    description: str
