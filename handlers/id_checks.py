"""Requests whose Slack user or channel id TARS could not store are answered before any listener runs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import BoltResponse, Respond

from bot.core.domain_errors import UsageError
from bot.incidents.input_rules import id_problem

_RECORD_ID = re.compile(r"[0-9]{1,10}")


def record_id(text: object, refusal: str) -> int:
    """A record id TARS put in a button or option value; the value is client-controlled, so anything that is
    not a whole positive number TARS could have stored is refused with `refusal`."""
    if not isinstance(text, str) or not _RECORD_ID.fullmatch(text) or not 0 < int(text) < 2**31:
        raise UsageError(refusal)
    return int(text)


def refuse_unstorable_ids(body: dict[str, Any], respond: Respond | None, next: Callable[[], None]) -> Any:
    """Global middleware: a slash command hears why in its ack, a click via its response_url, and a form
    keeps its first input open with the reason."""
    problem = id_problem(body)
    if problem is None:
        next()
        return None
    if body.get("command"):
        return _json({"response_type": "ephemeral", "text": problem})
    if body.get("type") == "view_submission":
        blocks = (body.get("view") or {}).get("blocks") or []
        inputs = [block.get("block_id") for block in blocks if block.get("type") == "input"]
        if inputs:
            return _json({"response_action": "errors", "errors": {inputs[0]: problem}})
        return _json({"response_action": "clear"})
    if respond is not None and body.get("response_url"):
        respond(text=problem, response_type="ephemeral", replace_original=False)
    return BoltResponse(status=200, body="")


def _json(payload: dict[str, Any]) -> BoltResponse:
    return BoltResponse(status=200, body=json.dumps(payload), headers={"content-type": "application/json"})
