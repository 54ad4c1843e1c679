"""Posting to Slack: the incident card, its thread notes, the 📊/✅ templates and on-call pages.

Uses slack_sdk's WebClient only (never Bolt request objects), so flows and later the scheduler share it.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot import rendering
from bot.models import Incident

log = logging.getLogger(__name__)


class Announcer:
    def __init__(self, client: WebClient) -> None:
        self.client = client

    def post_card(self, incident: Incident, channel_id: str) -> str:
        response = self.client.chat_postMessage(
            channel=channel_id,
            text=rendering.card_text(incident),
            blocks=rendering.card_blocks(incident),
            unfurl_links=False,
        )
        return str(response["ts"])

    def refresh_card(self, incident: Incident, note: str | None = None) -> None:
        if not incident.channel_id or not incident.card_ts:
            log.warning("%s has no card to refresh", incident.ref)
            return
        self.client.chat_update(
            channel=incident.channel_id,
            ts=incident.card_ts,
            text=rendering.card_text(incident),
            blocks=rendering.card_blocks(incident),
        )
        if note:
            self.thread_note(incident, note)

    def thread_note(self, incident: Incident, note: str) -> None:
        if incident.channel_id and incident.card_ts:
            self.client.chat_postMessage(channel=incident.channel_id, thread_ts=incident.card_ts, text=note)

    def post_update(self, incident: Incident) -> str:
        response = self.client.chat_postMessage(
            channel=incident.channel_id or "",
            text=rendering.update_text(incident),
            blocks=rendering.update_blocks(incident),
        )
        return str(response["ts"])

    def post_resolved(self, incident: Incident) -> str:
        response = self.client.chat_postMessage(
            channel=incident.channel_id or "",
            text=rendering.resolved_text(incident),
            blocks=rendering.resolved_blocks(incident),
        )
        return str(response["ts"])

    def page_by_dm(self, incident: Incident, user_id: str) -> None:
        opened = self.client.conversations_open(users=user_id)
        self.client.chat_postMessage(channel=opened["channel"]["id"], text=rendering.page_text(incident))
