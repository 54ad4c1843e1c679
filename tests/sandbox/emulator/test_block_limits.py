"""Slack's size limits on messages and views: refused through slack_sdk exactly as Slack refuses them."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from sandbox.emulator import SlackEmulator
from sandbox.emulator.block_limits import find_limit_problems
from tests.sandbox.emulator.conftest import CHANNEL


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(**overrides: Any) -> dict[str, Any]:
    return {"type": "button", "action_id": "ack", "text": {"type": "plain_text", "text": "Ack"}, **overrides}


def option(text: str = "P1", value: str = "P1") -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text}, "value": value}


def modal(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "declare",
        "title": {"type": "plain_text", "text": "Declare incident"},
        "submit": {"type": "plain_text", "text": "Declare"},
        "blocks": [
            {
                "type": "input",
                "block_id": "title",
                "label": {"type": "plain_text", "text": "Title"},
                "element": {"type": "plain_text_input", "action_id": "value", "max_length": 150},
            }
        ],
        **overrides,
    }


# Each entry: a block that breaks exactly one published limit, and the json-pointer Slack names.
OVERSIZE_BLOCKS: list[tuple[str, dict[str, Any], str, str]] = [
    ("section text", section("x" * 3001), "/blocks/0/text/text", "must be less than 3001 characters"),
    (
        "section field text",
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]},
        "/blocks/0/fields/0/text",
        "must be less than 2001 characters",
    ),
    (
        "section field count",
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "x"}] * 11},
        "/blocks/0/fields",
        "no more than 10 items allowed",
    ),
    (
        "header text",
        {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}},
        "/blocks/0/text/text",
        "must be less than 151 characters",
    ),
    (
        "context elements",
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "x"}] * 11},
        "/blocks/0/elements",
        "no more than 10 items allowed",
    ),
    (
        "actions elements",
        {"type": "actions", "elements": [button()] * 26},
        "/blocks/0/elements",
        "no more than 25 items allowed",
    ),
    (
        "button text",
        {"type": "actions", "elements": [button(text={"type": "plain_text", "text": "x" * 76})]},
        "/blocks/0/elements/0/text/text",
        "must be less than 76 characters",
    ),
    (
        "button value",
        {"type": "actions", "elements": [button(value="x" * 2001)]},
        "/blocks/0/elements/0/value",
        "must be less than 2001 characters",
    ),
    (
        "action_id",
        {"type": "actions", "elements": [button(action_id="a" * 256)]},
        "/blocks/0/elements/0/action_id",
        "must be less than 256 characters",
    ),
    (
        "block_id",
        {**section("x"), "block_id": "b" * 256},
        "/blocks/0/block_id",
        "must be less than 256 characters",
    ),
    (
        "option text",
        {
            **section("x"),
            "accessory": {"type": "static_select", "action_id": "s", "options": [option("x" * 76)]},
        },
        "/blocks/0/accessory/options/0/text/text",
        "must be less than 76 characters",
    ),
    (
        "option value",
        {"type": "actions", "elements": [{"type": "static_select", "options": [option(value="v" * 151)]}]},
        "/blocks/0/elements/0/options/0/value",
        "must be less than 151 characters",
    ),
    (
        "static_select options",
        {"type": "actions", "elements": [{"type": "static_select", "options": [option()] * 101}]},
        "/blocks/0/elements/0/options",
        "no more than 100 items allowed",
    ),
]


@pytest.mark.parametrize(
    ("block", "pointer", "wording"),
    [case[1:] for case in OVERSIZE_BLOCKS],
    ids=[case[0] for case in OVERSIZE_BLOCKS],
)
def test_post_message_refuses_each_oversize_block(
    emulator: SlackEmulator, bare_client: WebClient, block: dict[str, Any], pointer: str, wording: str
) -> None:
    with pytest.raises(SlackApiError) as refused:
        bare_client.chat_postMessage(channel=CHANNEL, text="INC-1", blocks=[section("ok"), block])
    expected = f"[ERROR] {wording} [json-pointer:{pointer.replace('/blocks/0', '/blocks/1', 1)}]"
    assert refused.value.response.status_code == 200
    assert refused.value.response["error"] == "invalid_blocks"
    assert refused.value.response["response_metadata"]["messages"] == [expected]
    assert emulator.channel_messages(CHANNEL) == []


def test_blocks_at_the_limits_are_accepted(emulator: SlackEmulator, bare_client: WebClient) -> None:
    blocks = [
        section("x" * 3000),
        {"type": "header", "text": {"type": "plain_text", "text": "x" * 150}},
        {
            "type": "actions",
            "elements": [button(text={"type": "plain_text", "text": "x" * 75}, value="v" * 2000)],
        },
        {"type": "brand_new_block", "anything": "y" * 10_000},  # unknown types are not Slack's to refuse here
    ] + [{"type": "divider"}] * 46
    bare_client.chat_postMessage(channel=CHANNEL, text="t" * 40_000, blocks=blocks)
    [stored] = emulator.channel_messages(CHANNEL)
    assert len(stored.blocks) == 50 and len(stored.text) == 40_000


def test_message_text_and_block_count(emulator: SlackEmulator, bare_client: WebClient) -> None:
    with pytest.raises(SlackApiError) as too_long:
        bare_client.chat_postMessage(channel=CHANNEL, text="x" * 40_001)
    assert too_long.value.response["error"] == "msg_too_long"

    with pytest.raises(SlackApiError) as too_many:
        bare_client.chat_postMessage(channel=CHANNEL, text="x", blocks=[{"type": "divider"}] * 51)
    assert too_many.value.response["error"] == "invalid_blocks"
    assert too_many.value.response["response_metadata"]["messages"] == [
        "[ERROR] no more than 50 items allowed [json-pointer:/blocks]"
    ]
    assert emulator.channel_messages(CHANNEL) == []


def test_update_and_ephemeral_are_checked_too(emulator: SlackEmulator, bare_client: WebClient) -> None:
    ts = bare_client.chat_postMessage(channel=CHANNEL, text="INC-1", blocks=[section("open")])["ts"]
    with pytest.raises(SlackApiError) as update:
        bare_client.chat_update(channel=CHANNEL, ts=ts, text="INC-1", blocks=[section("x" * 3001)])
    assert update.value.response["error"] == "invalid_blocks"
    stored = emulator.message(CHANNEL, ts)
    assert (stored.blocks, stored.edits) == ([section("open")], 0)

    with pytest.raises(SlackApiError) as ephemeral:
        bare_client.chat_postEphemeral(channel=CHANNEL, user="U1", text="x" * 40_001)
    assert ephemeral.value.response["error"] == "msg_too_long"
    assert emulator.ephemerals() == []


def test_response_url_refuses_oversize_bodies_with_400(emulator: SlackEmulator) -> None:
    hook = WebhookClient(emulator.new_response_url(CHANNEL, "U1"))
    refused = hook.send(text="INC-1", blocks=[section("x" * 3001)], response_type="in_channel")
    assert (refused.status_code, refused.body) == (400, "invalid_blocks")
    too_long = hook.send(text="x" * 40_001)
    assert (too_long.status_code, too_long.body) == (400, "msg_too_long")
    assert emulator.channel_messages(CHANNEL) == [] and emulator.ephemerals() == []
    assert hook.send(text="fine").status_code == 200


@pytest.mark.parametrize(
    ("overrides", "pointer", "wording"),
    [
        (
            {"title": {"type": "plain_text", "text": "x" * 25}},
            "/view/title/text",
            "must be less than 25 characters",
        ),
        (
            {"submit": {"type": "plain_text", "text": "x" * 25}},
            "/view/submit/text",
            "must be less than 25 characters",
        ),
        (
            {"close": {"type": "plain_text", "text": "x" * 25}},
            "/view/close/text",
            "must be less than 25 characters",
        ),
        ({"blocks": [{"type": "divider"}] * 101}, "/view/blocks", "no more than 100 items allowed"),
        ({"private_metadata": "m" * 3001}, "/view/private_metadata", "must be less than 3001 characters"),
        ({"callback_id": "c" * 256}, "/view/callback_id", "must be less than 256 characters"),
        (
            {
                "blocks": [
                    {
                        "type": "input",
                        "label": {"type": "plain_text", "text": "x" * 2001},
                        "element": {"type": "plain_text_input"},
                    }
                ]
            },
            "/view/blocks/0/label/text",
            "must be less than 2001 characters",
        ),
        (
            {
                "blocks": [
                    {
                        "type": "input",
                        "label": {"type": "plain_text", "text": "Notes"},
                        "element": {"type": "plain_text_input", "max_length": 3001},
                    }
                ]
            },
            "/view/blocks/0/element/max_length",
            "must be less than 3001",
        ),
    ],
    ids=["title", "submit", "close", "blocks", "private_metadata", "callback_id", "label", "max_length"],
)
def test_views_open_refuses_oversize_views(
    emulator: SlackEmulator, bare_client: WebClient, overrides: dict[str, Any], pointer: str, wording: str
) -> None:
    trigger = emulator.new_trigger_id("U1")
    with pytest.raises(SlackApiError) as refused:
        bare_client.views_open(trigger_id=trigger, view=modal(**overrides))
    assert refused.value.response["error"] == "invalid_arguments"
    assert refused.value.response["response_metadata"]["messages"] == [
        f"[ERROR] {wording} [json-pointer:{pointer}]"
    ]
    assert emulator.views() == []
    # The refused call did not use up the trigger.
    assert bare_client.views_open(trigger_id=trigger, view=modal())["ok"]


def test_views_update_push_and_publish_are_checked(emulator: SlackEmulator, bare_client: WebClient) -> None:
    view_id = bare_client.views_open(trigger_id=emulator.new_trigger_id("U1"), view=modal())["view"]["id"]
    long_title = {"title": {"type": "plain_text", "text": "Declare a brand new incident"}}
    with pytest.raises(SlackApiError, match="invalid_arguments"):
        bare_client.views_update(view_id=view_id, view=modal(**long_title))
    assert emulator.views()[0].view == modal()
    with pytest.raises(SlackApiError, match="invalid_arguments"):
        bare_client.views_push(trigger_id=emulator.new_trigger_id("U1"), view=modal(**long_title))
    with pytest.raises(SlackApiError, match="invalid_arguments"):
        bare_client.views_publish(user_id="U1", view={"type": "home", "blocks": [{"type": "divider"}] * 101})
    assert len(emulator.views("U1")) == 1


def test_find_limit_problems_reports_every_problem() -> None:
    payload = {
        "text": "x" * 40_001,
        "blocks": [section("x" * 3001), {"type": "header", "text": {"text": "h" * 151}}],
    }
    problems = find_limit_problems(payload, "message")
    assert [p.error for p in problems] == ["msg_too_long", "invalid_blocks", "invalid_blocks"]
    assert (
        problems[2].message == "[ERROR] must be less than 151 characters [json-pointer:/blocks/1/text/text]"
    )
    assert find_limit_problems({"text": "fine", "blocks": "not a list"}, "message") == []
    assert find_limit_problems(modal(), "view") == []
