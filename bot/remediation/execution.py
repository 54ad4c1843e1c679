"""Running approved remediation: started → platform call → following the rollout → result and validation.

Runs happen on a small worker pool, never on a Slack listener thread nor a delivery worker: approving acks at
once, then "started", progress and the result are posted to the incident thread and the channel ("always post
what you did and when"), everything lands in the timeline, and validation reminders are scheduled at +5 and +10
minutes.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.comms.outbox import Outbox
from bot.comms.reminders import Planner, ReminderKind
from bot.core.clock import Clock
from bot.core.database import reading, transaction
from bot.core.domain_errors import DomainError
from bot.core.metrics import REMEDIATION_RUNS
from bot.incidents.lifecycle import IncidentService
from bot.remediation.action_records import ActionState
from bot.remediation.approvals import ActionService
from bot.remediation.platforms import Platforms
from bot.slack import rendering
from integrations.plans import IntegrationError, NothingToDo, TargetChanged

log = logging.getLogger(__name__)

VALIDATION_REMINDERS = (
    (
        timedelta(minutes=5),
        "Validate {ref}: the error rate should be below 0.1% within 5 minutes of the fix, "
        "with no new error patterns and latency back to baseline.",
    ),
    (
        timedelta(minutes=10),
        "{ref} has had 10 minutes since the fix: if it held, move the incident to Monitoring "
        "(or resolve once it has been monitored for 10 minutes).",
    ),
)


class RemediationRuns:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        actions: ActionService,
        incidents: IncidentService,
        platforms: Platforms,
        outbox: Outbox,
        planner: Planner,
        *,
        workers: int = 4,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.actions = actions
        self.incidents = incidents
        self.platforms = platforms
        self.outbox = outbox
        self.planner = planner
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tars-remediation")

    # --- execution ------------------------------------------------------------------------------------------

    def start(self, _incident_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        """Start an approved run from its committed job row (a delivery worker calls this), then leave the
        platform calls to this flow's own threads, so a rollout being followed never holds a delivery worker.

        Marking the run started is committed before any platform call. A run found approved but not started (the
        process died between the approval and here) starts now; one already started is left alone, because its
        platform call may have happened: it is reported abandoned later, for a person to check.
        """
        action_id = int(payload["action_id"])
        if not self._begin(action_id):
            return {"started": False}
        self._pool.submit(self._execute, action_id)
        return {"started": True}

    def _execute(self, action_id: int) -> None:
        try:
            self._apply(action_id)
        except Exception:  # the worker must always leave the request in a final state
            log.exception("remediation #%s crashed", action_id)
            self._finish(
                action_id,
                ok=False,
                summary="TARS hit an internal error while running it; see the logs.",
                details={},
            )

    def _begin(self, action_id: int) -> bool:
        """Mark an approved run started, with its 'started' posts; False when there is nothing to start."""
        with transaction(self.sessions) as session:
            action = self.actions.get(session, action_id, for_update=True)
            if action.state_enum != ActionState.EXECUTING or (action.result or {}).get("started"):
                return False
            incident = self.incidents.get(session, action.incident_id)
            resolved = not incident.is_open
            if not resolved:
                action.result = {"started": True}
                started = rendering.action_started_text(action, incident, dry_run=self.platforms.dry_run)
                self.outbox.channel_post(session, incident, started, record=["action_started", started])
                self.outbox.thread_note(session, incident, started)
        if resolved:  # resolved between the approval and now: do nothing to production
            self._finish(
                action_id, ok=False, summary="not run: the incident was resolved meanwhile", details={}
            )
            return False
        return True

    def _apply(self, action_id: int) -> None:
        with reading(self.sessions) as session:
            action = self.actions.get(session, action_id)
            kind, service, params, snapshot = (
                action.kind,
                action.service,
                action.params,
                action.snapshot,
            )
        try:
            result = self.platforms.execute(kind, service, params, snapshot)
        except NothingToDo as nothing:
            self._finish(action_id, ok=True, summary=f"nothing to do: {nothing.message}", details={})
            return
        except TargetChanged as changed:
            self._finish(
                action_id, ok=False, summary=f"refused: {changed.message}", details={"target_changed": True}
            )
            return
        except IntegrationError as error:
            self._finish(
                action_id, ok=False, summary=error.message, details={"status": error.status, **error.details}
            )
            return
        except DomainError as error:  # e.g. the catalog changed since the request
            self._finish(action_id, ok=False, summary=error.message, details={})
            return
        details = {"request": result.request, "details": result.details, "dry_run": result.dry_run}
        if not result.ok or result.dry_run:
            self._finish(action_id, ok=result.ok, summary=result.summary, details=details)
            return
        followed = self.platforms.follow(kind, service, lambda message: self._progress(action_id, message))
        if followed is None:  # a config change: nothing rolls out
            self._finish(action_id, ok=True, summary=result.summary, details=details)
            return
        rolled_out, status = followed
        summary = f"{result.summary}; {status}" if rolled_out else f"{result.summary}, but {status}"
        self._finish(action_id, ok=rolled_out, summary=summary, details=details)

    def _progress(self, action_id: int, message: str) -> None:
        with transaction(self.sessions) as session:
            action = self.actions.get(session, action_id)
            incident = self.incidents.get(session, action.incident_id)
            self.outbox.thread_note(session, incident, rendering.action_progress_note(action, message))

    def _finish(self, action_id: int, *, ok: bool, summary: str, details: dict[str, object]) -> None:
        with transaction(self.sessions) as session:
            action, incident = self.actions.finish(
                session, action_id, ok=ok, summary=summary, details=details
            )
            REMEDIATION_RUNS.labels(action.kind, "succeeded" if ok else "failed").inc()
            text = rendering.action_result_text(action, incident, ok=ok, summary=summary)
            self.outbox.channel_post(session, incident, text)
            revertible = ok and action.kind.endswith("_flag") and not details.get("dry_run")
            blocks = rendering.flag_revert_blocks(text, action.id) if revertible else None
            self.outbox.thread_note(session, incident, text, blocks)
            self.outbox.refresh_action_card(session, incident, action_id)
            entry = self.platforms.services.get(incident.service)
            if ok and entry is not None and entry.metrics is not None:
                # TARS judges the fix from the metrics itself, at the same +5 and +10 minutes.
                for delay, _template in VALIDATION_REMINDERS:
                    stage = int(delay.total_seconds() // 60)
                    self.planner.schedule(
                        session,
                        incident.id,
                        ReminderKind.VALIDATION,
                        self.clock.now() + delay,
                        {"action_id": action.id, "stage": stage},
                    )
            elif ok:
                mentions = list(dict.fromkeys([action.requested_by, *action.approvers]))
                for delay, template in VALIDATION_REMINDERS:
                    self.planner.remind_at(
                        session,
                        incident,
                        self.clock.now() + delay,
                        template.format(ref=incident.ref),
                        mentions,
                    )

    def shutdown(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
