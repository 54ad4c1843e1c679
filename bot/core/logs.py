"""Logging: plain text for a terminal, or one JSON object per line (LOG_FORMAT=json) for a log pipeline.

Every record carries the Slack request and the incident it is about, when there is one, from context variables
set where that is known: the front door and the listeners (the request), the flows and the delivery workers (the
incident). Context variables do not follow work onto another thread, so each of those sets its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

LOG_FORMATS = ("text", "json")

_REQUEST: ContextVar[str | None] = ContextVar("tars_request", default=None)
_INCIDENT: ContextVar[str | None] = ContextVar("tars_incident", default=None)


@contextmanager
def about(*, request: str | None = None, incident: str | None = None) -> Iterator[None]:
    """Within this block, log records name this Slack request and/or incident."""
    tokens = []
    if request is not None:
        tokens.append((_REQUEST, _REQUEST.set(request)))
    if incident is not None:
        tokens.append((_INCIDENT, _INCIDENT.set(incident)))
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


def request_id(body: dict[str, Any]) -> str | None:
    """Slack's trigger_id for the request (unique per command, click or submission), so TARS's lines can be
    matched with what Slack shows for it."""
    trigger = body.get("trigger_id")
    return str(trigger) if trigger else None


class _Context(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # A record may name its incident itself (`extra=`); the context fills in the rest.
        if getattr(record, "request_id", None) is None:
            record.request_id = _REQUEST.get()
        if getattr(record, "incident", None) is None:
            record.incident = _INCIDENT.get()
        return True


def setup_logging(level: str, log_format: str = "text") -> None:
    """Configure the root logger once, at start-up."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler()
    handler.addFilter(_Context())
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(incident)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # APScheduler logs two lines per tick at INFO; TARS logs what a tick did itself, at DEBUG.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    quiet_server_queue()


def quiet_server_queue() -> None:
    """waitress warns "Task queue depth is N" for every request that waits for a thread: under a P1's burst
    that was a line per click and a fortieth of the CPU. /metrics' ack latency shows the same backlog."""
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
