"""Paging the on-call, through the outbox: a Slack DM always, PagerDuty too when the catalog gives a routing key."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.comms.outbox import Outbox
from bot.core.settings import ServiceConfig
from bot.incidents.incident_records import Incident
from bot.slack import rendering
from integrations.pagerduty import SEVERITY_BY_PRIORITY, PageRequest


class Pager:
    """Paging the on-call: a Slack DM always, PagerDuty too when the catalog gives a routing key."""

    def __init__(self, outbox: Outbox, services: dict[str, ServiceConfig]) -> None:
        self.outbox = outbox
        self.services = services

    def page(self, session: Session, incident: Incident, *, escalation_level: int | None = None) -> None:
        service = self.services.get(incident.service)
        recipients = [incident.oncall] if incident.oncall else []
        if escalation_level and service and service.escalation and service.escalation[0] in "UW":
            recipients.append(service.escalation)
        text = rendering.page_text(incident, escalation_level=escalation_level)
        for user in dict.fromkeys(recipients):
            self.outbox.direct_message(
                session,
                incident,
                user,
                text,
                record=["paged", f"Paged {rendering.mention(user)} by Slack DM"],
            )
        if service and service.pagerduty_routing_key:
            self.outbox.pagerduty(
                session,
                incident,
                PageRequest(
                    routing_key=service.pagerduty_routing_key,
                    summary=f"[P{incident.severity}] {incident.service}: {incident.description} ({incident.ref})",
                    dedup_key=f"tars-{incident.ref}",
                    severity=SEVERITY_BY_PRIORITY[incident.severity],
                    custom_details={
                        "incident": incident.ref,
                        "service": incident.service,
                        "status": incident.status,
                        "escalation_level": escalation_level or 0,
                    },
                ),
            )
