"""What a request to `/slack/events` must be before Bolt sees it.

Slack signs every request (v0 HMAC-SHA256 over `v0:{timestamp}:{body}` with the app's signing secret), so the
signature is checked on the raw bytes before anything is parsed. Only then is the body looked at, and only a
well-formed slash command or interaction, seen for the first time, is handed to Bolt. Every refusal is one
short text answer and one log line:

- 413: the body is larger than `MAX_BODY_BYTES` (checked from Content-Length before reading, and the read is
  capped too).
- 401: no signature, a timestamp that is not a whole number or is more than five minutes off, or a signature
  that does not match.
- 400: signed, but not UTF-8, not form-encoded, a `payload=` that is not a JSON object, or without the fields
  Bolt and TARS rely on (see `check_form`). What people typed (control characters, lengths) is left to the
  application, which can say which field is wrong.
- 409: a signature already let in within its window (a replay). Slack never resends a slash command or a
  click; an Events API retry reusing a signature would be refused here too, and do nothing.

When the database that remembers signatures does not answer (the engine gives up connecting within
`bot.core.database.CONNECT_TIMEOUT_SECONDS`), a signed, well-formed request is answered 200 with TARS's own words rather
than a 503 that Slack shows as a generic failure: a slash command gets an ephemeral reply in the HTTP answer; a
click or form is acknowledged (a modal gets the sentence as an error on its first input) and, when the payload
has a response_url, the sentence is posted there privately. Nothing reaches Bolt, so nothing is changed.

The one unsigned request let through is Slack's `ssl_check=1` probe, which Slack sends without a signature; it
is answered 200 and reaches nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import Engine, bindparam, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from bot.comms.announcer import reply_privately
from bot.core.database import autocommit, table_of
from bot.core.metrics import ACK_SECONDS
from bot.ingress.seen_requests import SeenRequest
from bot.slack.rendering import DATABASE_DOWN_TEXT

log = logging.getLogger(__name__)

# What the app behind the door answers for an admitted body: status, headers (each with its values), text.
Answer = tuple[int, dict[str, Sequence[str]], str]
# The app gets the body already parsed and checked: parsing it twice cost more than the signature check, and a
# second parser could read the same bytes differently from the one that checked them.
Dispatch = Callable[[dict[str, Any]], Answer]

# Slack's largest real payloads (a view_submission of a big modal) are tens of kilobytes.
MAX_BODY_BYTES = 1024 * 1024
# Slack's own rule: a request more than five minutes off may be a replay.
WINDOW = timedelta(minutes=5)
# A request may be signed up to WINDOW in the future and still pass, so a replay of it passes the timestamp
# check until 2 x WINDOW after it arrived; one more minute covers clock differences between replicas.
KEEP_SEEN = 2 * WINDOW + timedelta(minutes=1)
PRUNE_EVERY_SECONDS = 60.0
# How long a private "the database is down" reply may take to reach a response_url.
RESPONSE_URL_TIMEOUT_SECONDS = 2

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
# The shape of Slack's ids. Slack says their length may grow, so the ceiling is generous; whether TARS can store
# an id is the application's question, not the front door's.
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,254}")
_TEAM_ID = re.compile(r"T[A-Z0-9]{2,254}")
_ENTERPRISE_ID = re.compile(r"E[A-Z0-9]{2,254}")
_CHANNEL_ID = re.compile(r"[CDG][A-Z0-9]{2,254}")
_COMMAND = re.compile(r"/[^\s/]{1,32}")
_FORM = "application/x-www-form-urlencoded"
# Interactions TARS has listeners for (Bolt answers view_closed itself when nothing listens).
INTERACTION_TYPES = frozenset({"block_actions", "view_submission", "view_closed"})
VIEW_TYPES = frozenset({"modal", "home"})
MAX_FIELDS = 200


class Refusal(Exception):
    def __init__(self, status: int, reason: str, *, level: int = logging.WARNING) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason  # a fixed sentence: never echoes what was sent, so the log line cannot be forged
        self.level = level


class DatabaseDown(Exception):
    """A signed, well-formed request whose replay check could not run: the database did not answer."""

    def __init__(self, form: dict[str, Any], error: SQLAlchemyError) -> None:
        super().__init__(type(error).__name__)
        self.form = form
        self.error_name = type(error).__name__


def _bad(reason: str) -> Refusal:
    return Refusal(400, reason)


# --- the signature ------------------------------------------------------------------------------------------


def verify_signature(signing_secret: str, headers: dict[str, str], body: bytes, now: float) -> str:
    """The request's signature when it is Slack's and recent; raises Refusal(401) otherwise."""
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not timestamp or not signature:
        raise Refusal(401, "no Slack signature")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Refusal(401, "the request timestamp is not a whole number")
    if abs(now - int(timestamp)) > WINDOW.total_seconds():
        raise Refusal(401, "the request timestamp is more than five minutes off")
    signature = signature.lower()
    if not _SIGNATURE.fullmatch(signature):
        raise Refusal(401, "the signature is not a v0 signature")
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise Refusal(401, "the signature does not match")
    return signature


# --- the body -----------------------------------------------------------------------------------------------


def parse_form(content_type: str, body: bytes) -> dict[str, str]:
    """The form fields, strictly: UTF-8, form-encoded, each field once.

    What people typed (control characters, lengths) is the application's to judge: it names the field.
    """
    if content_type.split(";", 1)[0].strip().lower() != _FORM:
        raise _bad("the body is not form-encoded")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, errors="strict", max_num_fields=MAX_FIELDS
        )
    except UnicodeDecodeError:
        raise _bad("the body is not UTF-8") from None
    except ValueError:
        raise _bad("the body is not a form") from None
    if text.startswith("{"):  # Bolt would read this body as JSON
        raise _bad("the body is not a form")
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise _bad("a form field is repeated")
    return fields


def check_form(fields: dict[str, str]) -> dict[str, Any]:
    """The slash command or interaction payload, when it has what Bolt and TARS rely on; else Refusal(400)."""
    if "payload" in fields:
        if len(fields) != 1:
            raise _bad("an interaction carries nothing but `payload`")
        payload = _json_object(fields["payload"])
        check_interaction(payload)
        return payload
    check_command(fields)
    return fields


def check_command(fields: dict[str, str]) -> None:
    if not _COMMAND.fullmatch(fields.get("command", "")):
        raise _bad("a slash command needs `command`")
    _require_id(fields.get("user_id"), _USER_ID, "user_id")
    for name, shape in (
        ("team_id", _TEAM_ID),
        ("channel_id", _CHANNEL_ID),
        ("enterprise_id", _ENTERPRISE_ID),
    ):
        if fields.get(name):
            _require_id(fields[name], shape, name)


def check_interaction(payload: dict[str, Any]) -> None:
    kind = payload.get("type")
    if not _one_of(kind, INTERACTION_TYPES):
        raise _bad("the payload `type` is not an interaction TARS handles")
    user = payload.get("user")
    if not isinstance(user, dict):
        raise _bad("the payload needs a `user` object")
    _require_id(user.get("id"), _USER_ID, "user.id")
    _optional_object_id(payload, "team", _TEAM_ID)
    _optional_object_id(payload, "enterprise", _ENTERPRISE_ID)
    _optional_object_id(payload, "channel", _CHANNEL_ID)
    for name in ("user_id", "channel_id", "thread_ts", "response_url", "trigger_id", "api_app_id", "token"):
        _optional(payload, name, str)
    for name in ("container", "message", "previous_message", "state", "function_data", "event"):
        _optional(payload, name, dict)
    for name in ("function_execution_id", "bot_access_token"):
        _optional(payload, name, str)
    _optional(payload, "authorizations", list)
    if any(not isinstance(item, dict) for item in payload.get("authorizations") or []):
        raise _bad("`authorizations` must be a list of objects")
    urls = _optional(payload, "response_urls", list) or []
    if any(not isinstance(item, dict) or not isinstance(item.get("response_url"), str) for item in urls):
        raise _bad("`response_urls` must be a list of objects with a `response_url`")
    if kind == "block_actions":
        _check_actions(payload.get("actions"))
    view = payload.get("view")
    if kind != "block_actions" or view is not None:
        _check_view(view)


def _check_actions(actions: Any) -> None:
    if not isinstance(actions, list) or not actions:
        raise _bad("block_actions needs a non-empty `actions` list")
    for action in actions:
        if not isinstance(action, dict):
            raise _bad("each action must be an object")
        action_id = action.get("action_id")
        if not isinstance(action_id, str) or not 0 < len(action_id) <= 255:
            raise _bad("each action needs an `action_id`")
        for name in ("block_id", "type", "value", "action_ts"):
            _optional(action, name, str)
        selected = _optional(action, "selected_option", dict)
        if selected is not None and not isinstance(selected.get("value"), str):
            raise _bad("a `selected_option` needs a `value`")
        options = _optional(action, "selected_options", list) or []
        if any(not isinstance(option, dict) for option in options):
            raise _bad("`selected_options` must be a list of objects")


def _check_view(view: Any) -> None:
    if not isinstance(view, dict):
        raise _bad("the payload needs a `view` object")
    for name in ("id", "callback_id"):
        value = view.get(name)
        if not isinstance(value, str) or not value:
            raise _bad("the view needs an `id` and a `callback_id`")
    # Bolt reads the type; a "workflow_step" view would send it looking for fields TARS never gets.
    if not _one_of(view.get("type"), VIEW_TYPES):
        raise _bad("the view `type` is not one TARS shows")
    for name in ("private_metadata", "hash", "team_id", "app_installed_team_id", "root_view_id"):
        _optional(view, name, str)
    state = _optional(view, "state", dict)
    if state is None:
        return
    values = _optional(state, "values", dict) or {}
    for block in values.values():
        if not isinstance(block, dict) or any(not isinstance(element, dict) for element in block.values()):
            raise _bad("view state values must be objects of objects")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise _bad("`payload` is not JSON") from None
    if not isinstance(value, dict):
        raise _bad("`payload` is not a JSON object")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _one_of(value: Any, allowed: frozenset[str]) -> bool:
    return isinstance(value, str) and value in allowed  # (a dict or list is not even hashable)


def _require_id(value: Any, shape: re.Pattern[str], name: str) -> None:
    if not isinstance(value, str) or not shape.fullmatch(value):
        raise _bad(f"`{name}` is missing or is not a Slack id")


def _optional(container: dict[str, Any], name: str, kind: type) -> Any:
    value = container.get(name)
    if value is not None and not isinstance(value, kind):
        raise _bad(f"`{name}` has the wrong type")
    return value


def _optional_object_id(payload: dict[str, Any], name: str, shape: re.Pattern[str]) -> None:
    value = _optional(payload, name, dict)
    if value is not None and value.get("id") is not None:
        _require_id(value.get("id"), shape, f"{name}.id")


# --- replays ------------------------------------------------------------------------------------------------


class ReplayGuard:
    """Remembers the signatures let in, in the database, so every replica refuses a replay.

    One INSERT per request (ON CONFLICT DO NOTHING); at most once a minute per process it also deletes the
    rows no replay could use any more (by the seen_at index).
    """

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._next_prune = 0.0
        # One statement on its own needs no BEGIN and COMMIT round trips; the row is the whole transaction.
        self._autocommit = autocommit(engine)
        # TARS runs on Postgres or SQLite; both spell it INSERT .. ON CONFLICT DO NOTHING. Built once: building
        # it costs more than running it.
        upsert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._remember = (
            upsert(table_of(SeenRequest))
            .values(signature=bindparam("signature"), seen_at=bindparam("seen_at"))
            .on_conflict_do_nothing(index_elements=["signature"])
        )
        self._on_postgres = engine.dialect.name == "postgresql"
        # Its SQL for psycopg, which prepares it on each connection after a few runs.
        self._remember_sql = str(self._remember.compile(dialect=engine.dialect))

    def first_time(self, signature: str) -> bool:
        now = self.now()
        fresh = (
            self._remember_driver(signature, now)
            if self._on_postgres
            else self._remember_core(signature, now)
        )
        self._prune(now)
        return fresh

    def _remember_core(self, signature: str, now: datetime) -> bool:
        with self._autocommit.connect() as connection:
            # SQLAlchemy 2.1 reports an INSERT's rowcount only when asked to keep it.
            result = connection.execute(
                self._remember,
                {"signature": signature, "seen_at": now},
                execution_options={"preserve_rowcount": True},
            )
            return result.rowcount == 1

    def _remember_driver(self, signature: str, now: datetime) -> bool:
        """The same INSERT straight through psycopg on a pooled connection.

        Every request pays for this before Bolt sees it. Through an SQLAlchemy Connection it cost 280 us of CPU;
        checked out from the same pool and run by psycopg, 150 us (measured on Postgres). The pool still hands
        the connection out (pinging it when it sat idle) and takes it back.
        """
        database_error = self.engine.dialect.loaded_dbapi.Error
        try:
            pooled = self.engine.raw_connection()
        except database_error as error:
            raise self._failed(error) from error
        try:
            driver: Any = pooled.driver_connection
            driver.autocommit = True  # the row is the whole transaction, as in _remember_core
            try:
                cursor = driver.execute(self._remember_sql, {"signature": signature, "seen_at": now})
                return bool(cursor.rowcount == 1)
            finally:
                driver.autocommit = False  # how the pool's other users expect a connection
        except database_error as error:
            # A connection that failed may be dead: the pool must not hand it out again.
            pooled.invalidate(error)
            raise self._failed(error) from error
        finally:
            pooled.close()

    def _failed(self, error: Exception) -> OperationalError:
        """What users of the engine get when the database fails, so the front door says it is down."""
        return OperationalError(self._remember_sql, None, error)

    def _prune(self, now: datetime) -> None:
        with self._lock:
            if time.monotonic() < self._next_prune:
                return
            self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
        try:
            with self.engine.begin() as connection:
                connection.execute(delete(SeenRequest).where(SeenRequest.seen_at < now - KEEP_SEEN))
        except SQLAlchemyError as error:  # the next prune will catch up; the insert already succeeded
            log.warning("could not delete old seen_requests rows: %s", type(error).__name__)


# --- the WSGI layer -----------------------------------------------------------------------------------------


class FrontDoor:
    """WSGI middleware in front of Bolt's handler: only signed, well-formed, first-seen requests pass."""

    def __init__(
        self,
        dispatch: Dispatch,
        *,
        signing_secret: str,
        replays: ReplayGuard,
        max_body: int = MAX_BODY_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not signing_secret:
            raise ValueError("the front door needs the Slack signing secret")
        self.dispatch = dispatch
        self.signing_secret = signing_secret
        self.replays = replays
        self.max_body = max_body
        self.clock = clock

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with ACK_SECONDS.time():
            return self._answer(environ, start_response)

    def _answer(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        try:
            form = self._admit(environ)
        except Refusal as refusal:
            log.log(
                refusal.level,
                "refused a Slack request from %s with %s: %s",
                environ.get("REMOTE_ADDR", "?"),
                refusal.status,
                refusal.reason,
            )
            return _answer(start_response, refusal.status, refusal.reason)
        except DatabaseDown as down:
            log.warning(
                "answered a Slack request from %s without acting on it: the database is unavailable (%s)",
                environ.get("REMOTE_ADDR", "?"),
                down.error_name,
            )
            return _database_down_answer(start_response, down.form)
        if form is None:  # Slack's unsigned ssl_check probe
            return _answer(start_response, 200, "")
        status, headers, text = self.dispatch(form)
        data = text.encode()
        header_list = [
            (name, value)
            for name, values in headers.items()
            if name.lower() != "content-length"
            for value in values
        ]
        start_response(
            f"{status} {HTTPStatus(status).phrase}", [*header_list, ("Content-Length", str(len(data)))]
        )
        return [data]

    def _admit(self, environ: dict[str, Any]) -> dict[str, Any] | None:
        body = self._read(environ)
        headers = {
            "x-slack-request-timestamp": environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", ""),
            "x-slack-signature": environ.get("HTTP_X_SLACK_SIGNATURE", ""),
        }
        content_type = str(environ.get("CONTENT_TYPE", ""))
        if not headers["x-slack-signature"] and _is_ssl_check(content_type, body):
            return None
        signature = verify_signature(self.signing_secret, headers, body, self.clock())
        try:
            form = check_form(parse_form(content_type, body))
        except Refusal:
            raise
        # A shape the checks did not foresee is still the sender's mistake, not a 500; logged as an error so
        # the check gets fixed.
        except Exception as error:
            reason = f"the body could not be understood ({type(error).__name__})"
            raise Refusal(400, reason, level=logging.ERROR) from None
        try:
            fresh = self.replays.first_time(signature)
        except SQLAlchemyError as error:
            raise DatabaseDown(form, error) from None
        if not fresh:
            raise Refusal(409, "this signed request was already received (a replay)")
        return form

    def _read(self, environ: dict[str, Any]) -> bytes:
        declared = str(environ.get("CONTENT_LENGTH") or "0").strip()
        if not declared.isascii() or not declared.isdigit():
            raise _bad("Content-Length is not a number")
        length = int(declared)
        if length > self.max_body:
            raise Refusal(413, f"the body is larger than {self.max_body} bytes")
        stream = environ.get("wsgi.input")
        # Never more than Content-Length (itself at most max_body), whatever the client keeps sending.
        return bytes(stream.read(length)) if stream is not None and length else b""


def _is_ssl_check(content_type: str, body: bytes) -> bool:
    if len(body) > 1024:
        return False
    try:
        return parse_form(content_type, body).get("ssl_check") == "1"
    except Refusal:
        return False


def _database_down_answer(start_response: Callable[..., Any], form: dict[str, Any]) -> list[bytes]:
    """200 with DATABASE_DOWN_TEXT where the person will see it; `form` has passed `check_form`."""
    if "command" in form and "type" not in form:  # a slash command: the HTTP answer is the reply
        return _answer_json(start_response, {"response_type": "ephemeral", "text": DATABASE_DOWN_TEXT})
    response_url = _response_url(form)
    if response_url:
        # After the answer, so a slow response_url cannot hold the acknowledgement past Slack's 3 s.
        threading.Thread(
            target=_tell_privately, args=(response_url,), name="tars-database-down", daemon=True
        ).start()
    if form.get("type") == "view_submission":
        block_id = _first_input_block_id(form.get("view") or {})
        if block_id:
            return _answer_json(
                start_response, {"response_action": "errors", "errors": {block_id: DATABASE_DOWN_TEXT}}
            )
    return _answer(start_response, 200, "")


def _response_url(payload: dict[str, Any]) -> str | None:
    url = payload.get("response_url")
    if isinstance(url, str) and url:
        return url
    for entry in payload.get("response_urls") or []:  # check_interaction made these dicts with a str url
        if entry["response_url"]:
            return str(entry["response_url"])
    return None


def _first_input_block_id(view: dict[str, Any]) -> str | None:
    for block in view.get("blocks") or []:
        if (
            isinstance(block, dict)
            and block.get("type") == "input"
            and isinstance(block.get("block_id"), str)
        ):
            return str(block["block_id"])
    return None


def _tell_privately(response_url: str) -> None:
    try:
        reply_privately(response_url, DATABASE_DOWN_TEXT, timeout=RESPONSE_URL_TIMEOUT_SECONDS)
    except Exception as error:  # the acknowledgement went out; the log is all that is left
        log.warning("could not tell the person the database is unavailable: %s", type(error).__name__)


def _answer_json(start_response: Callable[..., Any], answer: dict[str, Any]) -> list[bytes]:
    data = json.dumps(answer).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


def _answer(start_response: Callable[..., Any], status: int, text: str) -> list[bytes]:
    data = text.encode()
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))],
    )
    return [data]
