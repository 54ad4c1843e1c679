"""Orchestration of remediation requests: plan → approval card → votes. An approval that completes a request
commits a job row; `bot/remediation/execution.py` runs it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from bot.comms.outbox import Outbox
from bot.comms.reminders import Planner, ReminderKind
from bot.core.clock import Clock
from bot.core.database import reading, transaction
from bot.core.domain_errors import DomainError
from bot.core.metrics import APPROVALS
from bot.incidents.incident_records import Incident
from bot.incidents.lifecycle import IncidentService
from bot.remediation.action_records import ActionRequest, Vote, VoteOutcome
from bot.remediation.approvals import ActionService, ApproverDirectory
from bot.remediation.platforms import ROLLBACK, Platforms, RemediationPlan
from bot.remediation.rollback_rule import rollback_rule
from bot.slack import rendering
from integrations.plans import IntegrationError, NothingToDo

log = logging.getLogger(__name__)


class RemediationFlows:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        actions: ActionService,
        incidents: IncidentService,
        platforms: Platforms,
        approvers: ApproverDirectory,
        outbox: Outbox,
        planner: Planner,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.actions = actions
        self.incidents = incidents
        self.platforms = platforms
        self.approvers = approvers
        self.outbox = outbox
        self.planner = planner
        # When the incident's error rate rose, read from its metrics (wired in app.py); None: unknown.
        self.onset_of: Callable[[Incident], datetime | None] = lambda _incident: None

    # --- requests -------------------------------------------------------------------------------------------

    def request_rollback(
        self, incident_id: int, service: str | None, to_revision: int | None, *, actor: str
    ) -> ActionRequest:
        target = self._precheck(incident_id, service)
        planned = self._plan(lambda: self.platforms.plan_rollback(target, to_revision))
        return self._create(incident_id, planned, actor=actor)

    def request_scale(self, incident_id: int, service: str, replicas: int, *, actor: str) -> ActionRequest:
        target = self._precheck(incident_id, service)
        planned = self._plan(lambda: self.platforms.plan_scale(target, replicas))
        return self._create(incident_id, planned, actor=actor)

    def request_flag(self, incident_id: int, flag: str, value: str, *, actor: str) -> ActionRequest:
        owner = self.platforms.flag_catalog[flag].service if flag in self.platforms.flag_catalog else None
        self._precheck(incident_id, owner)
        planned = self._plan(lambda: self.platforms.plan_flag(flag, value))
        return self._create(incident_id, planned, actor=actor)

    def request_env(
        self, incident_id: int, function: str, changes: dict[str, str], *, actor: str
    ) -> ActionRequest:
        service = self._precheck(incident_id, None)
        planned = self._plan(lambda: self.platforms.plan_env(service, function, changes))
        return self._create(incident_id, planned, actor=actor)

    def request_flag_revert(self, action_id: int, *, actor: str) -> ActionRequest:
        """The Revert flag button: a new, approval-gated request that puts the previous value back."""
        with reading(self.sessions) as session:
            action = self.actions.get(session, action_id)
        if not action.kind.endswith("_flag") or action.state != "succeeded":
            raise DomainError(
                f"Request {action.ref} is not a completed flag change; there is nothing to revert."
            )
        previous = action.snapshot.get("value")
        if previous is None:
            raise DomainError(rendering.flag_did_not_exist(str(action.params["flag"]), action.ref))
        return self.request_flag(action.incident_id, str(action.params["flag"]), str(previous), actor=actor)

    def advice_for(self, incident: Incident, onset: datetime | None = None) -> str | None:
        """The runbook's rollback rule for this incident's service, or None when it has no platform. `onset`:
        when the error rate rose, if TARS has read it."""
        entry = self.platforms.services.get(incident.service)
        if entry is None or entry.platform is None:
            return None
        try:
            deployed = self.platforms.last_deployed_at(incident.service)
        except IntegrationError as error:
            return rendering.rollback_advice_unknown(error.message)
        return rendering.rollback_advice(
            rollback_rule(deployed, incident.declared_at, self.clock.now(), onset=onset)
        )

    def _precheck(self, incident_id: int, service: str | None) -> str:
        """Refuse early, before reading any cluster: unknown incident, resolved, or a fix already in flight."""
        with reading(self.sessions) as session:
            incident = self.incidents.get(session, incident_id)
            if not incident.is_open:
                raise DomainError(f"{incident.ref} is resolved; remediation needs an open incident.")
            self.actions.refuse_if_busy(session, incident)
            return service or incident.service

    @staticmethod
    def _plan(make: object) -> RemediationPlan:
        try:
            return make()  # type: ignore[operator,no-any-return]
        except NothingToDo as nothing:
            raise DomainError(f"Nothing to do: {nothing.message}") from nothing
        except IntegrationError as error:
            raise DomainError(f"TARS could not plan this: {error.message}") from error

    def _create(self, incident_id: int, planned: RemediationPlan, *, actor: str) -> ActionRequest:
        onset = None
        if planned.kind == ROLLBACK:
            with reading(self.sessions) as session:
                stored = self.incidents.get(session, incident_id)
                session.expunge(stored)
            onset = self.onset_of(stored)
        with transaction(self.sessions) as session:
            incident = self.incidents.get(session, incident_id)
            advice = (
                rendering.rollback_advice(
                    rollback_rule(
                        planned.last_deployed_at, incident.declared_at, self.clock.now(), onset=onset
                    )
                )
                if planned.kind == ROLLBACK
                else None
            )
            action = self.actions.create(session, incident_id, planned, actor=actor, advice=advice)
            self.outbox.action_card(session, incident, action.id)
            self.planner.schedule(
                session, incident.id, ReminderKind.ACTION_EXPIRY, action.expires_at, {"action_id": action.id}
            )
        return action

    # --- votes ----------------------------------------------------------------------------------------------

    def vote(self, action_id: int, *, user: str, approve: bool) -> Vote:
        eligible = self.approvers.is_eligible(user)  # a Slack call, made before taking any row lock
        for attempt in range(3):
            try:
                vote = self._record_vote(action_id, user=user, approve=approve, eligible=eligible)
                break
            except StaleDataError:
                # Another vote committed first (SQLite has no row locks; the version column caught it). Voting
                # again reads the new state, so this person is told the real outcome.
                if attempt == 2:
                    raise
        APPROVALS.labels(vote.outcome.value).inc()
        return vote

    def _record_vote(self, action_id: int, *, user: str, approve: bool, eligible: bool) -> Vote:
        with transaction(self.sessions) as session:
            vote = self.actions.vote(session, action_id, user=user, approve=approve, eligible=eligible)
            if vote.outcome != VoteOutcome.REFUSED:
                self.outbox.refresh_action_card(session, vote.incident, action_id)
            if vote.outcome == VoteOutcome.EXECUTE:
                # Committed with the approval: whichever replica leases it starts the run, also after a crash.
                self.outbox.remediation_job(session, vote.incident, action_id)
            if vote.outcome == VoteOutcome.DENIED:
                note = rendering.action_denied_note(vote.action, user)
                self.outbox.thread_note(session, vote.incident, note)
        return vote
