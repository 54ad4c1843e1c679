"""Where a failing listener becomes a private reply (worded by `bot.slack.error_replies`), whatever it had sent.

Listeners are wrapped by `guarded` rather than relying only on Bolt's `app.error`: when a listener raises just
after `ack()`, Bolt (1.x, process_before_response=False) can discard the ack it has not yet sent and answer Slack
with 404. Catching inside the listener keeps the ack and still gives the user a specific reply.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.core.logs import about, request_id
from bot.core.metrics import REQUESTS
from bot.incidents.command_parser import SUBCOMMANDS
from bot.slack.error_replies import expected, friendly_message
from handlers.private_replies import reply_privately

log = logging.getLogger(__name__)

Listener = Callable[..., None]


class ListenerActivity:
    """How many listeners are running, so a caller can wait for the work a request started to finish."""

    def __init__(self) -> None:
        self._running = 0
        self._changed = threading.Condition()

    def __enter__(self) -> None:
        with self._changed:
            self._running += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._running == 0, timeout=timeout)


LISTENERS = ListenerActivity()

# Arguments Bolt can inject that a guarded listener may ask for.
_INJECTABLE = {"ack", "body", "respond", "client", "action", "command", "view", "context"}


def _log_unexpected(error: Exception) -> None:
    if not expected(error):
        log.error("unhandled error in a Slack listener", exc_info=error)


def handle_error(error: Exception, body: dict[str, Any], respond: Respond | None, client: WebClient) -> None:
    _log_unexpected(error)
    try:
        reply_privately(body, respond, client, friendly_message(error))
    except Exception:  # the reply itself failed; the log is all that is left
        log.exception("could not tell the user about %r", error)


def request_kind(body: dict[str, Any], action: dict[str, Any] | None, view: dict[str, Any] | None) -> str:
    """What a request was, for /metrics: `/incident <sub-command>`, a button's action_id or a form's callback_id
    (both TARS's own: Bolt only runs the listeners registered for them)."""
    if body.get("command"):
        words = str(body.get("text") or "").split(maxsplit=1)
        sub = words[0].lower() if words else "help"
        # A fixed set of label values: a typo must not become a new time series.
        return f"/incident {sub if sub in SUBCOMMANDS else 'other'}"
    if action is not None:
        return f"button {action.get('action_id', '?')}"
    if view is not None:
        return f"form {view.get('callback_id', '?')}"
    return "other"


def guarded(listener: Listener) -> Listener:
    """Run `listener` with the arguments it names; turn anything it raises into a private reply."""
    wanted = inspect.getfullargspec(listener).args
    unknown = set(wanted) - _INJECTABLE
    if unknown:
        raise TypeError(f"{listener.__name__} asks for {sorted(unknown)}, which guarded() does not pass")

    def run(
        ack: Ack,
        body: dict[str, Any],
        respond: Respond | None,
        client: WebClient,
        action: dict[str, Any] | None,
        command: dict[str, Any] | None,
        view: dict[str, Any] | None,
        context: Any,
    ) -> None:
        given = {
            "ack": ack,
            "body": body,
            "respond": respond,
            "client": client,
            "action": action,
            "command": command,
            "view": view,
            "context": context,
        }
        kind = request_kind(body, action, view)
        with LISTENERS, about(request=request_id(body)):
            try:
                listener(**{name: given[name] for name in wanted})
                REQUESTS.labels(kind, "ok").inc()
            except Exception as error:
                REQUESTS.labels(kind, "refused" if expected(error) else "error").inc()
                if ack.response is None and body.get("command"):
                    # Not answered yet: the refusal itself is the answer, with nothing else to send.
                    _log_unexpected(error)
                    ack(text=friendly_message(error), response_type="ephemeral")
                    return
                if ack.response is None:
                    ack()
                handle_error(error, body, respond, client)

    run.__name__ = listener.__name__
    run.__qualname__ = listener.__qualname__
    return run
