"""The runbook's post-mortem skeleton (Phase 5), drafted from what TARS recorded."""

from __future__ import annotations

from collections.abc import Sequence

from bot.incidents.incident_records import Incident, TimelineEvent
from bot.slack.rendering import fmt_duration, fmt_time, severity_label

# Timeline entries worth a line in a post-mortem; bookkeeping (card posts, pages) is left out.
NOTABLE = {
    "declared",
    "acknowledged",
    "status_changed",
    "severity_changed",
    "update",
    "escalated",
    "action_requested",
    "action_succeeded",
    "action_failed",
    "github_rollback",
    "merged",
    "hotfix_issue",
    "resolve_guard_overridden",
    "resolved",
}


def postmortem_markdown(incident: Incident, events: Sequence[TimelineEvent]) -> str:
    def first(kind: str) -> str:
        event = next((e for e in events if e.kind == kind), None)
        return fmt_time(event.at) if event else "—"

    resolved = incident.resolved_at
    duration = fmt_duration(incident.declared_at, resolved) if resolved else "still open"
    to_ack = (
        fmt_duration(incident.declared_at, incident.acknowledged_at) if incident.acknowledged_at else "never"
    )
    to_mitigate = fmt_duration(incident.declared_at, incident.mitigated_at) if incident.mitigated_at else "—"
    fixes = [e for e in events if e.kind in ("action_succeeded", "merged", "github_rollback")]
    findings = [e for e in events if e.kind == "update"]
    lines = [
        f"# Post-mortem: {incident.ref} [{severity_label(incident.severity)}] {incident.service} — {incident.description}",
        "",
        f"- Impact: {incident.impact or 'to be assessed'}",
        f"- Users affected: {incident.users_affected if incident.users_affected is not None else 'unknown'}",
        f"- Duration: {duration}; acknowledged after {to_ack}; mitigated after {to_mitigate}",
        f"- Commander: {incident.commander or 'none'} · On-call: {incident.oncall or 'none'}",
        "",
        "## Timeline",
        "",
        "| When | What |",
        "|---|---|",
        f"| {fmt_time(incident.declared_at)} | Detected (incident declared by {incident.reporter}) |",
        f"| {first('declared')} | Declared |",
        f"| {fmt_time(incident.mitigated_at) if incident.mitigated_at else '—'} | Mitigated |",
        f"| {fmt_time(resolved) if resolved else '—'} | Resolved |",
        "",
        "### Everything TARS recorded",
        "",
    ]
    lines += [f"- {fmt_time(e.at)} — {e.actor}: {e.text}" for e in events if e.kind in NOTABLE]
    lines += [
        "",
        "## Root cause",
        "",
        incident.root_cause or "_To be written: the actual technical cause, not the symptoms._",
        "",
        "## Contributing factors",
        "",
        "_What made this worse or harder to detect?_",
    ]
    lines += [f"- Finding during the incident: {e.data.get('findings', e.text)}" for e in findings]
    lines += [
        "",
        "## Action items",
        "",
        "| Action | Owner | Due |",
        "|---|---|---|",
        "| _Prevent recurrence:_ | | |",
        "| _Detect it sooner:_ | | |",
    ]
    lines += [f"| Follow up on: {e.text} | | |" for e in fixes]
    lines += [
        "",
        "## What went well",
        "",
        f"- Acknowledged {to_ack} after declaration.",
        f"- Mitigated {to_mitigate} after declaration.",
        "- _Detection? Communication? Mitigation speed?_",
    ]
    return "\n".join(lines)
