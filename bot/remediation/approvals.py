"""Approval rules for remediation: who may approve, how many, and what a click on a decided request means.

Every path locks the request row (`FOR UPDATE`, plus the version column on SQLite), so two approvers clicking
at the same moment produce exactly one execution and the second click is told the outcome.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from bot.core.clock import Clock
from bot.core.database import table_of
from bot.core.domain_errors import IllegalTransition, NotFound
from bot.core.settings import ApproversConfig, PolicyConfig
from bot.incidents.incident_records import Incident
from bot.incidents.lifecycle import IncidentService
from bot.remediation.action_records import (
    IN_FLIGHT_STATES,
    ActionRequest,
    ActionState,
    ActionVote,
    Vote,
    VoteOutcome,
)
from bot.remediation.platforms import RemediationPlan
from bot.slack import rendering

log = logging.getLogger(__name__)

# Longer than the slowest run (rollout follow times out after 10 minutes) with a wide margin.
ABANDONED_AFTER = timedelta(minutes=30)


_ACTIONS = table_of(ActionRequest)
_ATTACH_CARD = (
    update(_ACTIONS)
    .where(_ACTIONS.c.id == bindparam("action_id"))
    .values(card_channel=bindparam("channel"), card_ts=bindparam("ts"))
)


class ApproverDirectory:
    """Who is an approver: `approvers.users`, plus members of `approvers.usergroup` (cached briefly)."""

    def __init__(
        self,
        client: WebClient,
        config: ApproversConfig,
        *,
        cache_seconds: float = 60,
        stale_limit: float = 600,
    ) -> None:
        self.client = client
        self.config = config
        self.cache_seconds = cache_seconds
        self.stale_limit = stale_limit
        self._members: set[str] = set()
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def is_eligible(self, user_id: str) -> bool:
        if user_id in self.config.users:
            return True
        return self.config.usergroup is not None and user_id in self._group_members()

    def describe(self) -> str:
        return rendering.approvers_text(self.config.users, self.config.usergroup)

    def _group_members(self) -> set[str]:
        with self._lock:
            group = self.config.usergroup
            if group is not None and time.monotonic() - self._fetched_at > self.cache_seconds:
                try:
                    response = self.client.usergroups_users_list(usergroup=group)
                    self._members = set(response.get("users", []))
                    self._fetched_at = time.monotonic()
                except SlackApiError:
                    # Keep the last good answer for a little while, then fail closed: someone removed from the
                    # group must not keep approving just because Slack's API is down.
                    log.exception("could not list members of %s", self.config.usergroup)
                    if time.monotonic() - self._fetched_at > self.stale_limit:
                        self._members = set()
            return set(self._members)


class ActionService:
    def __init__(
        self, clock: Clock, policy: PolicyConfig, approvers: ApproverDirectory, incidents: IncidentService
    ) -> None:
        self.clock = clock
        self.policy = policy
        self.approvers = approvers
        self.incidents = incidents

    def card_posted(self, session: Session, _incident_id: int | None, result: dict[str, Any]) -> None:
        """The approval card is in the incident's thread: remember where, so votes can update it."""
        session.connection().execute(
            _ATTACH_CARD, {"action_id": result["action_id"], "channel": result["channel"], "ts": result["ts"]}
        )

    def in_flight(self, session: Session, incident_id: int) -> ActionRequest | None:
        statement = select(ActionRequest).where(
            ActionRequest.incident_id == incident_id, ActionRequest.state.in_(IN_FLIGHT_STATES)
        )
        return session.scalars(statement).first()

    def get(self, session: Session, action_id: int, *, for_update: bool = False) -> ActionRequest:
        action = session.get(ActionRequest, action_id, with_for_update=for_update or None)
        if action is None:
            raise NotFound(f"There is no remediation request #{action_id}.")
        return action

    def refuse_if_busy(self, session: Session, incident: Incident) -> None:
        busy = self.in_flight(session, incident.id)
        if busy is not None and self._abandoned(busy):
            busy.state = ActionState.FAILED.value
            busy.finished_at = self.clock.now()
            busy.result = {
                "ok": False,
                "summary": "TARS lost track of this run (it restarted); check the target by hand",
            }
            self.incidents.record(
                session,
                incident,
                actor="tars",
                kind="action_failed",
                text=f"{busy.ref} abandoned: TARS restarted while running it; check the target by hand",
                data={"action_id": busy.id, "abandoned": True},
            )
            session.flush()
            busy = None
        if busy is not None:
            raise IllegalTransition(
                f"{incident.ref} already has remediation {busy.ref} {busy.state_enum.value}: "
                f"{rendering.escape(busy.summary)}. "
                "The runbook says not to apply several fixes at once; wait for it, or deny it first."
            )

    def _abandoned(self, action: ActionRequest) -> bool:
        """Executing for far longer than any run takes: the process running it is gone."""
        started = action.decided_at or action.requested_at
        return action.state_enum == ActionState.EXECUTING and self.clock.now() - started > ABANDONED_AFTER

    def create(
        self, session: Session, incident_id: int, planned: RemediationPlan, *, actor: str, advice: str | None
    ) -> ActionRequest:
        incident = self.incidents.get(session, incident_id, for_update=True)
        if not incident.is_open:
            raise IllegalTransition(f"{incident.ref} is resolved; remediation needs an open incident.")
        self.refuse_if_busy(session, incident)
        now = self.clock.now()
        action = ActionRequest(
            incident_id=incident.id,
            kind=planned.action_kind,
            service=planned.service,
            params=planned.params,
            snapshot=planned.snapshot,
            summary=planned.summary,
            advice=advice,
            requested_by=actor,
            requested_at=now,
            expires_at=now + self.policy.approval_ttl,
            required_approvals=self.policy.approvals_required.for_severity(incident.severity),
            state=ActionState.PENDING.value,
        )
        session.add(action)
        try:
            session.flush()
        except IntegrityError:  # another request won the race for "one in flight"
            raise IllegalTransition(f"{incident.ref} already has a remediation in flight.") from None
        self.incidents.record(
            session,
            incident,
            actor=actor,
            kind="action_requested",
            text=f"Requested remediation {action.ref}: {action.summary}",
            data={
                "action_id": action.id,
                "params": planned.audit if planned.audit is not None else action.params,
                "snapshot": action.snapshot,
            },
        )
        return action

    def vote(self, session: Session, action_id: int, *, user: str, approve: bool, eligible: bool) -> Vote:
        action = self.get(session, action_id, for_update=True)
        incident = self.incidents.get(session, action.incident_id)
        now = self.clock.now()

        def refuse(why: str) -> Vote:
            self.incidents.record(
                session,
                incident,
                actor=user,
                kind="approval_refused",
                text=f"{'Approval' if approve else 'Denial'} of {action.ref} refused: {why}",
                data={"action_id": action.id, "reason": why},
            )
            return Vote(VoteOutcome.REFUSED, action, incident, why=why)

        if action.state_enum != ActionState.PENDING:
            return Vote(VoteOutcome.REFUSED, action, incident, why="decided")
        if not incident.is_open:
            self.expire(session, action, incident, reason=f"{incident.ref} was resolved")
            return Vote(VoteOutcome.EXPIRED, action, incident, why="incident resolved")
        if now >= action.expires_at:
            self.expire(session, action, incident)
            return Vote(VoteOutcome.EXPIRED, action, incident, why="expired")
        withdrawing = not approve and user == action.requested_by
        if approve and user == action.requested_by:
            return refuse("self-approval")
        if not eligible and not withdrawing:
            return refuse("not an approver")
        if any(vote.user_id == user for vote in action.votes):
            missing = action.required_approvals - len(action.approvers)
            return Vote(VoteOutcome.REFUSED, action, incident, why="already voted", missing=missing)
        action.votes.append(ActionVote(user_id=user, decision="approve" if approve else "deny", at=now))
        if not approve:
            action.state = ActionState.DENIED.value
            action.decided_by = user
            action.decided_at = now
            verb = "withdrew" if withdrawing else "denied"
            self.incidents.record(
                session,
                incident,
                actor=user,
                kind="action_denied",
                text=f"{verb.capitalize()} {action.ref}: {action.summary}",
                data={"action_id": action.id},
            )
            return Vote(VoteOutcome.DENIED, action, incident, why=verb)
        action.required_approvals = max(
            action.required_approvals, self.policy.approvals_required.for_severity(incident.severity)
        )
        approvals = len(action.approvers)
        # Writing the row on every vote makes concurrent votes collide on its version column, so on SQLite
        # (no row locks) the later vote is retried and counts the earlier one instead of both seeing zero.
        flag_modified(action, "required_approvals")
        self.incidents.record(
            session,
            incident,
            actor=user,
            kind="action_approval",
            text=f"Approved {action.ref} ({approvals}/{action.required_approvals})",
            data={"action_id": action.id, "approvals": approvals},
        )
        if approvals < action.required_approvals:
            missing = action.required_approvals - approvals
            return Vote(VoteOutcome.APPROVED_MORE_NEEDED, action, incident, missing=missing)
        action.state = ActionState.EXECUTING.value
        action.decided_by = user
        action.decided_at = now
        return Vote(VoteOutcome.EXECUTE, action, incident)

    def expire(
        self, session: Session, action: ActionRequest, incident: Incident, *, reason: str | None = None
    ) -> None:
        action.state = ActionState.EXPIRED.value
        action.decided_at = self.clock.now()
        if reason:
            action.result = {"ok": False, "summary": f"retired: {reason}"}
        self.incidents.record(
            session,
            incident,
            actor="tars",
            kind="action_expired",
            text=f"Request {action.ref} expired without enough approvals",
            data={"action_id": action.id},
        )

    def finish(
        self, session: Session, action_id: int, *, ok: bool, summary: str, details: dict[str, object]
    ) -> tuple[ActionRequest, Incident]:
        action = self.get(session, action_id, for_update=True)
        incident = self.incidents.get(session, action.incident_id)
        action.state = (ActionState.SUCCEEDED if ok else ActionState.FAILED).value
        action.finished_at = self.clock.now()
        action.result = {"ok": ok, "summary": summary, **details}
        self.incidents.record(
            session,
            incident,
            actor="tars",
            kind="action_succeeded" if ok else "action_failed",
            text=f"{action.ref} {'succeeded' if ok else 'failed'}: {summary}",
            data={"action_id": action.id, **details},
        )
        return action, incident
