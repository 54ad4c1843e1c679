"""LOG_FORMAT=json: one JSON object per line, naming the Slack request and the incident where there is one."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.core.logs import setup_logging
from tests.support import Workspace, run_tars


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The root logger as `LOG_FORMAT=json` configures it, writing into a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    setup_logging("INFO", "json")
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers, root.level = saved[0], saved[1]


def records(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_a_change_is_logged_as_json_naming_its_incident(
    workspace: Workspace, json_lines: io.StringIO
) -> None:
    incident = workspace.declare()
    workspace.set_status(incident.id, "mitigating")
    workspace.wait_until(
        lambda: any(r.get("message") == f"{incident.ref}: status_changed" for r in records(json_lines))
    )
    (line,) = [r for r in records(json_lines) if r.get("message") == f"{incident.ref}: status_changed"]
    assert line["incident"] == incident.ref
    assert line["level"] == "INFO"
    assert {"time", "logger", "request_id"} <= line.keys()


def test_a_listener_logs_with_the_slack_request(json_lines: io.StringIO) -> None:
    from bot.core.logs import about

    with about(request="13345224609.738474920.8088930838d88f008e0", incident="INC-7"):
        logging.getLogger("handlers.test").warning("something to look at")
    (line,) = records(json_lines)
    assert line["request_id"] == "13345224609.738474920.8088930838d88f008e0"
    assert line["incident"] == "INC-7"
    assert line["message"] == "something to look at"


def test_an_unknown_log_format_is_refused_in_one_line() -> None:
    result = run_tars("check-config", env={"LOG_FORMAT": "xml"})
    assert result.returncode == 2
    assert result.stderr.strip() == "tars: LOG_FORMAT must be text or json, not 'xml'"
