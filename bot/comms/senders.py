"""One sender per kind of outbox row: what goes to Slack (or PagerDuty) for it, rendered from the newest state.

The delivery engine leases, paces and keeps the books; these only send, and raise RetryLater or PermanentFailure
for the engine to act on.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.comms.announcer import Announcer
from bot.comms.delivery import RETRYABLE_SLACK_ERRORS, Group, PermanentFailure, RetryLater, Sender
from bot.core.database import reading
from bot.core.settings import ServiceConfig
from bot.incidents.incident_records import OPEN_STATUSES, Incident
from bot.remediation.action_records import ActionRequest
from bot.signals.signal_records import Signal, Triage
from bot.slack import rendering
from integrations.pagerduty import PagerDutyEvents, PageRequest
from integrations.plans import IntegrationError

log = logging.getLogger(__name__)
# A triage card offers to attach its alert to at most this many open incidents, most severe first.
ATTACH_CHOICES = 10
T = TypeVar("T")


class AnnouncementSenders:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        announcer: Announcer,
        pagerduty: PagerDutyEvents,
        services: dict[str, ServiceConfig],
    ) -> None:
        self.sessions = sessions
        self.announcer = announcer
        self.pagerduty = pagerduty
        self.services = services

    def by_kind(self) -> dict[str, Sender]:
        return {
            "card_post": self.card_post,
            "card_refresh": self.card_refresh,
            "thread_note": self.thread_note,
            "thread_file": self.thread_file,
            "channel_post": self.channel_post,
            "scheduled_update": self.scheduled_update,
            "dm": self.dm,
            "pagerduty": self.pagerduty_page,
            "action_card_post": self.action_card,
            "action_card_refresh": self.action_card_refresh,
            "triage_post": self.triage_post,
            "triage_refresh": self.triage_refresh,
        }

    # --- one sender per kind ----------------------------------------------------------------------------------

    def _triage_card(self, group: Group) -> tuple[Signal, str, list[dict[str, Any]]]:
        """The signal and its card, rendered from the newest state (with the signals it gathers, if any)."""
        with reading(self.sessions) as session:
            signal = session.get(Signal, int(group.head.payload["signal_id"]))
            if signal is None:
                raise PermanentFailure("the signal no longer exists")
            members = (
                list(
                    session.scalars(
                        select(Signal).where(Signal.id.in_(signal.member_ids)).order_by(Signal.id)
                    )
                )
                if signal.member_ids
                else []
            )
            open_incidents = (
                list(
                    session.scalars(
                        select(Incident)
                        .where(Incident.status.in_([s.value for s in OPEN_STATUSES]))
                        .order_by(Incident.severity, Incident.id.desc())
                        .limit(ATTACH_CHOICES)
                    )
                )
                if signal.triage == Triage.OPEN.value
                else []
            )
        service = self.services.get(signal.service or "")
        text, blocks = rendering.triage_card(
            signal,
            oncall=service.oncall if service else None,
            members=members,
            open_incidents=open_incidents,
        )
        return signal, text, blocks

    def triage_post(self, group: Group) -> dict[str, Any]:
        signal, text, blocks = self._triage_card(group)
        channel = str(group.head.payload["channel"])
        ts = self._post_once(group, channel, text, blocks)
        return {"signal_id": signal.id, "channel": channel, "ts": ts}

    def triage_refresh(self, group: Group) -> dict[str, Any]:
        signal, text, blocks = self._triage_card(group)
        if not signal.card_channel or not signal.card_ts:
            return {"signal_id": signal.id, "skipped": "no triage card"}
        channel, ts = signal.card_channel, signal.card_ts
        _slack(lambda: self.announcer.update(channel, ts, text, blocks))
        return {"signal_id": signal.id, "ts": ts, "refreshes": len(group.rows)}

    def _incident(self, group: Group) -> Incident:
        with reading(self.sessions) as session:
            incident = session.get(Incident, group.head.incident_id)
        if incident is None:
            raise PermanentFailure("the incident no longer exists")
        return incident

    def _post_once(
        self, group: Group, channel: str, text: str, blocks: Any = None, *, thread_ts: str | None = None
    ) -> str:
        """Post, unless an earlier attempt whose outcome was never learned already did."""
        work = group.head
        if work.check_first:
            found = _slack(lambda: self.announcer.find_posted(channel, work.id, thread_ts=thread_ts))
            if found is not None:
                log.info("outbox %s was already in Slack (ts %s); not posting it again", work.id, found)
                return found
        return _slack(
            lambda: self.announcer.post(
                channel, text, blocks, thread_ts=thread_ts, outbox_id=work.id, sent_with=group.ids
            )
        )

    def card_post(self, group: Group) -> dict[str, Any]:
        incident = self._incident(group)
        channel = str(group.head.payload["channel"])
        ts = self._post_once(group, channel, rendering.card_text(incident), rendering.card_blocks(incident))
        return {"channel": channel, "ts": ts}

    def card_refresh(self, group: Group) -> dict[str, Any]:
        incident = self._incident(group)
        channel, ts = _require_card(incident)
        # Rendered now, from the newest state: every refresh queued up to here is shown by this one update.
        _slack(
            lambda: self.announcer.update(
                channel, ts, rendering.card_text(incident), rendering.card_blocks(incident)
            )
        )
        return {"ts": ts, "refreshes": len(group.rows)}

    def thread_note(self, group: Group) -> dict[str, Any]:
        incident = self._incident(group)
        channel, card_ts = _require_card(incident)
        text = "\n".join(str(payload["text"]) for _row_id, payload in group.rows)
        blocks = group.head.payload.get("blocks") if len(group.rows) == 1 else None
        ts = self._post_once(group, channel, text, blocks, thread_ts=card_ts)
        return {"ts": ts}

    def thread_file(self, group: Group) -> dict[str, Any]:
        """Upload the file into the thread, unless an earlier attempt whose outcome was lost already did: a
        file carries no message metadata, so it is recognised by its title."""
        incident = self._incident(group)
        channel, card_ts = _require_card(incident)
        payload = group.head.payload
        title = str(payload["title"])
        if group.head.check_first:
            found = _slack(lambda: self.announcer.find_file(channel, title, thread_ts=card_ts))
            if found is not None:
                log.info(
                    "outbox %s was already in Slack (file %s); not uploading it again", group.head.id, found
                )
                return {"channel": channel, "file": found}
        file_id = _slack(
            lambda: self.announcer.upload_file(
                channel,
                card_ts,
                str(payload["file_name"]),
                title,
                _file_content(payload),
                str(payload.get("comment") or ""),
            )
        )
        return {"channel": channel, "file": file_id, **(payload.get("facts") or {})}

    def channel_post(self, group: Group) -> dict[str, Any]:
        payload = group.head.payload
        return self._in_channel(group, self._incident(group), str(payload["text"]), payload.get("blocks"))

    def scheduled_update(self, group: Group) -> dict[str, Any]:
        incident = self._incident(group)
        payload = group.head.payload
        late_due = payload.get("late_due")
        text, blocks = rendering.scheduled_update(
            incident,
            nag_user=payload.get("nag_user"),
            late_due=datetime.fromisoformat(late_due) if late_due else None,
        )
        return self._in_channel(group, incident, text, blocks)

    def _in_channel(self, group: Group, incident: Incident, text: str, blocks: Any) -> dict[str, Any]:
        if not incident.channel_id:
            raise PermanentFailure("the incident has no channel (its card was never posted)")
        ts = self._post_once(group, incident.channel_id, text, blocks)
        return {"channel": incident.channel_id, "ts": ts}

    def dm(self, group: Group) -> dict[str, Any]:
        user = str(group.head.payload["user"])
        channel = _slack(lambda: self.announcer.open_dm(user))
        self._post_once(group, channel, str(group.head.payload["text"]))
        return {"user": user}

    def _action(self, group: Group) -> tuple[ActionRequest, Incident, str, list[dict[str, Any]]]:
        incident = self._incident(group)
        with reading(self.sessions) as session:
            action = session.get(ActionRequest, int(group.head.payload["action_id"]))
            if action is None:
                raise PermanentFailure("the remediation request no longer exists")
            text = rendering.action_card_text(action, incident)
            blocks = rendering.action_card_blocks(action, incident)
        return action, incident, text, blocks

    def action_card(self, group: Group) -> dict[str, Any]:
        action, incident, text, blocks = self._action(group)
        channel, card_ts = _require_card(incident)
        ts = self._post_once(group, channel, text, blocks, thread_ts=card_ts)
        return {"action_id": action.id, "channel": channel, "ts": ts}

    def action_card_refresh(self, group: Group) -> dict[str, Any]:
        action, _incident, text, blocks = self._action(group)
        if not action.card_channel or not action.card_ts:
            raise PermanentFailure("the approval card was never posted")
        channel, ts = action.card_channel, action.card_ts
        _slack(lambda: self.announcer.update(channel, ts, text, blocks))
        return {"action_id": action.id}

    def pagerduty_page(self, group: Group) -> dict[str, Any]:
        payload = group.head.payload
        page = PageRequest(
            routing_key=str(payload["routing_key"]),
            summary=str(payload["summary"]),
            dedup_key=str(payload["dedup_key"]),
            severity=str(payload["severity"]),
            custom_details=dict(payload.get("custom_details") or {}),
        )
        try:
            answer = self.pagerduty.trigger(page)
        except IntegrationError as error:
            if error.status is not None and error.status < 500 and error.status != 429:
                raise PermanentFailure(error.message) from error
            # PagerDuty deduplicates on dedup_key, so sending again is harmless.
            raise RetryLater(error.message) from error
        return {"dedup_key": answer.get("dedup_key", page.dedup_key), "status": answer.get("status")}


def _file_content(payload: dict[str, Any]) -> str | bytes:
    encoded = payload.get("content_base64")
    return base64.b64decode(encoded) if encoded is not None else str(payload["content"])


def _require_card(incident: Incident) -> tuple[str, str]:
    if not incident.channel_id or not incident.card_ts:
        raise PermanentFailure("the incident card was never posted")
    return incident.channel_id, incident.card_ts


def _slack(call: Callable[[], T]) -> T:
    try:
        return call()
    except SlackApiError as error:
        response = error.response
        status = getattr(response, "status_code", 200)
        code = str(response.get("error", "unknown_error")) if response is not None else "unknown_error"
        if status == 429 or code == "ratelimited":
            retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
            wait = timedelta(seconds=int(retry_after)) if retry_after and str(retry_after).isdigit() else None
            raise RetryLater(f"Slack {status} {code}", wait, rate_limited=True) from error
        if status >= 500 or code in RETRYABLE_SLACK_ERRORS:
            raise RetryLater(f"Slack {status} {code}", uncertain=True) from error
        raise PermanentFailure(f"Slack refused: {code}") from error
    except (OSError, TimeoutError) as error:  # connection refused/reset, DNS, timeouts
        raise RetryLater(f"Slack unreachable: {error}", uncertain=True) from error
