"""Slow commands, carried out from the row committed before the ack.

A command that calls a cluster, AWS or GitHub cannot finish within Slack's 3 s. The transaction that answers
"On it" commits the command as an outbox row on its incident's work lane; a delivery worker carries it out and
tells the person privately through the command's response_url. A crash after the answer loses nothing: the row
is still there, and the next worker to lease it runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.comms.delivery import RetryLater
from bot.comms.outbox import Outbox
from bot.core.database import transaction
from bot.incidents.command_parser import (
    DraftPostmortem,
    RequestEnv,
    RequestFlag,
    RequestRollback,
    RequestScale,
    RollbackByCommit,
    parse_command,
)
from bot.incidents.incident_records import Incident
from bot.incidents.lifecycle import IncidentService
from bot.remediation.code_fixes import CodeFixFlows
from bot.remediation.remediation_flows import RemediationFlows
from bot.slack import rendering
from bot.slack.error_replies import database_unreachable, expected, friendly_message

log = logging.getLogger(__name__)

Reply = Callable[[str, str], None]


def answer_privately(reply: Reply, payload: dict[str, Any], answer: str) -> dict[str, Any]:
    """Tell the person who asked for a job how it went, through the response_url their request carried; the
    result to store for the job's row."""
    response_url = payload.get("response_url")
    if response_url:
        try:
            reply(str(response_url), answer)
        except Exception as error:  # the work is done and recorded; only the private note is lost
            log.warning("could not tell %s how their request went: %s", payload.get("actor"), error)
    return {"answer": answer}


class CommandJobs:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        incidents: IncidentService,
        outbox: Outbox,
        services: Iterable[str],
        remediation: RemediationFlows,
        code_fixes: CodeFixFlows,
        reply: Reply,
    ) -> None:
        self.sessions = sessions
        self.incidents = incidents
        self.outbox = outbox
        self.services = services
        self.remediation = remediation
        self.code_fixes = code_fixes
        self.reply = reply

    def queue(
        self, text: str, incident_id: int, *, actor: str, channel: str | None, response_url: str | None
    ) -> None:
        """Commit the command for a worker to carry out; an unknown incident is refused here, before the ack."""
        with transaction(self.sessions) as session:
            incident = self.incidents.get(session, incident_id)
            self.queue_in(session, incident, text, actor=actor, channel=channel, response_url=response_url)

    def queue_in(
        self,
        session: Session,
        incident: Incident,
        text: str,
        *,
        actor: str,
        channel: str | None = None,
        response_url: str | None = None,
    ) -> None:
        """The same, inside a transaction that is under way (the resolution that asks for a post-mortem)."""
        payload = {"text": text, "actor": actor, "channel": channel, "response_url": response_url}
        self.outbox.command_job(session, incident, payload)

    def run(self, incident_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        """Carry out one queued command and tell its sender how it went. Run by a delivery worker."""
        try:
            answer = self._carry_out(str(payload["text"]), actor=str(payload["actor"]))
        except Exception as error:
            if database_unreachable(error):
                raise RetryLater("the database is unavailable") from error
            if not expected(error):
                log.error(
                    "slow command %r for incident %s failed", payload.get("text"), incident_id, exc_info=error
                )
            answer = friendly_message(error)
        return answer_privately(self.reply, payload, answer)

    def _carry_out(self, text: str, *, actor: str) -> str:
        match parse_command(text, self.services):
            case RequestRollback(incident_id, service, to_revision):
                action = self.remediation.request_rollback(incident_id, service, to_revision, actor=actor)
                return rendering.requested_reply(action)
            case RequestScale(incident_id, service, replicas):
                action = self.remediation.request_scale(incident_id, service, replicas, actor=actor)
                return rendering.requested_reply(action)
            case RequestFlag(incident_id, flag, value):
                action = self.remediation.request_flag(incident_id, flag, value, actor=actor)
                return rendering.requested_reply(action)
            case RequestEnv(incident_id, function, changes):
                action = self.remediation.request_env(incident_id, function, changes, actor=actor)
                return rendering.requested_reply(action)
            case RollbackByCommit(incident_id, service, commit):
                issue, pull = self.code_fixes.rollback_by_issue(incident_id, service, commit, actor=actor)
                return rendering.rollback_by_commit_reply(issue.url, pull.url)
            case DraftPostmortem(incident_id):
                return rendering.postmortem_posted_reply(self.code_fixes.postmortem(incident_id, actor=actor))
            case other:
                raise ValueError(f"{type(other).__name__} is not a slow command")
