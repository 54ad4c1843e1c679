"""Telling one person something privately, whatever kind of Slack request they sent."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.ingress.button_binding import ClickedMessage

log = logging.getLogger(__name__)


def origin_channel(body: dict[str, Any]) -> str | None:
    """The channel a request came from: slash command, button, or the metadata a modal carried."""
    if body.get("channel_id"):
        return str(body["channel_id"])
    channel = body.get("channel")
    if isinstance(channel, dict) and channel.get("id"):
        return str(channel["id"])
    view = body.get("view")
    if isinstance(view, dict) and view.get("private_metadata"):
        try:
            metadata = json.loads(view["private_metadata"])
        except ValueError:
            return None
        if isinstance(metadata, dict) and metadata.get("channel_id"):
            return str(metadata["channel_id"])
    return None


def clicked_message(body: dict[str, Any]) -> ClickedMessage:
    """The message a button or select was clicked on: the container Slack reports, else the message itself."""
    container = body.get("container")
    container = container if isinstance(container, dict) else {}
    channel = body.get("channel")
    message = body.get("message")
    message = message if isinstance(message, dict) else {}
    return ClickedMessage(
        channel=_text(container.get("channel_id"))
        or _text(channel.get("id") if isinstance(channel, dict) else None),
        ts=_text(container.get("message_ts")) or _text(message.get("ts")),
        thread_ts=_text(container.get("thread_ts")) or _text(message.get("thread_ts")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def acting_user(body: dict[str, Any]) -> str:
    if body.get("user_id"):
        return str(body["user_id"])
    return str(body["user"]["id"])


def reply_privately(body: dict[str, Any], respond: Respond | None, client: WebClient, text: str) -> None:
    """Ephemeral reply via the response_url when there is one, else chat.postEphemeral, else a DM."""
    if respond is not None and (body.get("response_url") or body.get("response_urls")):
        respond(text=text, response_type="ephemeral", replace_original=False)
        return
    user = acting_user(body)
    channel = origin_channel(body)
    try:
        if channel:
            client.chat_postEphemeral(channel=channel, user=user, text=text)
            return
    except SlackApiError:
        log.warning("ephemeral reply to %s in %s failed; sending a DM instead", user, channel, exc_info=True)
    client.chat_postMessage(channel=user, text=text)
