"""A Slack-compatible Web API emulator served on loopback.

``slack_sdk.WebClient(base_url=emulator.base_url)`` talks to it like it talks to slack.com; every call is
recorded so tests and the interactive sandbox can inspect what the app did. Standard library only, and no
slack_bolt import: this module ships with the bot and must stay usable without the app framework.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import email.parser
import email.policy
import hashlib
import json
import logging
import mimetypes
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from sandbox.emulator.block_limits import find_limit_problems
from sandbox.emulator.rate_limits import RateLimiter

logger = logging.getLogger(__name__)

BOT_ID = "B0TARS"
APP_ID = "A0TARS"

# Fields Slack accepts either as structured JSON or as a JSON-encoded string inside form data.
_JSON_STRING_FIELDS: dict[str, str] = {
    "blocks": "invalid_blocks_format",
    "attachments": "invalid_attachments",
    "view": "invalid_arguments",
    "metadata": "invalid_metadata_format",
}

_CHANNEL_NAME_RE = re.compile(r"^[a-z0-9_\-\u00c0-\uffff]{1,80}$")

# Where files.getUploadURLExternal points uploads (Slack's own is https://files.slack.com/upload/v1/...).
_UPLOAD_PATH = "/upload/v1/"

# Slack's cursors are opaque base64 strings; "next_ts:<ts>" is what its history cursors decode to.
_CURSOR_PREFIX = "next_ts:"


# The pseudo-method under which a slash command's HTTP answer is recorded.
COMMAND_ACK = "command_ack"


@dataclass(frozen=True)
class RecordedCall:
    """One request the emulator received, with the answer it gave."""

    method: str
    args: dict[str, Any]
    token: str | None
    at: float
    response: dict[str, Any]
    http_status: int

    @property
    def ok(self) -> bool:
        return self.http_status == 200 and bool(self.response.get("ok"))


@dataclass(frozen=True)
class ArrivedCall:
    """A Web API request as it reached the emulator: before any delay() and before it was answered.

    A call that has arrived but is not yet in ``calls`` is in flight, e.g. held by ``delay()``.
    """

    method: str
    args: dict[str, Any]
    at: float


@dataclass
class Message:
    """A message as the channel currently shows it (after chat.update / chat.delete)."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    user: str
    thread_ts: str | None
    edits: int
    deleted: bool
    # Message metadata as stored: {"event_type": str, "event_payload": dict}.
    metadata: dict[str, Any] | None = None
    # File objects shared with this message by files.completeUploadExternal.
    files: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class UploadedFile:
    """A file uploaded through files.getUploadURLExternal + files.completeUploadExternal."""

    id: str
    filename: str
    title: str
    content: bytes
    # None when the upload was completed without sharing it anywhere.
    channel: str | None
    thread_ts: str | None


@dataclass
class View:
    """A modal opened through views.open / views.push."""

    id: str
    user_id: str
    view: dict[str, Any]
    hash: str
    closed: bool


class _ApiError(Exception):
    """Aborts a Web API handler with Slack's ``{"ok": false, "error": ...}`` answer."""

    def __init__(
        self,
        error: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = headers or {}
        # Further fields of the error answer, e.g. response_metadata.messages naming the broken limit.
        self.extra = extra or {}

    def response(self) -> dict[str, Any]:
        return {"ok": False, "error": self.error, **copy.deepcopy(self.extra)}


@dataclass
class _Failure:
    status: int
    error: str | None
    retry_after: int | None


@dataclass(frozen=True)
class _Fault:
    """What happens to the HTTP answer after a call was processed: held back, then maybe never sent."""

    stall_seconds: float
    drop_connection: bool


@dataclass
class _PendingFile:
    id: str
    filename: str
    length: int
    content: bytes | None = None
    completed: bool = False


@dataclass(frozen=True)
class _HttpAnswer:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]
    fault: _Fault | None = None


@dataclass
class _ResponseUrl:
    channel: str
    user: str
    # Set when the URL came from an interaction on a stored message, so replace_/delete_original can act on it.
    message_ts: str | None


@dataclass
class _ViewMeta:
    root_view_id: str
    previous_view_id: str | None
    external_id: str | None


@dataclass
class _Channel:
    id: str
    name: str
    is_private: bool = False
    is_archived: bool = False
    created: int = field(default_factory=lambda: int(time.time()))
    creator: str | None = None
    topic: str = ""
    purpose: str = ""
    members: set[str] = field(default_factory=set)


def _always(_call: object) -> bool:
    return True


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _short_id(*parts: Any) -> str:
    raw = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha1(raw).hexdigest()[:10].upper()


def with_generated_ids(blocks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return a deep copy of ``blocks`` with missing block_id / action_id filled in.

    Slack assigns these when the app omits them and echoes them back in interaction payloads; deriving them
    from position and content keeps them stable between the message copy and the payload built from it.
    """
    result: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        filled = copy.deepcopy(block)
        filled.setdefault("block_id", _short_id("block", index, block)[:5])
        elements: list[Any] = []
        if isinstance(filled.get("elements"), list) and filled.get("type") == "actions":
            elements = filled["elements"]
        for key in ("accessory", "element"):
            if isinstance(filled.get(key), dict):
                elements.append(filled[key])
        for el_index, element in enumerate(elements):
            if isinstance(element, dict) and element.get("type") not in (None, "image"):
                element.setdefault("action_id", _short_id("action", index, el_index, element)[:5])
        result.append(filled)
    return result


def _parse_ts(value: Any, error: str) -> Decimal | None:
    """A Slack timestamp argument as an exact number (floats would blur microsecond neighbours)."""
    if value is None or value == "":
        return None
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        raise _ApiError(error) from None
    if not parsed.is_finite():
        raise _ApiError(error)
    return parsed


def _encode_cursor(ts: str) -> str:
    return base64.b64encode(f"{_CURSOR_PREFIX}{ts}".encode()).decode()


def _decode_cursor(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        decoded = base64.b64decode(str(value), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise _ApiError("invalid_cursor") from None
    if not decoded.startswith(_CURSOR_PREFIX):
        raise _ApiError("invalid_cursor")
    return _parse_ts(decoded[len(_CURSOR_PREFIX) :], "invalid_cursor")


def _tz_details(tz: str) -> tuple[str, int]:
    try:
        now = datetime.now(ZoneInfo(tz))
    except Exception:
        # Containers without tzdata must not make add_user fail; UTC is a harmless stand-in.
        return tz, 0
    offset = now.utcoffset()
    return now.tzname() or tz, int(offset.total_seconds()) if offset else 0


def _summarise(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 makes bursts of concurrent clients wait for a 1 s SYN retry.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: SlackEmulator) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "SlackEmulator/1.0"

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        # The default handler writes every request to stderr, which drowns test output and the REPL.
        logger.debug("emulator: " + format, *args)

    def _dispatch(self) -> None:
        emulator = self.server.emulator
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            answer = emulator._handle_http(self.command, self.path, dict(self.headers.items()), body)
        except Exception:
            logger.exception("Slack emulator failed to handle %s %s", self.command, self.path)
            answer = _HttpAnswer(
                500, "application/json; charset=utf-8", b'{"ok":false,"error":"internal_error"}', {}
            )
        fault = answer.fault
        if fault is not None and fault.stall_seconds > 0:
            # Waiting on the stop event rather than sleeping lets stop() release stalled answers at once.
            emulator._stopping.wait(fault.stall_seconds)
        if fault is not None and fault.drop_connection:
            # Close without a status line: the client reads end-of-stream (RemoteDisconnected), exactly
            # what it sees when Slack took the call but the connection died before the answer arrived.
            self.close_connection = True
            return
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its timeout fired); nothing useful left to do with the answer.
            logger.debug("client went away before the emulator answered %s", self.path)


class SlackEmulator:
    """Slack Web API look-alike on loopback that records every call it receives."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_token: str | None = None,
        bot_user_id: str = "UTARSBOT",
        team_id: str = "T0TARS",
        team_domain: str = "tars-sandbox",
        rate_limits: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.bot_token = bot_token
        self.bot_user_id = bot_user_id
        self.team_id = team_id
        self.team_domain = team_domain

        # One re-entrant lock guards all state; the Condition shares it so wait_for sees calls atomically.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

        self._calls: list[RecordedCall] = []
        self._arrivals: list[ArrivedCall] = []
        self._subscribers: list[Callable[[RecordedCall], None]] = []
        self._last_ts_us = 0
        self._counter = 0

        self._users: dict[str, dict[str, Any]] = {}
        self._usergroups: dict[str, dict[str, Any]] = {}
        self._messages: dict[str, dict[str, Message]] = {}
        self._extras: dict[tuple[str, str], dict[str, Any]] = {}
        self._channels: dict[str, _Channel] = {}
        self._dm_users: dict[str, list[str]] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._triggers: dict[str, str] = {}
        self._used_triggers: set[str] = set()
        self._views: dict[str, View] = {}
        self._view_meta: dict[str, _ViewMeta] = {}
        self._home_views: dict[str, dict[str, Any]] = {}
        self._reactions: dict[tuple[str, str], dict[str, list[str]]] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._delays: dict[str, float] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._rate_limits_on = rate_limits
        self._rate_limiter = RateLimiter()
        self._files: dict[str, _PendingFile] = {}
        self._upload_tokens: dict[str, str] = {}
        self._uploads: list[UploadedFile] = []
        # ids of response_url calls that rewrote a stored channel message; kept beside the call because the
        # recorded response must stay exactly {"ok": true}, as Slack answers.
        self._replaced_originals: set[int] = set()

        self.add_user(bot_user_id, "tars", "TARS", is_bot=True)

        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "conversations.join": self._conversations_join,
            "conversations.create": self._conversations_create,
            "conversations.invite": self._conversations_invite,
            "conversations.setTopic": self._conversations_set_topic,
            "conversations.setPurpose": self._conversations_set_purpose,
            "conversations.archive": self._conversations_archive,
            "conversations.members": self._conversations_members,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "users.list": self._users_list,
            "users.lookupByEmail": self._users_lookup_by_email,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
            "views.publish": self._views_publish,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "pins.add": self._pins_add,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
        }

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SlackEmulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"slack-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        if self._server is None:
            raise RuntimeError("SlackEmulator is not started; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        # WebClient joins method names onto base_url with urljoin, which needs the trailing slash.
        return f"{self.root_url}/api/"

    # ------------------------------------------------------------------ inspection

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[RecordedCall]:
        with self._lock:
            return [c for c in self._calls if c.method == method]

    def wait_for(
        self,
        method: str,
        predicate: Callable[[RecordedCall], bool] = _always,
        timeout: float = 5.0,
    ) -> RecordedCall:
        return self.wait_for_count(method, 1, predicate, timeout)[0]

    def wait_for_count(
        self,
        method: str,
        count: int,
        predicate: Callable[[RecordedCall], bool] = _always,
        timeout: float = 5.0,
    ) -> list[RecordedCall]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matches = [c for c in self._calls if c.method == method and self._matches(predicate, c)]
                if len(matches) >= count:
                    return matches[:count]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(self._timeout_message(method, count, len(matches), timeout))
                self._cond.wait(remaining)

    def arrivals(self, method: str) -> list[ArrivedCall]:
        """Requests to ``method`` in the order they reached the emulator, answered or still in flight."""
        with self._lock:
            return [a for a in self._arrivals if a.method == method]

    def wait_for_arrival(
        self,
        method: str,
        predicate: Callable[[ArrivedCall], bool] = _always,
        timeout: float = 5.0,
    ) -> ArrivedCall:
        """Wait until a matching request has reached the emulator (it may still be held by ``delay()``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for arrival in self._arrivals:
                    if arrival.method == method and self._matches(predicate, arrival):
                        return arrival
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [_summarise(a.args) for a in self._arrivals if a.method == method]
                    raise AssertionError(
                        f"timed out after {timeout:g}s waiting for a matching {method!r} request to arrive; "
                        f"{len(seen)} arrived: {seen}"
                    )
                self._cond.wait(remaining)

    @staticmethod
    def _matches(predicate: Callable[[Any], bool], call: Any) -> bool:
        try:
            return bool(predicate(call))
        except (KeyError, IndexError, TypeError, AttributeError):
            # Predicates are usually written for the call the test expects (c.args["blocks"][0]...);
            # other calls of the same method simply don't match rather than blowing up the wait.
            return False

    def _timeout_message(self, method: str, count: int, matched: int, timeout: float) -> str:
        same = [c for c in self._calls if c.method == method]
        lines = [
            f"timed out after {timeout:g}s waiting for {count} matching {method!r} call(s); "
            f"{matched} matched, {len(same)} {method!r} call(s) recorded:"
        ]
        lines += [
            f"  - {c.method} [{c.http_status} {c.response.get('error') or 'ok'}] {_summarise(c.args)}"
            for c in same
        ]
        if not same:
            others = sorted({c.method for c in self._calls})
            lines.append(f"  (none; methods called so far: {', '.join(others) or 'none'})")
        return "\n".join(lines)

    def subscribe(self, callback: Callable[[RecordedCall], None]) -> None:
        """Call ``callback`` from the server thread after each recorded call (before the HTTP answer)."""
        with self._lock:
            self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[RecordedCall], None]) -> None:
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def channel_messages(self, channel: str) -> list[Message]:
        with self._lock:
            channel = self._resolve_channel_id(channel)
            return [
                copy.deepcopy(m)
                for m in self._messages.get(channel, {}).values()
                if m.thread_ts is None and not m.deleted
            ]

    def thread_replies(self, channel: str, thread_ts: str) -> list[Message]:
        with self._lock:
            channel = self._resolve_channel_id(channel)
            return [
                copy.deepcopy(m)
                for m in self._messages.get(channel, {}).values()
                if m.thread_ts == thread_ts and not m.deleted
            ]

    def message(self, channel: str, ts: str) -> Message:
        with self._lock:
            channel = self._resolve_channel_id(channel)
            try:
                return copy.deepcopy(self._messages[channel][ts])
            except KeyError:
                raise KeyError(f"no message {ts!r} in channel {channel!r}") from None

    def ephemerals(self, channel: str | None = None, user: str | None = None) -> list[RecordedCall]:
        with self._lock:
            if channel is not None:
                channel = self._resolve_channel_id(channel)
            result: list[RecordedCall] = []
            for call in self._calls:
                if not call.ok or not self._is_ephemeral(call):
                    continue
                call_channel = call.args.get("channel")
                if isinstance(call_channel, str) and call_channel:
                    call_channel = self._resolve_channel_id(call_channel)
                if channel is not None and call_channel != channel:
                    continue
                if user is not None and call.args.get("user") != user:
                    continue
                result.append(call)
            return result

    def record_command_ack(self, channel_id: str, user_id: str, body: dict[str, Any]) -> None:
        """A slash command's HTTP answer with text: Slack shows it to the person who typed it, like a
        response_url message (ephemeral unless response_type is in_channel)."""
        with self._lock:
            call = self._record(
                COMMAND_ACK, {**body, "channel": channel_id, "user": user_id}, None, {"ok": True}, 200
            )
        self._notify(call)

    def _is_ephemeral(self, call: RecordedCall) -> bool:
        if call.method == "chat.postEphemeral":
            return True
        if call.method == COMMAND_ACK:
            return bool(call.args.get("response_type", "ephemeral") != "in_channel")
        if call.method != "response_url":
            return False
        args = call.args
        if _truthy(args.get("delete_original")):
            return False
        if _truthy(args.get("replace_original")):
            # Replacing a real channel message is not ephemeral; replacing an ephemeral reply still is.
            return id(call) not in self._replaced_originals
        return bool(args.get("response_type", "ephemeral") != "in_channel")

    def rate_limited_calls(self) -> list[RecordedCall]:
        """Every call answered 429, so a run can assert it never outpaced Slack's limits."""
        with self._lock:
            return [c for c in self._calls if c.http_status == 429]

    def uploaded_files(self) -> list[UploadedFile]:
        """Files whose upload was completed with files.completeUploadExternal, oldest first."""
        with self._lock:
            return list(self._uploads)

    def views(self, user_id: str | None = None, open_only: bool = True) -> list[View]:
        with self._lock:
            return [
                copy.deepcopy(v)
                for v in self._views.values()
                if (user_id is None or v.user_id == user_id) and not (open_only and v.closed)
            ]

    # ------------------------------------------------------------------ setup

    def add_user(
        self,
        user_id: str,
        name: str,
        real_name: str | None = None,
        *,
        is_bot: bool = False,
        tz: str = "UTC",
    ) -> None:
        tz_label, tz_offset = _tz_details(tz)
        real = real_name or name
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "real_name": real,
            "tz": tz,
            "tz_label": tz_label,
            "tz_offset": tz_offset,
            "is_admin": False,
            "is_owner": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "profile": {
                "real_name": real,
                "display_name": name,
                "real_name_normalized": real,
                "display_name_normalized": name,
                "email": None if is_bot else f"{name}@{self.team_domain}.example.com",
                "team": self.team_id,
                "image_48": f"https://avatars.example.invalid/{user_id}_48.png",
            },
        }
        if is_bot and user_id == self.bot_user_id:
            profile = user["profile"]
            assert isinstance(profile, dict)
            profile["bot_id"] = BOT_ID
        with self._lock:
            self._users[user_id] = user

    def add_usergroup(self, group_id: str, handle: str, users: list[str]) -> None:
        with self._lock:
            self._usergroups[group_id] = {
                "id": group_id,
                "team_id": self.team_id,
                "is_usergroup": True,
                "name": handle,
                "handle": handle,
                "description": "",
                "users": list(users),
                "user_count": len(users),
            }

    def new_response_url(self, channel_id: str, user_id: str) -> str:
        return self._register_response_url(channel_id, user_id)

    def _register_response_url(self, channel_id: str, user_id: str, message_ts: str | None = None) -> str:
        root = self.root_url
        token = secrets.token_hex(12)
        with self._lock:
            self._response_urls[token] = _ResponseUrl(
                self._resolve_channel_id(channel_id), user_id, message_ts
            )
        return f"{root}/response/{token}"

    def new_trigger_id(self, user_id: str) -> str:
        with self._lock:
            self._counter += 1
            trigger_id = f"{self._counter}.{int(time.time())}.{secrets.token_hex(16)}"
            self._triggers[trigger_id] = user_id
        return trigger_id

    def fail(
        self,
        method: str,
        *,
        status: int = 500,
        error: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls to ``method`` (or "response_url") fail without touching state."""
        with self._lock:
            queue = self._failures.setdefault(method, [])
            queue.extend(_Failure(status, error, retry_after) for _ in range(times))

    def delay(self, method: str, *, seconds: float) -> None:
        """Answer every later call to ``method`` only after ``seconds`` (0 removes the delay): a slow Slack."""
        with self._lock:
            if seconds > 0:
                self._delays[method] = seconds
            else:
                self._delays.pop(method, None)

    def enforce_rate_limits(self, enabled: bool = True) -> None:
        """Answer calls beyond Slack's published limits with 429 (see rate_limits.py); buckets start full."""
        with self._lock:
            self._rate_limits_on = enabled
            self._rate_limiter.reset()

    def drop_connection_after_processing(self, method: str, *, times: int = 1) -> None:
        """Process the next ``times`` calls to ``method`` normally, then close the connection unanswered.

        The call is applied and recorded (a posted message is stored); the client only sees the connection
        end, so it cannot tell whether Slack took the call. ``method`` may also be "response_url".
        """
        with self._lock:
            self._faults.setdefault(method, []).extend(_Fault(0.0, True) for _ in range(times))

    def stall_after_processing(self, method: str, *, seconds: float, times: int = 1) -> None:
        """Process the next ``times`` calls to ``method`` normally, then hold the answer for ``seconds``."""
        with self._lock:
            self._faults.setdefault(method, []).extend(_Fault(seconds, False) for _ in range(times))

    def reset(self) -> None:
        """Forget calls, messages, views and pending failures; users, usergroups and subscribers stay."""
        with self._lock:
            self._calls.clear()
            self._arrivals.clear()
            self._messages.clear()
            self._extras.clear()
            self._channels.clear()
            self._response_urls.clear()
            self._triggers.clear()
            self._used_triggers.clear()
            self._views.clear()
            self._view_meta.clear()
            self._home_views.clear()
            self._reactions.clear()
            self._failures.clear()
            self._delays.clear()
            self._faults.clear()
            self._rate_limiter.reset()
            self._files.clear()
            self._upload_tokens.clear()
            self._uploads.clear()
            self._replaced_originals.clear()

    # ------------------------------------------------------------------ helpers shared with the client

    def _user_name(self, user_id: str) -> str:
        with self._lock:
            user = self._users.get(user_id)
            return str(user["name"]) if user else user_id

    def _channel_name(self, channel_id: str) -> str:
        with self._lock:
            channel_id = self._resolve_channel_id(channel_id)
            if channel_id.startswith("D"):
                return "directmessage"
            known = self._channels.get(channel_id)
            return known.name if known else channel_id.lower()

    def _message_payload(self, channel: str, ts: str) -> dict[str, Any]:
        """The message as Slack embeds it in interaction payloads (generated ids filled in)."""
        with self._lock:
            channel = self._resolve_channel_id(channel)
            msg = self._messages.get(channel, {}).get(ts)
            if msg is None or msg.deleted:
                raise KeyError(f"no message {ts!r} in channel {channel!r}")
            payload = self._message_dict(msg)
            payload["blocks"] = with_generated_ids(msg.blocks)
            return payload

    def _view_payload(self, view_id: str) -> dict[str, Any]:
        with self._lock:
            view = self._views.get(view_id)
            if view is None:
                raise KeyError(f"unknown view {view_id!r}; known: {sorted(self._views)}")
            return self._view_dict(view)

    def _get_view(self, view_id: str) -> View:
        with self._lock:
            view = self._views.get(view_id)
            if view is None:
                raise KeyError(f"unknown view {view_id!r}; known: {sorted(self._views)}")
            return copy.deepcopy(view)

    def _apply_view_submission(self, view_id: str, status: int, ack: Any) -> None:
        """Mirror what Slack does with the app's answer to a view_submission."""
        if status != 200:
            # Slack keeps the modal open and shows a generic error when the app fails.
            return
        action = ack.get("response_action") if isinstance(ack, dict) else None
        with self._lock:
            current = self._views.get(view_id)
            if current is None:
                return
            if action == "errors":
                return
            if action == "update" and isinstance(ack.get("view"), dict):
                current.view = copy.deepcopy(ack["view"])
                current.hash = self._new_hash()
                return
            if action == "push" and isinstance(ack.get("view"), dict):
                self._open_view(current.user_id, ack["view"], previous=current.id)
                return
            if action == "clear":
                root = self._view_meta[view_id].root_view_id
                for vid, meta in self._view_meta.items():
                    if meta.root_view_id == root:
                        self._views[vid].closed = True
                return
            current.closed = True

    # ------------------------------------------------------------------ HTTP entry point

    def _handle_http(self, verb: str, path: str, headers: dict[str, str], body: bytes) -> _HttpAnswer:
        parts = urlsplit(path)
        if parts.path.startswith("/api/") and len(parts.path) > len("/api/"):
            method = parts.path[len("/api/") :]
            status, response, extra = self._handle_api(method, parts.query, headers, body)
            payload = json.dumps(response, ensure_ascii=False).encode("utf-8")
            return _HttpAnswer(
                status, "application/json; charset=utf-8", payload, extra, self._take_fault(method)
            )
        if parts.path.startswith("/response/") and verb == "POST":
            status, text, extra = self._handle_response_url(parts.path[len("/response/") :], headers, body)
            return _HttpAnswer(
                status,
                "text/plain; charset=utf-8",
                text.encode("utf-8"),
                extra,
                self._take_fault("response_url"),
            )
        if parts.path.startswith(_UPLOAD_PATH) and verb == "POST":
            status, text = self._handle_upload(parts.path[len(_UPLOAD_PATH) :], headers, body)
            return _HttpAnswer(
                status, "text/plain; charset=utf-8", text.encode("utf-8"), {}, self._take_fault("file_upload")
            )
        return _HttpAnswer(404, "text/plain; charset=utf-8", b"not_found", {})

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            queue = self._faults.get(method)
            return queue.pop(0) if queue else None

    def _handle_api(
        self, method: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        lowered = {k.lower(): v for k, v in headers.items()}
        args: dict[str, Any] = {}
        token: str | None = None
        status, extra_headers = 200, {}
        try:
            parsed: dict[str, Any] | _ApiError = self._parse_args(
                query, lowered.get("content-type", ""), body
            )
        except _ApiError as exc:
            parsed = exc
        with self._lock:
            seen = {k: v for k, v in parsed.items() if k != "token"} if isinstance(parsed, dict) else {}
            self._arrivals.append(ArrivedCall(method=method, args=copy.deepcopy(seen), at=time.time()))
            self._cond.notify_all()
            pause = self._delays.get(method, 0.0)
        if pause:
            time.sleep(pause)  # outside the lock, so other calls are not held up
        with self._lock:
            try:
                if isinstance(parsed, _ApiError):
                    raise parsed
                args = parsed
                form_token = args.pop("token", None)
                auth = lowered.get("authorization", "")
                if auth.lower().startswith("bearer "):
                    token = auth[len("bearer ") :].strip() or None
                elif isinstance(form_token, str) and form_token:
                    token = form_token
                self._raise_injected_failure(method)
                response = self._dispatch_api(method, args, token)
            except _ApiError as exc:
                status, extra_headers = exc.status, exc.headers
                response = exc.response()
            except Exception:
                # An emulator bug should still leave a trace in calls, not just a dropped request.
                logger.exception("Slack emulator failed in %s", method)
                status, response = 500, {"ok": False, "error": "internal_error"}
            call = self._record(method, args, token, response, status)
        self._notify(call)
        return status, response, extra_headers

    def _raise_injected_failure(self, method: str) -> None:
        queue = self._failures.get(method)
        if not queue:
            return
        failure = queue.pop(0)
        headers: dict[str, str] = {}
        if failure.status == 429:
            headers["Retry-After"] = str(failure.retry_after if failure.retry_after is not None else 1)
            raise _ApiError(failure.error or "ratelimited", 429, headers)
        if failure.retry_after is not None:
            headers["Retry-After"] = str(failure.retry_after)
        default_error = "fatal_error" if failure.status == 200 else "internal_error"
        raise _ApiError(failure.error or default_error, failure.status, headers)

    def _dispatch_api(self, method: str, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        if method == "api.test":
            # api.test is the one method Slack answers without a token; it echoes the arguments back.
            return {"ok": True, "args": args} if args else {"ok": True}
        if not token:
            raise _ApiError("not_authed")
        if self.bot_token is not None and token != self.bot_token:
            raise _ApiError("invalid_auth")
        handler = self._methods.get(method)
        if handler is None:
            raise _ApiError("unknown_method")
        if self._rate_limits_on:
            self._enforce_rate_limit(method, args)
        return handler(args)

    def _enforce_rate_limit(self, method: str, args: dict[str, Any]) -> None:
        channel = args.get("channel")
        # Resolve without creating anything: a refused call must leave the workspace exactly as it was.
        key = self._resolve_channel_id(channel.strip(), create=False) if isinstance(channel, str) else None
        retry_after = self._rate_limiter.retry_after(method, key)
        if retry_after is not None:
            raise _ApiError("ratelimited", 429, {"Retry-After": str(retry_after)})

    def _record(
        self, method: str, args: dict[str, Any], token: str | None, response: dict[str, Any], status: int
    ) -> RecordedCall:
        call = RecordedCall(
            method=method,
            args=copy.deepcopy(args),
            token=token,
            at=time.time(),
            response=copy.deepcopy(response),
            http_status=status,
        )
        self._calls.append(call)
        self._cond.notify_all()
        return call

    def _notify(self, call: RecordedCall) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(call)
            except Exception:
                # A broken observer (e.g. a REPL printer) must not turn into an API failure for the app.
                logger.exception("Slack emulator subscriber %r failed", callback)

    @staticmethod
    def _parse_args(query: str, content_type: str, body: bytes) -> dict[str, Any]:
        args: dict[str, Any] = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        mime = content_type.split(";", 1)[0].strip().lower()
        if body:
            if mime == "application/json":
                try:
                    decoded = json.loads(body.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    raise _ApiError("invalid_json") from None
                if not isinstance(decoded, dict):
                    raise _ApiError("invalid_json")
                args.update(decoded)
            elif mime == "multipart/form-data":
                args.update(SlackEmulator._parse_multipart(content_type, body))
            else:
                text = body.decode("utf-8", errors="replace")
                args.update({k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()})
        for name, error in _JSON_STRING_FIELDS.items():
            value = args.get(name)
            if isinstance(value, str):
                if not value.strip():
                    args.pop(name)
                    continue
                try:
                    args[name] = json.loads(value)
                except json.JSONDecodeError:
                    raise _ApiError(error) from None
        return args

    @staticmethod
    def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
        envelope = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body
        parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(envelope)
        fields: dict[str, Any] = {}
        for part in parsed.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            data = part.get_payload(decode=True) or b""
            assert isinstance(data, bytes)  # decode=True on a non-multipart part gives bytes
            if part.get_filename():
                fields[name] = data
            else:
                fields[name] = data.decode("utf-8", errors="replace")
        return fields

    # ------------------------------------------------------------------ response_url

    def _handle_response_url(
        self, token: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, dict[str, str]]:
        with self._lock:
            registration = self._response_urls.get(token)
            args: dict[str, Any] = {}
            extra_headers: dict[str, str] = {}
            try:
                if registration is None:
                    # Still keep what was sent, so a test posting to a stale URL can see its own payload.
                    with contextlib.suppress(_ApiError):
                        args = self._parse_response_body(headers, body)
                    raise _ApiError("no_service", 404)
                args = self._parse_response_body(headers, body)
                # Slack ignores any channel/user in the body: the URL alone decides where it goes.
                args["channel"] = registration.channel
                args["user"] = registration.user
                self._raise_injected_failure("response_url")
                touched_original = self._apply_response(registration, args)
                status, text = 200, "ok"
                response: dict[str, Any] = {"ok": True}
            except _ApiError as exc:
                touched_original = False
                status, text, extra_headers = exc.status, exc.error, exc.headers
                response = exc.response()
            except Exception:
                logger.exception("Slack emulator failed on a response_url post")
                touched_original = False
                status, text = 500, "internal_error"
                response = {"ok": False, "error": "internal_error"}
            call = self._record("response_url", args, None, response, status)
            if touched_original:
                self._replaced_originals.add(id(call))
        self._notify(call)
        return status, text, extra_headers

    # ------------------------------------------------------------------ file upload URL

    def _handle_upload(self, upload_token: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        with self._lock:
            file_id = self._upload_tokens.get(upload_token)
            args: dict[str, Any] = {"file_id": file_id, "length": len(body)}
            try:
                if file_id is None:
                    raise _ApiError("not_found", 404)
                self._raise_injected_failure("file_upload")
                content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
                content = body
                if content_type.split(";", 1)[0].strip().lower() == "multipart/form-data":
                    # Slack takes raw bytes or a multipart form; in a form the file is its first file part.
                    parts = self._parse_multipart(content_type, body).values()
                    content = next((v for v in parts if isinstance(v, bytes)), b"")
                    args["length"] = len(content)
                self._files[file_id].content = content
                status, text, response = 200, f"OK - {len(content)}", {"ok": True}
            except _ApiError as exc:
                status, text, response = exc.status, exc.error, exc.response()
            call = self._record("file_upload", args, None, response, status)
        self._notify(call)
        return status, text

    @staticmethod
    def _parse_response_body(headers: dict[str, str], body: bytes) -> dict[str, Any]:
        content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        if "application/x-www-form-urlencoded" in content_type:
            # Old-style integrations post payload=<json>; Slack accepts that on response_urls too.
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            raw: Any = form.get("payload", "")
        else:
            raw = body.decode("utf-8", "replace")
        try:
            decoded = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            decoded = None
        if not isinstance(decoded, dict):
            raise _ApiError("invalid_payload", 400)
        return decoded

    def _apply_response(self, registration: _ResponseUrl, args: dict[str, Any]) -> bool:
        """Apply a response_url post to channel state; True when it changed the original message."""
        has_content = any(args.get(k) for k in ("text", "blocks", "attachments"))
        original = None
        if registration.message_ts is not None:
            original = self._messages.get(registration.channel, {}).get(registration.message_ts)
        if _truthy(args.get("delete_original")):
            if original is not None:
                original.deleted = True
                return True
            return False
        if not has_content:
            raise _ApiError("no_text", 400)
        # A response_url answers a refused payload with 400 and the error as plain text, as Slack does.
        self._enforce_message_limits(args, status=400)
        if _truthy(args.get("replace_original")):
            if original is not None and not original.deleted:
                # Unlike chat.update, a replace_original reply swaps the whole message, so a text-only
                # reply drops the old blocks (and with them the buttons).
                original.text = str(args.get("text") or "")
                original.blocks = list(args.get("blocks") or [])
                original.edits += 1
                return True
            return False
        if args.get("response_type") == "in_channel":
            thread_ts = args.get("thread_ts") or None
            if thread_ts is not None:
                thread_ts = self._thread_root(registration.channel, str(thread_ts))
            self._store_message(registration.channel, args, thread_ts)
        return False

    # ------------------------------------------------------------------ state helpers (lock held)

    def _next_ts(self) -> str:
        now_us = int(time.time() * 1_000_000)
        # Slack ts values identify messages, so they must never repeat even within one microsecond.
        self._last_ts_us = max(now_us, self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    @staticmethod
    def _new_hash() -> str:
        return f"{int(time.time())}.{secrets.token_hex(4)}"

    def _dm_id(self, users: list[str]) -> str:
        members = sorted(set(users))
        channel_id = "D" + _short_id("im", members)
        self._dm_users.setdefault(channel_id, members)
        return channel_id

    def _resolve_channel_id(self, channel: str, *, create: bool = True) -> str:
        if channel.startswith("#"):
            name = channel[1:]
            for known in self._channels.values():
                if known.name == name:
                    return known.id
            # Apps configured with "#name" expect it to exist; invent a stable id so posts still land.
            created = _Channel(id="C" + _short_id("channel", name), name=name)
            if create:
                self._channels[created.id] = created
            return created.id
        if channel[:1] in ("U", "W"):
            if not create:
                return "D" + _short_id("im", [channel])
            return self._dm_id([channel])
        return channel

    def _require_channel(self, args: dict[str, Any], key: str = "channel") -> str:
        raw = args.get(key)
        if not isinstance(raw, str) or not raw.strip():
            raise _ApiError("channel_not_found")
        return self._resolve_channel_id(raw.strip())

    def _require_message(self, channel: str, ts: Any) -> Message:
        msg = self._messages.get(channel, {}).get(str(ts)) if ts else None
        if msg is None or msg.deleted:
            raise _ApiError("message_not_found")
        return msg

    def _require_user(self, args: dict[str, Any], key: str = "user") -> str:
        user = args.get(key)
        if not isinstance(user, str) or user not in self._users:
            raise _ApiError("user_not_found")
        return user

    def _thread_root(self, channel: str, thread_ts: str) -> str:
        parent = self._messages.get(channel, {}).get(thread_ts)
        if parent is None:
            raise _ApiError("thread_not_found")
        # Replying to a reply lands in the same thread, as in Slack.
        return parent.thread_ts or parent.ts

    def _check_postable(self, channel: str) -> None:
        known = self._channels.get(channel)
        if known is not None and known.is_archived:
            raise _ApiError("is_archived")

    def _store_message(
        self,
        channel: str,
        args: dict[str, Any],
        thread_ts: str | None,
        *,
        metadata: dict[str, Any] | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> Message:
        msg = Message(
            channel=channel,
            ts=self._next_ts(),
            text=str(args.get("text") or ""),
            blocks=list(args.get("blocks") or []),
            user=self.bot_user_id,
            thread_ts=thread_ts,
            edits=0,
            deleted=False,
            metadata=copy.deepcopy(metadata),
            files=copy.deepcopy(files or []),
        )
        self._messages.setdefault(channel, {})[msg.ts] = msg
        if args.get("attachments"):
            self._extras[(channel, msg.ts)] = {"attachments": copy.deepcopy(args["attachments"])}
        return msg

    @staticmethod
    def _parse_metadata(args: dict[str, Any]) -> dict[str, Any] | None:
        """The message metadata in ``args`` in Slack's shape, or None when the call carries none."""
        raw = args.get("metadata")
        if raw is None:
            return None
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("event_type"), str)
            or not raw["event_type"]
            or not isinstance(raw.get("event_payload"), dict)
        ):
            raise _ApiError("invalid_metadata_format")
        return {"event_type": raw["event_type"], "event_payload": copy.deepcopy(raw["event_payload"])}

    @staticmethod
    def _enforce_message_limits(args: dict[str, Any], status: int = 200) -> None:
        problems = find_limit_problems(args, "message")
        if not problems:
            return
        if any(p.error == "msg_too_long" for p in problems):
            raise _ApiError("msg_too_long", status)
        messages = [p.message for p in problems]
        # chat.* answers carry the problems twice: bare in "errors" and prefixed in response_metadata.
        extra = {
            "errors": [m.removeprefix("[ERROR] ") for m in messages],
            "response_metadata": {"messages": messages},
        }
        raise _ApiError("invalid_blocks", status, extra=extra)

    @staticmethod
    def _enforce_view_limits(view: dict[str, Any]) -> None:
        problems = find_limit_problems(view, "view")
        if problems:
            messages = [p.message for p in problems]
            raise _ApiError("invalid_arguments", extra={"response_metadata": {"messages": messages}})

    def _message_dict(self, msg: Message, *, include_metadata: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "message",
            "text": msg.text,
            "user": msg.user,
            "ts": msg.ts,
            "team": self.team_id,
        }
        if msg.user == self.bot_user_id:
            data["bot_id"] = BOT_ID
            data["app_id"] = APP_ID
        if msg.blocks:
            data["blocks"] = copy.deepcopy(msg.blocks)
        if msg.files:
            data["files"] = copy.deepcopy(msg.files)
            data["upload"] = True
        if msg.metadata is not None and include_metadata:
            data["metadata"] = copy.deepcopy(msg.metadata)
        data.update(copy.deepcopy(self._extras.get((msg.channel, msg.ts), {})))
        if msg.thread_ts is not None:
            data["thread_ts"] = msg.thread_ts
        if msg.edits:
            data["edited"] = {"user": msg.user, "ts": msg.ts}
        return data

    def _channel_dict(self, channel_id: str) -> dict[str, Any]:
        if channel_id.startswith("D"):
            others = [u for u in self._dm_users.get(channel_id, []) if u != self.bot_user_id]
            return {
                "id": channel_id,
                "created": int(time.time()),
                "is_im": True,
                "is_org_shared": False,
                "user": others[0] if others else None,
                "is_user_deleted": False,
                "priority": 0,
            }
        known = self._channels.get(channel_id) or _Channel(id=channel_id, name=channel_id.lower())
        return {
            "id": known.id,
            "name": known.name,
            "name_normalized": known.name,
            "is_channel": not known.is_private,
            "is_group": known.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": known.is_private,
            "is_archived": known.is_archived,
            "is_general": False,
            "is_member": self.bot_user_id in known.members or channel_id not in self._channels,
            "created": known.created,
            "creator": known.creator,
            "topic": {"value": known.topic, "creator": "", "last_set": 0},
            "purpose": {"value": known.purpose, "creator": "", "last_set": 0},
            "num_members": len(known.members),
        }

    def _view_dict(self, view: View) -> dict[str, Any]:
        meta = self._view_meta.get(view.id) or _ViewMeta(view.id, None, None)
        data: dict[str, Any] = {
            "id": view.id,
            "team_id": self.team_id,
            "type": "modal",
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "state": {"values": {}},
            "hash": view.hash,
            "title": None,
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": None,
            "previous_view_id": meta.previous_view_id,
            "root_view_id": meta.root_view_id,
            "app_id": APP_ID,
            "external_id": meta.external_id or "",
            "app_installed_team_id": self.team_id,
            "bot_id": BOT_ID,
        }
        data.update(copy.deepcopy(view.view))
        data.update({"id": view.id, "hash": view.hash, "team_id": self.team_id})
        data["blocks"] = with_generated_ids(data.get("blocks") or [])
        return data

    def _open_view(self, user_id: str, payload: dict[str, Any], previous: str | None = None) -> View:
        self._counter += 1
        view_id = f"V{self._counter:08d}TARS"
        view = View(
            id=view_id, user_id=user_id, view=copy.deepcopy(payload), hash=self._new_hash(), closed=False
        )
        root = self._view_meta[previous].root_view_id if previous in self._view_meta else view_id
        external_id = payload.get("external_id") or None
        self._views[view_id] = view
        self._view_meta[view_id] = _ViewMeta(root, previous, external_id)
        return view

    def _require_view_payload(self, args: dict[str, Any], expected_type: str) -> dict[str, Any]:
        view = args.get("view")
        if not isinstance(view, dict) or view.get("type") != expected_type:
            raise _ApiError("invalid_arguments")
        self._enforce_view_limits(view)
        return view

    def _use_trigger(self, args: dict[str, Any]) -> str:
        trigger_id = args.get("trigger_id")
        if not isinstance(trigger_id, str) or trigger_id not in self._triggers:
            raise _ApiError("invalid_trigger_id")
        if trigger_id in self._used_triggers:
            raise _ApiError("invalid_trigger_id")
        return trigger_id

    @staticmethod
    def _split_users(raw: Any) -> list[str]:
        if isinstance(raw, list):
            return [str(u).strip() for u in raw if str(u).strip()]
        if isinstance(raw, str):
            return [u.strip() for u in raw.split(",") if u.strip()]
        return []

    # ------------------------------------------------------------------ Web API methods (lock held)

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain,
            "user": self._user_name(self.bot_user_id),
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        if not any(args.get(k) for k in ("text", "blocks", "attachments")):
            raise _ApiError("no_text")
        self._enforce_message_limits(args)
        metadata = self._parse_metadata(args)
        self._check_postable(channel)
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None:
            thread_ts = self._thread_root(channel, str(thread_ts))
        msg = self._store_message(channel, args, thread_ts, metadata=metadata)
        return {"ok": True, "channel": channel, "ts": msg.ts, "message": self._message_dict(msg)}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        msg = self._require_message(channel, args.get("ts"))
        if msg.user != self.bot_user_id:
            raise _ApiError("cant_update_message")
        if not any(k in args for k in ("text", "blocks", "attachments")):
            raise _ApiError("no_text")
        self._enforce_message_limits(args)
        metadata = self._parse_metadata(args)
        if metadata is not None:
            msg.metadata = metadata
        if "text" in args:
            msg.text = str(args.get("text") or "")
        if "blocks" in args:
            msg.blocks = list(args.get("blocks") or [])
        if "attachments" in args:
            self._extras.setdefault((channel, msg.ts), {})["attachments"] = copy.deepcopy(args["attachments"])
        msg.edits += 1
        return {
            "ok": True,
            "channel": channel,
            "ts": msg.ts,
            "text": msg.text,
            "message": self._message_dict(msg),
        }

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        msg = self._require_message(channel, args.get("ts"))
        if msg.user != self.bot_user_id:
            raise _ApiError("cant_delete_message")
        msg.deleted = True
        return {"ok": True, "channel": channel, "ts": msg.ts}

    def _chat_get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        msg = self._require_message(channel, args.get("message_ts"))
        permalink = f"https://{self.team_domain}.slack.com/archives/{channel}/p{msg.ts.replace('.', '')}"
        if msg.thread_ts is not None:
            permalink += f"?thread_ts={msg.thread_ts}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": permalink}

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        user = args.get("user")
        if not isinstance(user, str) or not user.strip():
            raise _ApiError("user_not_in_channel")
        if not any(args.get(k) for k in ("text", "blocks", "attachments")):
            raise _ApiError("no_text")
        self._enforce_message_limits(args)
        self._check_postable(channel)
        if args.get("thread_ts"):
            self._thread_root(channel, str(args["thread_ts"]))
        return {"ok": True, "message_ts": self._next_ts()}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = self._split_users(args.get("users"))
        if not users:
            existing = args.get("channel")
            if isinstance(existing, str) and existing in self._dm_users:
                return {"ok": True, "no_op": True, "already_open": True, "channel": {"id": existing}}
            raise _ApiError("users_list_not_supplied")
        if len(users) > 8:
            raise _ApiError("too_many_users")
        return {"ok": True, "channel": {"id": self._dm_id(users)}}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channel": self._channel_dict(self._require_channel(args))}

    def _conversations_join(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        if channel.startswith("D"):
            raise _ApiError("method_not_supported_for_channel_type")
        known = self._channels.get(channel)
        if known is not None:
            if known.is_archived:
                raise _ApiError("is_archived")
            known.members.add(self.bot_user_id)
        return {"ok": True, "channel": self._channel_dict(channel)}

    def _conversations_create(self, args: dict[str, Any]) -> dict[str, Any]:
        name = args.get("name")
        if not isinstance(name, str) or not name:
            raise _ApiError("invalid_name_required")
        if not _CHANNEL_NAME_RE.match(name):
            raise _ApiError("invalid_name_specials")
        if any(c.name == name for c in self._channels.values()):
            raise _ApiError("name_taken")
        self._counter += 1
        channel = _Channel(
            id="C" + _short_id("channel", name, self._counter),
            name=name,
            is_private=_truthy(args.get("is_private")),
            creator=self.bot_user_id,
            members={self.bot_user_id},
        )
        self._channels[channel.id] = channel
        return {"ok": True, "channel": self._channel_dict(channel.id)}

    def _known_channel(self, args: dict[str, Any]) -> _Channel:
        channel_id = self._require_channel(args)
        known = self._channels.get(channel_id)
        if known is None:
            # Channels the app never created are taken to exist, so record them on first touch.
            known = _Channel(id=channel_id, name=channel_id.lower(), members={self.bot_user_id})
            self._channels[channel_id] = known
        return known

    def _conversations_invite(self, args: dict[str, Any]) -> dict[str, Any]:
        users = self._split_users(args.get("users"))
        if not users:
            raise _ApiError("no_user")
        unknown = [u for u in users if u not in self._users]
        if unknown:
            raise _ApiError("user_not_found")
        known = self._known_channel(args)
        if known.is_archived:
            raise _ApiError("is_archived")
        known.members.update(users)
        return {"ok": True, "channel": self._channel_dict(known.id)}

    def _conversations_set_topic(self, args: dict[str, Any]) -> dict[str, Any]:
        known = self._known_channel(args)
        known.topic = str(args.get("topic") or "")
        return {"ok": True, "channel": self._channel_dict(known.id)}

    def _conversations_set_purpose(self, args: dict[str, Any]) -> dict[str, Any]:
        known = self._known_channel(args)
        known.purpose = str(args.get("purpose") or "")
        return {"ok": True, "channel": self._channel_dict(known.id)}

    def _conversations_archive(self, args: dict[str, Any]) -> dict[str, Any]:
        known = self._known_channel(args)
        if known.is_archived:
            raise _ApiError("already_archived")
        known.is_archived = True
        return {"ok": True}

    def _conversations_members(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._require_channel(args)
        if channel_id.startswith("D"):
            members = sorted({*self._dm_users.get(channel_id, []), self.bot_user_id})
        else:
            known = self._channels.get(channel_id)
            members = sorted(known.members) if known else [self.bot_user_id]
        return {"ok": True, "members": members, "response_metadata": {"next_cursor": ""}}

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        candidates = [
            m for m in self._messages.get(channel, {}).values() if m.thread_ts is None and not m.deleted
        ]
        # Slack returns history newest first; a cursor continues towards older messages.
        return self._message_page(args, candidates, newest_first=True, default_limit=100)

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        root = self._thread_root(channel, str(args.get("ts") or ""))
        parent = self._messages[channel][root]
        replies = [m for m in self._messages[channel].values() if m.thread_ts == root and not m.deleted]
        # The parent comes first, then replies oldest first; the parent is simply the oldest message.
        return self._message_page(args, [parent, *replies], newest_first=False, default_limit=1000)

    def _message_page(
        self, args: dict[str, Any], candidates: list[Message], *, newest_first: bool, default_limit: int
    ) -> dict[str, Any]:
        """One page of ``candidates`` filtered by oldest / latest / inclusive, as history and replies do."""
        inclusive = _truthy(args.get("inclusive"))
        oldest = _parse_ts(args.get("oldest"), "invalid_ts_oldest")
        latest = _parse_ts(args.get("latest"), "invalid_ts_latest")
        try:
            limit = int(args.get("limit") or default_limit)
        except (TypeError, ValueError):
            raise _ApiError("invalid_limit") from None
        # Slack caps a page at 999 items whatever limit asks for.
        limit = max(1, min(limit, 999))
        cursor = _decode_cursor(args.get("cursor"))

        def in_range(ts: Decimal) -> bool:
            if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
                return False
            return latest is None or ts < latest or (ts == latest and inclusive)

        keyed = sorted(
            ((Decimal(m.ts), m) for m in candidates), key=lambda pair: pair[0], reverse=newest_first
        )
        selected = [(ts, m) for ts, m in keyed if in_range(ts)]
        if cursor is not None:
            # The cursor names the first message of the page it leads to.
            selected = [(ts, m) for ts, m in selected if (ts <= cursor if newest_first else ts >= cursor)]
        page, rest = selected[:limit], selected[limit:]
        include_metadata = _truthy(args.get("include_all_metadata"))
        return {
            "ok": True,
            "messages": [self._message_dict(m, include_metadata=include_metadata) for _, m in page],
            "has_more": bool(rest),
            "pin_count": 0,
            "response_metadata": {"next_cursor": _encode_cursor(rest[0][1].ts) if rest else ""},
        }

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user": copy.deepcopy(self._users[self._require_user(args)])}

    def _users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "members": [copy.deepcopy(u) for u in self._users.values()],
            "cache_ts": int(time.time()),
            "response_metadata": {"next_cursor": ""},
        }

    def _users_lookup_by_email(self, args: dict[str, Any]) -> dict[str, Any]:
        wanted = str(args.get("email") or "").lower()
        for user in self._users.values():
            if wanted and str(user["profile"].get("email") or "").lower() == wanted:
                return {"ok": True, "user": copy.deepcopy(user)}
        raise _ApiError("users_not_found")

    def _usergroups_list(self, args: dict[str, Any]) -> dict[str, Any]:
        include_users = _truthy(args.get("include_users"))
        groups = []
        for group in self._usergroups.values():
            entry = copy.deepcopy(group)
            if not include_users:
                entry.pop("users")
            groups.append(entry)
        return {"ok": True, "usergroups": groups}

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = self._usergroups.get(str(args.get("usergroup") or ""))
        if group is None:
            raise _ApiError("no_such_subteam")
        return {"ok": True, "users": list(group["users"])}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger_id = self._use_trigger(args)
        payload = self._require_view_payload(args, "modal")
        self._used_triggers.add(trigger_id)
        view = self._open_view(self._triggers[trigger_id], payload)
        return {"ok": True, "view": self._view_dict(view)}

    def _views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger_id = self._use_trigger(args)
        payload = self._require_view_payload(args, "modal")
        user_id = self._triggers[trigger_id]
        open_views = [v for v in self._views.values() if v.user_id == user_id and not v.closed]
        if not open_views:
            # Slack can only push onto a modal that is currently showing.
            raise _ApiError("not_found")
        self._used_triggers.add(trigger_id)
        view = self._open_view(user_id, payload, previous=open_views[-1].id)
        return {"ok": True, "view": self._view_dict(view)}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id = args.get("view_id")
        external_id = args.get("external_id")
        if not view_id and not external_id:
            raise _ApiError("invalid_arguments")
        if not view_id:
            matches = [vid for vid, meta in self._view_meta.items() if meta.external_id == external_id]
            view_id = matches[-1] if matches else None
        view = self._views.get(str(view_id)) if view_id else None
        if view is None or view.closed:
            raise _ApiError("not_found")
        payload = self._require_view_payload(args, "modal")
        expected_hash = args.get("hash")
        if expected_hash and expected_hash != view.hash:
            raise _ApiError("hash_conflict")
        view.view = copy.deepcopy(payload)
        view.hash = self._new_hash()
        if payload.get("external_id"):
            self._view_meta[view.id].external_id = payload["external_id"]
        return {"ok": True, "view": self._view_dict(view)}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = args.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            raise _ApiError("user_not_found")
        payload = self._require_view_payload(args, "home")
        self._home_views[user_id] = copy.deepcopy(payload)
        self._counter += 1
        view = {
            "id": f"V{self._counter:08d}HOME",
            "team_id": self.team_id,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "hash": self._new_hash(),
            **copy.deepcopy(payload),
        }
        return {"ok": True, "view": view}

    def _reaction_target(self, args: dict[str, Any]) -> tuple[tuple[str, str], str]:
        channel = self._require_channel(args)
        ts = args.get("timestamp")
        name = args.get("name")
        if not ts:
            raise _ApiError("no_item_specified")
        if not isinstance(name, str) or not name:
            raise _ApiError("invalid_name")
        return (channel, str(ts)), name.strip(":")

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        key, name = self._reaction_target(args)
        users = self._reactions.setdefault(key, {}).setdefault(name, [])
        if self.bot_user_id in users:
            raise _ApiError("already_reacted")
        users.append(self.bot_user_id)
        return {"ok": True}

    def _reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        key, name = self._reaction_target(args)
        users = self._reactions.get(key, {}).get(name, [])
        if self.bot_user_id not in users:
            raise _ApiError("no_reaction")
        users.remove(self.bot_user_id)
        return {"ok": True}

    def _pins_add(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        self._require_message(channel, args.get("timestamp"))
        return {"ok": True}

    def _files_get_upload_url_external(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = args.get("filename")
        if not isinstance(filename, str) or not filename.strip():
            raise _ApiError("invalid_arguments")
        try:
            length = int(args["length"])
        except (TypeError, ValueError):
            raise _ApiError("invalid_arguments") from None
        if length <= 0:
            # Slack's documented answer for a zero length.
            raise _ApiError("missing_argument")
        self._counter += 1
        file_id = "F" + _short_id("file", filename, self._counter)
        upload_token = secrets.token_hex(12)
        self._files[file_id] = _PendingFile(file_id, filename, length)
        self._upload_tokens[upload_token] = file_id
        return {"ok": True, "upload_url": f"{self.root_url}{_UPLOAD_PATH}{upload_token}", "file_id": file_id}

    def _files_complete_upload_external(self, args: dict[str, Any]) -> dict[str, Any]:
        requested = args.get("files")
        if isinstance(requested, str):
            try:
                requested = json.loads(requested)
            except json.JSONDecodeError:
                raise _ApiError("invalid_arguments") from None
        if not isinstance(requested, list) or not requested:
            raise _ApiError("invalid_arguments")
        pending: list[tuple[_PendingFile, str]] = []
        for entry in requested:
            if not isinstance(entry, dict):
                raise _ApiError("invalid_arguments")
            known = self._files.get(str(entry.get("id") or ""))
            # An id never uploaded to, or already completed, is refused; Slack does not document what a
            # second completion does, and refusing keeps a retried completion from sharing twice.
            if known is None or known.content is None or known.completed:
                raise _ApiError("file_not_found")
            pending.append((known, str(entry.get("title") or known.filename)))

        channel: str | None = None
        raw_channel = args.get("channel_id") or args.get("channels")
        if isinstance(raw_channel, str) and raw_channel.strip():
            # slack_sdk sends `channels` comma-joined; the emulator shares into the first one.
            channel = self._resolve_channel_id(raw_channel.split(",")[0].strip())
            self._check_postable(channel)
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None:
            if channel is None:
                raise _ApiError("invalid_arguments")
            thread_ts = self._thread_root(channel, str(thread_ts))

        shared = [self._file_dict(known, title) for known, title in pending]
        for known, title in pending:
            known.completed = True
            self._uploads.append(
                UploadedFile(known.id, known.filename, title, known.content or b"", channel, thread_ts)
            )
        if channel is not None:
            comment = {"text": str(args.get("initial_comment") or "")}
            self._store_message(channel, comment, thread_ts, files=shared)
        return {"ok": True, "files": shared}

    def _file_dict(self, known: _PendingFile, title: str) -> dict[str, Any]:
        now = int(time.time())
        extension = known.filename.rsplit(".", 1)[-1].lower() if "." in known.filename else "binary"
        return {
            "id": known.id,
            "created": now,
            "timestamp": now,
            "name": known.filename,
            "title": title,
            "mimetype": mimetypes.guess_type(known.filename)[0] or "application/octet-stream",
            "filetype": extension,
            "user": self.bot_user_id,
            "size": len(known.content or b""),
            "url_private": f"https://files.slack.com/files-pri/{self.team_id}-{known.id}/{known.filename}",
            "permalink": f"https://{self.team_domain}.slack.com/files/{self.bot_user_id}/{known.id}/{known.filename}",
        }
