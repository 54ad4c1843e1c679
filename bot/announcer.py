"""Posting to Slack: the incident card, its thread notes, the 📊/✅ templates and on-call pages.

Uses slack_sdk's WebClient only (never Bolt request objects), so flows and later the scheduler share it.
"""

from __future__ import annotations

import logging
from typing import Any

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

    def refresh_card(self, incident: Incident) -> None:
        """Re-render the card from the incident as it is now (not as it was when the change was queued)."""
        if not incident.channel_id or not incident.card_ts:
            log.warning("%s has no card to refresh", incident.ref)
            return
        self.client.chat_update(
            channel=incident.channel_id,
            ts=incident.card_ts,
            text=rendering.card_text(incident),
            blocks=rendering.card_blocks(incident),
        )

    def thread_note(self, incident: Incident, note: str) -> None:
        if incident.channel_id and incident.card_ts:
            self.client.chat_postMessage(channel=incident.channel_id, thread_ts=incident.card_ts, text=note)

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        thread_ts: str | None = None,
    ) -> str:
        response = self.client.chat_postMessage(
            channel=channel, text=text, blocks=blocks, thread_ts=thread_ts, unfurl_links=False
        )
        return str(response["ts"])

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)

    def direct_message(self, user_id: str, text: str) -> str:
        opened = self.client.conversations_open(users=user_id)
        response = self.client.chat_postMessage(channel=opened["channel"]["id"], text=text)
        return str(response["ts"])
