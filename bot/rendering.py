"""Everything TARS shows in Slack: message text, Block Kit and modals, built in one place.

Message `text` always carries the full runbook template, so notifications, screen readers and clients that
ignore blocks still show the whole message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from bot.models import OPEN_STATUSES, Incident, Status, TimelineEvent

Block = dict[str, Any]

# action_ids the handlers listen for; Slack requires them unique within one actions block.
ACK_ACTION = "incident_ack"
STATUS_ACTION_PREFIX = "incident_status_"
SEVERITY_ACTION = "incident_severity"
RESOLVE_ACTION = "incident_resolve"
DECLARE_VIEW = "incident_declare"
RESOLVE_VIEW = "incident_resolve"


def fmt_time(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "—"


def fmt_duration(start: datetime, end: datetime) -> str:
    minutes = max(0, int((end - start).total_seconds()) // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} {'hour' if hours == 1 else 'hours'} {minutes} {'minute' if minutes == 1 else 'minutes'}"


def mention(user_id: str | None) -> str:
    return f"<@{user_id}>" if user_id else "unassigned"


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


# --- the incident card: 🚨 initial notification, updated in place ---------------------------------------------


def initial_lines(incident: Incident) -> list[str]:
    return [
        f"🚨 [{severity_label(incident.severity)}] Incident declared: {incident.description}",
        f"🚨 INCIDENT {severity_label(incident.severity)}: {incident.service} — {incident.ref}",
        f"Impact: {incident.impact or 'Being assessed'}",
        f"Status: {incident.status_enum.label}",
        f"On-call: {mention(incident.oncall)}",
        f"Started: {fmt_time(incident.declared_at)}",
    ]


def card_text(incident: Incident) -> str:
    lines = initial_lines(incident)
    if incident.acknowledged_at:
        lines.append(
            f"Acknowledged: {mention(incident.acknowledged_by)} at {fmt_time(incident.acknowledged_at)}"
        )
    if incident.status_enum == Status.RESOLVED:
        lines.append(f"Resolved: {fmt_time(incident.resolved_at)} — {incident.root_cause}")
    return "\n".join(lines)


def card_blocks(incident: Incident) -> list[Block]:
    sev = severity_label(incident.severity)
    heading = f"🚨 *[{sev}] Incident declared: {incident.description}*"
    if incident.status_enum == Status.RESOLVED:
        heading = f"✅ *[{sev}] Resolved: {incident.description}*"
    fields = [
        _mrkdwn(f"*Incident*\n{incident.ref} · `{incident.service}` · {sev}"),
        _mrkdwn(f"*Status*\n{incident.status_enum.label}"),
        _mrkdwn(f"*Impact*\n{incident.impact or 'Being assessed'}"),
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
        fields.append(_mrkdwn(f"*Latest findings*\n{incident.latest_findings}"))
    if incident.eta:
        fields.append(_mrkdwn(f"*ETA to resolution*\n{incident.eta}"))
    if incident.status_enum == Status.RESOLVED:
        fields.append(_mrkdwn(f"*Resolved*\n{fmt_time(incident.resolved_at)}"))
        fields.append(_mrkdwn(f"*Root cause*\n{incident.root_cause}"))
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


def update_text(incident: Incident) -> str:
    return "\n".join(
        [
            f"📊 INCIDENT UPDATE {severity_label(incident.severity)}: {incident.service}",
            f"Status: {incident.status_enum.label}",
            f"Latest findings: {incident.latest_findings or 'No findings recorded yet'}",
            f"ETA to resolution: {incident.eta or 'unknown'}",
            f"Incident: {incident.ref}",
        ]
    )


def update_blocks(incident: Incident) -> list[Block]:
    lines = update_text(incident).split("\n")
    return [
        _section(f"*{lines[0]}*\n" + "\n".join(lines[1:-1])),
        _context(f"{incident.ref} · {incident.description}"),
    ]


def postmortem_line(incident: Incident) -> str:
    if incident.postmortem_due_at:
        return f"Scheduled for {fmt_time(incident.postmortem_due_at)}"
    return "Not required"


def resolved_text(incident: Incident) -> str:
    assert incident.resolved_at is not None
    users = f"{incident.users_affected:,}" if incident.users_affected is not None else "unknown"
    return "\n".join(
        [
            f"✅ INCIDENT RESOLVED {severity_label(incident.severity)}: {incident.service}",
            f"Root cause: {incident.root_cause}",
            f"Duration: {fmt_duration(incident.declared_at, incident.resolved_at)}",
            f"Users affected: {users}",
            f"Post-mortem: {postmortem_line(incident)}",
            f"Incident: {incident.ref}",
        ]
    )


def resolved_blocks(incident: Incident) -> list[Block]:
    lines = resolved_text(incident).split("\n")
    return [
        _section(f"*{lines[0]}*\n" + "\n".join(lines[1:-1])),
        _context(f"{incident.ref} · {incident.description}"),
    ]


def resolved_summary(incident: Incident) -> str:
    """The one-line Phase 4 announcement, used in the card's thread."""
    return f"✅ [{severity_label(incident.severity)}] Incident resolved: {incident.service} — {incident.root_cause}"


def page_text(incident: Incident, *, escalation_level: int | None = None) -> str:
    prefix = f"⏫ Escalation {escalation_level}, still not acknowledged. " if escalation_level else ""
    return (
        f"{prefix}🚨 You are on call for `{incident.service}`: {incident.ref} [{severity_label(incident.severity)}] "
        f"{incident.description}. Acknowledge with `/incident ack {incident.id}` or the button on the card."
    )


def mention_target(target: str | None) -> str:
    """A user (U…/W…) or a user group (S…) as Slack mentions them."""
    if not target:
        return ""
    return f"<!subteam^{target}>" if target.startswith("S") else f"<@{target}>"


def scheduled_update(
    incident: Incident, *, nag_user: str | None, late_due: datetime | None
) -> tuple[str, list[Block]]:
    """The 📊 template on the cadence, asking for findings when none came since the last update."""
    lines = update_text(incident).split("\n")
    extra = []
    if nag_user:
        extra.append(
            f"{mention(nag_user)} no new findings since the last update; "
            f"please post them with `/incident update {incident.id} <findings>`."
        )
    if late_due:
        extra.append(f"⏰ Late: this update was due at {fmt_time(late_due)}; TARS was not running then.")
    text = "\n".join(lines[:-1] + extra + lines[-1:])
    blocks = [_section(f"*{lines[0]}*\n" + "\n".join(lines[1:-1]))]
    blocks += [_context(line) for line in extra]
    blocks.append(_context(f"{incident.ref} · {incident.description}"))
    return text, blocks


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


def customer_notification_text(incident: Incident) -> str:
    users = f"{incident.users_affected:,}" if incident.users_affected is not None else "an unknown number of"
    rule = "P1: always" if incident.severity == 1 else "P2 with more than 100 users affected"
    owner = mention(incident.commander or incident.resolved_by)
    return (
        f"📣 Customer notification needed for {incident.ref} ({rule}): {users} users were affected. "
        f"{owner} please notify affected customers."
    )


def postmortem_reminder_text(incident: Incident, owner: str | None, *, due_now: bool) -> str:
    when = "is due now" if due_now else f"is due in 24 hours ({fmt_time(incident.postmortem_due_at)})"
    return (
        f"📝 {mention(owner)} the post-mortem for {incident.ref} [{severity_label(incident.severity)}] "
        f"{incident.service} {when}: timeline, root cause, contributing factors, action items, what went well."
    )


# --- ephemeral read-outs ----------------------------------------------------------------------------------------


def incident_list_text(incidents: Sequence[Incident], now: datetime) -> str:
    if not incidents:
        return "No open incidents. :tada:"
    lines = [f"*Open incidents ({len(incidents)}):*"]
    for incident in incidents:
        age = fmt_duration(incident.declared_at, now)
        acked = "acknowledged" if incident.acknowledged_at else "*not acknowledged*"
        lines.append(
            f"• *{incident.ref}* {severity_label(incident.severity)} `{incident.service}` — "
            f"{incident.status_enum.label}, {acked} — {incident.description} "
            f"(open {age}, on-call {mention(incident.oncall)})"
        )
    return "\n".join(lines)


def incident_detail_text(incident: Incident, events: Iterable[TimelineEvent]) -> str:
    lines = [
        f"*{incident.ref}* [{severity_label(incident.severity)}] `{incident.service}` — {incident.description}",
        f"Status: {incident.status_enum.label}",
        f"Impact: {incident.impact or 'Being assessed'}",
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
        lines.append(f"Latest findings: {incident.latest_findings} (ETA {incident.eta or 'unknown'})")
    if incident.resolved_at:
        users = f"{incident.users_affected:,}" if incident.users_affected is not None else "unknown"
        lines += [
            f"Resolved: {fmt_time(incident.resolved_at)} by {mention(incident.resolved_by)} "
            f"after {fmt_duration(incident.declared_at, incident.resolved_at)}",
            f"Root cause: {incident.root_cause}",
            f"Users affected: {users}",
            f"Post-mortem: {postmortem_line(incident)}",
        ]
    lines.append("*Timeline*")
    lines += [f"• {event.at:%Y-%m-%d %H:%M:%S} — {mention(event.actor)}: {event.text}" for event in events]
    return "\n".join(lines)


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


def declare_modal(services: Iterable[str], *, channel_id: str | None) -> Block:
    service_options = [_option(name, name) for name in sorted(services)]
    severity_options = [_option(severity_label(s), severity_label(s)) for s in (1, 2, 3, 4)]
    return {
        "type": "modal",
        "callback_id": DECLARE_VIEW,
        "title": _plain("Declare an incident"),
        "submit": _plain("Declare"),
        "close": _plain("Cancel"),
        "private_metadata": json.dumps({"channel_id": channel_id}),
        "blocks": [
            _input(
                "service",
                "Service",
                {"type": "static_select", "action_id": "value", "options": service_options},
            ),
            _input(
                "severity",
                "Severity",
                {"type": "static_select", "action_id": "value", "options": severity_options},
                hint="P1 outage · P2 major degradation · P3 minor, workaround exists · P4 cosmetic",
            ),
            _input(
                "description",
                "What is broken?",
                {"type": "plain_text_input", "action_id": "value", "max_length": 500},
            ),
            _input(
                "impact",
                "User impact",
                {"type": "plain_text_input", "action_id": "value", "max_length": 500},
                optional=True,
            ),
        ],
    }


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
                f"*{incident.ref}* [{severity_label(incident.severity)}] `{incident.service}` — {incident.description}"
            ),
            _input(
                "root_cause",
                "Root cause (one sentence)",
                {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": 1000},
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


def action_outcome_text(action: Any) -> str:
    """What someone clicking a decided request is told."""
    state = action.state
    who = mention(action.decided_by) if action.decided_by else "nobody"
    result = (action.result or {}).get("summary")
    if state == "executing":
        return f"Request {action.ref} was already approved (last by {who}) and is running now."
    if state in ("succeeded", "failed"):
        return f"Request {action.ref} was already approved (last by {who}) and {state}: {result}"
    if state == "denied":
        return f"Request {action.ref} was denied by {who}."
    if state == "expired":
        return f"Request {action.ref} expired at {fmt_time(action.expires_at)}; make a new request."
    return f"Request {action.ref} is {state}."


def action_card_text(action: Any, incident: Incident) -> str:
    approvals = ", ".join(mention(user) for user in action.approvers) or "none yet"
    lines = [
        f"🔧 Remediation {action.ref} for {incident.ref} [{severity_label(incident.severity)}]: {action.summary}",
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
        lines.append(f"Result: {action.result['summary']}")
    if action.advice:
        lines.append(f"Rollback advice: {action.advice}")
    return "\n".join(lines)


def action_card_blocks(action: Any, incident: Incident) -> list[Block]:
    lines = action_card_text(action, incident).split("\n")
    blocks: list[Block] = [_section(f"*{lines[0]}*\n" + "\n".join(lines[1:]))]
    if action.state == "pending":
        value = str(action.id)
        approve = _button("Approve", APPROVE_ACTION, value, "primary")
        approve["confirm"] = _confirm("Approve this remediation?", action.summary, "Approve", "primary")
        deny = _button("Deny", DENY_ACTION, value, "danger")
        deny["confirm"] = _confirm("Deny this remediation?", action.summary, "Deny", "danger")
        blocks.append(
            {"type": "actions", "block_id": f"remediation_{action.id}", "elements": [approve, deny]}
        )
    return blocks


def _confirm(title: str, text: str, confirm: str, style: str) -> Block:
    return {
        "title": _plain(title[:100]),
        "text": _mrkdwn(text[:300]),
        "confirm": _plain(confirm),
        "deny": _plain("Cancel"),
        "style": style,
    }


def action_started_text(action: Any, incident: Incident, *, dry_run: bool) -> str:
    approvers = ", ".join(mention(user) for user in action.approvers)
    prefix = "🧪 DRY RUN " if dry_run else ""
    return f"{prefix}▶️ {incident.ref}: started remediation {action.ref}: {action.summary} (approved by {approvers})"


def action_result_text(action: Any, incident: Incident, *, ok: bool, summary: str) -> str:
    mark = "✅" if ok else "❌"
    verb = "succeeded" if ok else "failed"
    return f"{mark} {incident.ref}: remediation {action.ref} {verb}: {summary}"


REVERT_FLAG_ACTION = "flag_revert"


def flags_help_text(flags: dict[str, Any]) -> str:
    if not flags:
        return "No feature flags are in the catalog (`flags:` in TARS_CONFIG)."
    lines = ["*Feature flags TARS may change* (`/incident flag <incident> <flag> <value>`, after approval):"]
    for name, flag in sorted(flags.items()):
        values = " | ".join(flag.values)
        lines.append(
            f"• `{name}` ({flag.service}) [{values}]: {flag.description or 'no description'} "
            f"— `{flag.parameter_path(name)}`"
        )
    lines.append("Changes take effect within 60 seconds; no deployment is needed.")
    return "\n".join(lines)


def flag_revert_blocks(text: str, action_id: int) -> list[Block]:
    button = _button("Revert flag", REVERT_FLAG_ACTION, str(action_id))
    button["confirm"] = _confirm(
        "Request a revert?", "Puts the previous value back, after approval.", "Request", "primary"
    )
    return [_section(text), {"type": "actions", "block_id": f"flag_revert_{action_id}", "elements": [button]}]


# --- GitHub: rollback issues, PR cards, hotfix issues ------------------------------------------------------------

MERGE_ACTION = "pull_merge"
HOTFIX_VIEW = "incident_hotfix"

CODE_FIX_REVIEW_TABLE = (
    "*Code fix review* (remediation runbook)\n"
    "• P1 (hotfix): 1 engineer approval, merge immediately after approval\n"
    "• P2: 2 engineer approvals, normal merge process\n"
    "• P3/P4: standard PR process, wait for the next release\n"
    "TARS merges only when CI has passed: never force-merged."
)


def rollback_justification(incident: Incident, events: Sequence[TimelineEvent]) -> str:
    findings = [str(e.data.get("findings", e.text)) for e in events if e.kind == "update"]
    lines = [
        f"Incident {incident.ref} [{severity_label(incident.severity)}] {incident.service}: {incident.description}",
        f"Impact: {incident.impact or 'being assessed'}; declared {fmt_time(incident.declared_at)}.",
        "Error rate before/after the deployment, from the incident's findings:",
    ]
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


def rollback_opened_text(incident: Incident, description: str, issue: Any, pull: Any) -> str:
    return (
        f"↩️ {incident.ref}: rollback issue <{issue.url}|{issue.repo}#{issue.number}> and revert PR "
        f"<{pull.url}|{pull.repo}#{pull.number}> opened ({description})."
    )


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


def hotfix_modal(incident: Incident, summary: str, *, channel_id: str | None) -> Block:
    def text_input(
        block_id: str, label: str, *, multiline: bool = True, initial: str = "", optional: bool = False
    ) -> Block:
        element: Block = {"type": "plain_text_input", "action_id": "value", "multiline": multiline}
        if initial:
            element["initial_value"] = initial
        return _input(block_id, label, element, optional=optional)

    return {
        "type": "modal",
        "callback_id": HOTFIX_VIEW,
        "title": _plain(f"Hotfix issue {incident.ref}"),
        "submit": _plain("Create issue"),
        "close": _plain("Cancel"),
        "private_metadata": json.dumps({"incident_id": incident.id, "channel_id": channel_id}),
        "blocks": [
            text_input("summary", "Summary", multiline=False, initial=summary),
            text_input("evidence", "Error description and log evidence"),
            text_input(
                "affected", "Affected file (if known from the stack trace)", multiline=False, optional=True
            ),
            text_input("approach", "Suggested fix approach"),
            text_input("tests", "Test cases to verify the fix"),
        ],
    }
