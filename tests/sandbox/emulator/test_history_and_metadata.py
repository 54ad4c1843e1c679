"""Message metadata and the paging of conversations.history / conversations.replies, through slack_sdk."""

from __future__ import annotations

import json

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.metadata import Metadata

from sandbox.emulator import SlackEmulator
from tests.sandbox.emulator.conftest import CHANNEL

OUTBOX = {"event_type": "tars_outbox", "event_payload": {"outbox_id": 41, "incident": "INC-1"}}


def post_numbered(client: WebClient, count: int) -> list[str]:
    return [client.chat_postMessage(channel=CHANNEL, text=f"m{n}")["ts"] for n in range(1, count + 1)]


def texts(response: dict[str, object]) -> list[str]:
    return [m["text"] for m in response["messages"]]  # type: ignore[attr-defined]


def test_metadata_is_stored_and_only_listed_when_asked(emulator: SlackEmulator, client: WebClient) -> None:
    ts = client.chat_postMessage(channel=CHANNEL, text="INC-1 declared", metadata=OUTBOX)["ts"]
    # slack_sdk's Metadata model and a form-encoded JSON string arrive the same way.
    client.chat_postMessage(
        channel=CHANNEL, text="model", metadata=Metadata("tars_outbox", {"outbox_id": 42})
    )
    client.api_call(
        "chat.postMessage", params={"channel": CHANNEL, "text": "form", "metadata": json.dumps(OUTBOX)}
    )

    assert emulator.message(CHANNEL, ts).metadata == OUTBOX
    assert [m.metadata for m in emulator.channel_messages(CHANNEL)][1] == {
        "event_type": "tars_outbox",
        "event_payload": {"outbox_id": 42},
    }
    plain = client.conversations_history(channel=CHANNEL)["messages"]
    assert all("metadata" not in m for m in plain)
    full = client.conversations_history(channel=CHANNEL, include_all_metadata=True)["messages"]
    assert [m["metadata"]["event_payload"].get("outbox_id") for m in full] == [41, 42, 41]


def test_update_replaces_metadata_and_bad_metadata_is_refused(
    emulator: SlackEmulator, client: WebClient
) -> None:
    ts = client.chat_postMessage(channel=CHANNEL, text="INC-1", metadata=OUTBOX)["ts"]
    client.chat_update(channel=CHANNEL, ts=ts, text="INC-1 resolved")
    assert emulator.message(CHANNEL, ts).metadata == OUTBOX  # untouched when not given
    resolved = {"event_type": "tars_outbox", "event_payload": {"outbox_id": 43}}
    client.chat_update(channel=CHANNEL, ts=ts, text="INC-1 resolved", metadata=resolved)
    assert emulator.message(CHANNEL, ts).metadata == resolved

    with pytest.raises(SlackApiError, match="invalid_metadata_format"):
        client.chat_postMessage(channel=CHANNEL, text="x", metadata={"event_payload": {}})
    with pytest.raises(SlackApiError, match="invalid_metadata_format"):
        client.api_call("chat.postMessage", params={"channel": CHANNEL, "text": "x", "metadata": "{not json"})
    assert len(emulator.channel_messages(CHANNEL)) == 1


def test_replies_list_parent_first_and_carry_metadata_on_request(
    emulator: SlackEmulator, client: WebClient
) -> None:
    parent = client.chat_postMessage(channel=CHANNEL, text="card", metadata=OUTBOX)["ts"]
    for n in range(1, 4):
        client.chat_postMessage(channel=CHANNEL, thread_ts=parent, text=f"note {n}")
    replies = client.conversations_replies(channel=CHANNEL, ts=parent)
    assert texts(replies) == ["card", "note 1", "note 2", "note 3"]
    assert "metadata" not in replies["messages"][0]
    with_meta = client.conversations_replies(channel=CHANNEL, ts=parent, include_all_metadata=True)
    assert with_meta["messages"][0]["metadata"] == OUTBOX

    first = client.conversations_replies(channel=CHANNEL, ts=parent, limit=2)
    assert texts(first) == ["card", "note 1"] and first["has_more"] is True
    cursor = first["response_metadata"]["next_cursor"]
    second = client.conversations_replies(channel=CHANNEL, ts=parent, limit=2, cursor=cursor)
    assert texts(second) == ["note 2", "note 3"] and second["has_more"] is False
    assert second["response_metadata"]["next_cursor"] == ""


def test_history_pages_newest_first_with_cursor(client: WebClient) -> None:
    post_numbered(client, 5)
    pages: list[list[str]] = []
    cursor = ""
    while True:
        page = client.conversations_history(channel=CHANNEL, limit=2, cursor=cursor)
        pages.append(texts(page))
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] is bool(cursor)
        if not cursor:
            break
    assert pages == [["m5", "m4"], ["m3", "m2"], ["m1"]]


def test_history_oldest_latest_inclusive(client: WebClient) -> None:
    ts = post_numbered(client, 5)
    window = client.conversations_history(channel=CHANNEL, oldest=ts[1], latest=ts[3])
    assert texts(window) == ["m3"]
    inclusive = client.conversations_history(channel=CHANNEL, oldest=ts[1], latest=ts[3], inclusive=True)
    assert texts(inclusive) == ["m4", "m3", "m2"]
    assert texts(client.conversations_history(channel=CHANNEL, oldest=ts[3])) == ["m5"]
    assert texts(client.conversations_history(channel=CHANNEL, latest=ts[1])) == ["m1"]
    # The newest message matching a window comes first and paging continues towards older ones.
    page = client.conversations_history(channel=CHANNEL, oldest=ts[0], limit=2)
    assert texts(page) == ["m5", "m4"]
    rest = client.conversations_history(
        channel=CHANNEL, oldest=ts[0], limit=2, cursor=page["response_metadata"]["next_cursor"]
    )
    assert texts(rest) == ["m3", "m2"]


def test_history_rejects_bad_arguments(client: WebClient) -> None:
    post_numbered(client, 1)
    with pytest.raises(SlackApiError, match="invalid_cursor"):
        client.conversations_history(channel=CHANNEL, cursor="not-a-cursor")
    with pytest.raises(SlackApiError, match="invalid_ts_oldest"):
        client.conversations_history(channel=CHANNEL, oldest="yesterday")
