"""What Slack would refuse or truncate, and what must never reach a channel from user text.

Written from Slack's published limits and slack_sdk's Block Kit validators, independently of
`bot/slack_limits.py`, so the tests check TARS's output against Slack rather than against itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from sandbox.emulator import RecordedCall, SlackEmulator

# Mass pings and link disguises a person could type; none may reach Slack as markup.
INJECTIONS = (
    "<!here>",
    "<!channel>",
    "<!everyone>",
    "<!subteam^S0ALL>",
    "<!subteam^S0ALL|@everyone-eng>",
    "<@U0VICTIM>",
    "<@W0VICTIM|eve>",
    "<#C0GENERAL>",
    "<https://evil.example|the runbook>",
    "<mailto:x@evil.example|support>",
)
ANGLE_TOKEN = re.compile(r"<[^<>]*>")


def message_problems(text: Any, blocks: Any) -> list[str]:
    """Every way a chat.postMessage / chat.update / response_url message breaks Slack's limits."""
    found: list[str] = []
    if isinstance(text, str) and len(text) > 40_000:
        found.append(f"text is {len(text)} characters")
    if blocks:
        if len(blocks) > 50:
            found.append(f"{len(blocks)} blocks")
        found += _blocks_problems(blocks)
    return found


def view_problems(view: dict[str, Any]) -> list[str]:
    found: list[str] = []
    try:
        View(**view).to_dict()  # titles, submit and close ≤ 24, 1 to 100 blocks, every block
    except Exception as error:
        found.append(f"view: {error}")
    return found + _blocks_problems(view.get("blocks") or [])


def _blocks_problems(blocks: Iterable[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    for block in blocks:
        try:
            Block.parse(block).to_dict()  # type: ignore[union-attr]  # section 3,000; 10 fields; buttons 75/2,000...
        except Exception as error:
            found.append(f"{block.get('type')} block: {error}")
        for field in block.get("fields") or []:
            if len(field.get("text", "")) > 2_000:
                found.append(f"section field of {len(field['text'])} characters")
        if block.get("type") == "context":
            elements = block.get("elements") or []
            if len(elements) > 10:
                found.append(f"context with {len(elements)} elements")
            found += [
                f"context text of {len(e['text'])} characters"
                for e in elements
                if len(e.get("text", "")) > 3_000
            ]
    return found


def outgoing(slack: SlackEmulator) -> list[RecordedCall]:
    """Everything TARS sent for people to read: posts, updates, ephemerals, DMs and response_url replies."""
    methods = ("chat.postMessage", "chat.update", "chat.postEphemeral", "response_url")
    return [call for call in slack.calls if call.method in methods]


def assert_everything_sent_fits(slack: SlackEmulator) -> None:
    for call in outgoing(slack):
        problems = message_problems(call.args.get("text"), call.args.get("blocks"))
        assert not problems, f"{call.method} does not fit Slack: {problems}"
    for call in slack.calls_to("views.open"):
        view = call.args.get("view")
        assert isinstance(view, dict)
        assert not view_problems(view)


def angle_tokens(rendered: Any) -> set[str]:
    """The `<…>` markup in rendered text (or in every string inside blocks)."""
    if isinstance(rendered, str):
        return set(ANGLE_TOKEN.findall(rendered))
    if isinstance(rendered, dict):
        return set().union(*(angle_tokens(value) for value in rendered.values())) if rendered else set()
    if isinstance(rendered, list | tuple):
        return set().union(*(angle_tokens(value) for value in rendered)) if rendered else set()
    return set()


def assert_no_injection(slack: SlackEmulator) -> None:
    for call in outgoing(slack):
        sent = str(call.args.get("text", "")) + repr(call.args.get("blocks") or "")
        for injection in INJECTIONS:
            assert injection not in sent, f"{injection} reached Slack in {call.method}: {sent[:300]}"
