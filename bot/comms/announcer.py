"""Slack Web API calls the delivery engine makes: post, update, open a DM, upload a file, and find an earlier post.

Uses slack_sdk's WebClient only (never Bolt request objects). Every post carries message metadata naming the
outbox rows it delivers, so a post whose answer was lost can be found again instead of being sent twice.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.core.metrics import SLACK_CALLS

METADATA_EVENT = "tars_outbox"
# How far back to look for a post whose outcome was lost; it was sent seconds to minutes ago.
LOOKBACK_MESSAGES = 200


def reply_privately(response_url: str, text: str, *, timeout: int = 10) -> None:
    """Answer the person who sent a request, through its response_url (valid 30 minutes, five times)."""
    response = WebhookClient(response_url, timeout=timeout).send(
        text=text, response_type="ephemeral", replace_original=False
    )
    if response.status_code >= 400:
        raise RuntimeError(f"response_url answered {response.status_code}: {response.body}")


class CountedWebClient(WebClient):
    """slack_sdk's WebClient, counting every Web API call by method and result for /metrics."""

    def api_call(self, api_method: str, **kwargs: Any) -> Any:
        try:
            response = super().api_call(api_method, **kwargs)
        except SlackApiError as error:
            status = getattr(error.response, "status_code", 200)
            code = "ratelimited" if status == 429 else str(error.response.get("error", "unknown_error"))
            SLACK_CALLS.labels(api_method, code).inc()
            raise
        except Exception:
            SLACK_CALLS.labels(api_method, "unreachable").inc()
            raise
        SLACK_CALLS.labels(api_method, "ok").inc()
        return response


class Announcer:
    def __init__(self, client: WebClient) -> None:
        self.client = client

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        thread_ts: str | None = None,
        outbox_id: int | None = None,
        sent_with: list[int] | None = None,
    ) -> str:
        metadata = None
        if outbox_id is not None:
            metadata = {
                "event_type": METADATA_EVENT,
                "event_payload": {"outbox_id": outbox_id, "outbox_ids": sent_with or [outbox_id]},
            }
        response = self.client.chat_postMessage(
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            unfurl_links=False,
            metadata=metadata,
        )
        return str(response["ts"])

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)

    def open_dm(self, user_id: str) -> str:
        opened = self.client.conversations_open(users=user_id)
        return str(opened["channel"]["id"])

    def find_posted(self, channel: str, outbox_id: int, *, thread_ts: str | None = None) -> str | None:
        """The ts of the message that delivered `outbox_id`, if Slack has it."""
        if thread_ts:
            response = self.client.conversations_replies(
                channel=channel, ts=thread_ts, include_all_metadata=True, limit=LOOKBACK_MESSAGES
            )
        else:
            response = self.client.conversations_history(
                channel=channel, include_all_metadata=True, limit=LOOKBACK_MESSAGES
            )
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            if metadata.get("event_type") != METADATA_EVENT:
                continue
            if outbox_id in (metadata.get("event_payload") or {}).get("outbox_ids", []):
                return str(message["ts"])
        return None

    def upload_file(
        self,
        channel: str,
        thread_ts: str | None,
        file_name: str,
        title: str,
        content: str | bytes,
        initial_comment: str,
    ) -> str:
        """Share `content` as a file (files_upload_v2: get an upload URL, upload, complete); its file id."""
        response = self.client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            content=content,
            filename=file_name,
            title=title,
            initial_comment=initial_comment,
        )
        return str(response["file"]["id"])

    def find_file(self, channel: str, title: str, *, thread_ts: str) -> str | None:
        """The id of a file titled `title` already shared in the thread, if Slack has one."""
        response = self.client.conversations_replies(channel=channel, ts=thread_ts, limit=LOOKBACK_MESSAGES)
        for message in response.get("messages") or []:
            for shared in message.get("files") or []:
                if shared.get("title") == title:
                    return str(shared["id"])
        return None
