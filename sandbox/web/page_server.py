"""The sandbox in a browser: #incidents, DMs, threads and modals on a Slack-like page served on loopback.

What the page shows is read from the Slack emulator, the way a Slack client reads it from Slack; what a person
does in it (a command, a click, a form) goes to TARS's real /slack/events endpoint through SignedSlackClient,
signed exactly as Slack signs it. The page server never writes to the emulator itself, so TARS behaves the same
whether it is driven from this page, the terminal REPL or a test.

Standard library only: `tars sandbox` must start with nothing beyond TARS's own dependencies.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from bot.incidents.command_parser import SUBCOMMANDS
from bot.slack.rendering import COMMAND_USAGE
from sandbox.emulator import Message, RecordedCall, SignedSlackClient, SlackEmulator
from sandbox.emulator.slack_api import with_generated_ids
from sandbox.personas import Persona

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
_STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
}
# Defence in depth behind the page's own rule (it builds DOM nodes, never HTML from what TARS posts): even a
# slip there could not run an inline script or load one from elsewhere. Images may come from anywhere because
# Block Kit image blocks carry outside URLs.
_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: http: https:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Uploaded files are served from the page's origin, so anything a browser could run (HTML, SVG) is a download.
_INLINE_FILE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "text/csv"}
_MAX_BODY = 256 * 1024
_COMMAND = "/incident"
# Slack caps slash-command text at 4,000 characters.
_MAX_COMMAND_TEXT = 4000
_KEEPALIVE_SECONDS = 15.0
_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)")
_CHANNEL_MENTION = re.compile(r"<#([CGD][A-Z0-9]+)")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class PageControl:
    """A button in the page's top bar for what only the sandbox can do (fire an alert, let time pass); `run`
    returns what to tell the person."""

    label: str
    run: Callable[[], str]


def _persona_json(persona: Persona) -> dict[str, str]:
    return {"user_id": persona.slack_id, "name": persona.real_name, "role": persona.role}


class _HttpError(Exception):
    """Ends a request with a JSON `{"error": message}` answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Reply:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json_reply(payload: Any, status: int = 200) -> _Reply:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return _Reply(status, "application/json; charset=utf-8", body, {"Cache-Control": "no-store"})


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        return str(obj.get("text") or "")
    return "" if obj is None else str(obj)


def _usage(text: str) -> str:
    # COMMAND_USAGE is escaped for mrkdwn (`&lt;service&gt;`); the composer shows it as plain text.
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class SandboxPage:
    """A Slack-like page on loopback for the sandbox's emulator and TARS; see the module docstring."""

    def __init__(
        self,
        emulator: SlackEmulator,
        client: SignedSlackClient,
        personas: Sequence[Persona],
        channel: str,
        settle: Callable[[], object] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        channel_name: str = "incidents",
        title: str = "TARS sandbox",
        controls: Sequence[PageControl] = (),
    ) -> None:
        if not personas:
            raise ValueError("SandboxPage needs at least one persona to act as")
        self.emulator = emulator
        self.client = client
        self.personas = list(personas)
        self.controls = list(controls)
        self._by_id = {p.slack_id: p for p in self.personas}
        self.channel = channel
        self.channel_name = channel_name
        self.title = title
        self.host = host
        self._requested_port = port
        self._settle = settle
        self._server: _PageServer | None = None
        self._thread: threading.Thread | None = None
        # Bumped on every call the emulator records; the event stream tells pages to fetch again.
        self._changes = threading.Condition()
        self._version = 0
        self._stopping = False
        # Modals closed with Cancel. Slack tells the app about that only when the view asks (notify_on_close),
        # which TARS's never do, so closing one is the page's business and the emulator keeps it as is.
        self._dismissed: set[str] = set()

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> SandboxPage:
        if self._server is not None:
            return self
        self._stopping = False
        self._server = _PageServer((self.host, self._requested_port), self)
        self.emulator.subscribe(self._on_call)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"sandbox-page-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self.emulator.unsubscribe(self._on_call)
        with self._changes:
            # Event streams wait on this condition; waking them with _stopping set ends their responses.
            self._stopping = True
            self._changes.notify_all()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> SandboxPage:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("SandboxPage is not started; call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    # --- change notification --------------------------------------------------------------------------------

    def _on_call(self, call: RecordedCall) -> None:
        # Runs on the emulator's request thread before it answers TARS: only bump and wake, never block.
        self._changed()

    def _changed(self) -> None:
        with self._changes:
            self._version += 1
            self._changes.notify_all()

    def _wait_for_change(self, seen: int, timeout: float) -> int | None:
        """The version once it differs from `seen` (or the same one after `timeout`); None when stopping."""
        with self._changes:
            self._changes.wait_for(lambda: self._stopping or self._version != seen, timeout)
            return None if self._stopping else self._version

    # --- routing --------------------------------------------------------------------------------------------

    def _get(self, path: str, query: dict[str, str]) -> _Reply:
        if path in ("/", "/index.html"):
            return self._static("index.html", csp=True)
        if path.startswith("/static/"):
            return self._static(path[len("/static/") :])
        if path.startswith("/files/"):
            return self._file(unquote(path[len("/files/") :]))
        if path == "/favicon.ico":
            return _Reply(204, "image/x-icon", b"")
        routes: dict[str, Callable[[dict[str, str]], Any]] = {
            "/api/personas": lambda _q: self.personas_json(),
            "/api/commands": lambda _q: self.commands_json(),
            "/api/state": lambda q: self.state_json(_param(q, "user"), q.get("conversation") or None),
            "/api/thread": lambda q: self.thread_json(
                _param(q, "user"), _param(q, "channel"), _param(q, "ts")
            ),
        }
        route = routes.get(path)
        if route is None:
            raise _HttpError(404, f"no such page: {path}")
        return _json_reply(route(query))

    def _post(self, path: str, body: dict[str, Any]) -> _Reply:
        routes: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "/api/command": self.command,
            "/api/action": self.action,
            "/api/view": self.submit_view,
            "/api/view/close": self.close_view,
            "/api/control": self.control,
        }
        route = routes.get(path)
        if route is None:
            raise _HttpError(404, f"no such endpoint: POST {path}")
        return _json_reply(route(body))

    def _static(self, name: str, *, csp: bool = False) -> _Reply:
        # A fixed list, so no path from the URL ever reaches the file system.
        content_type = _STATIC_FILES.get(name)
        if content_type is None:
            raise _HttpError(404, f"no static file {name!r}")
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        if csp:
            headers["Content-Security-Policy"] = _PAGE_CSP
        return _Reply(200, content_type, (STATIC_DIR / name).read_bytes(), headers)

    def _file(self, file_id: str) -> _Reply:
        upload = next((f for f in self.emulator.uploaded_files() if f.id == file_id), None)
        if upload is None:
            raise _HttpError(404, f"no uploaded file {file_id!r}")
        content_type = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
        headers = {
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=3600",
        }
        if content_type not in _INLINE_FILE_TYPES:
            safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", upload.filename) or "file"
            headers["Content-Disposition"] = f'attachment; filename="{safe_name}"'
        elif content_type.startswith("text/"):
            content_type += "; charset=utf-8"
        return _Reply(200, content_type, upload.content, headers)

    # --- what the page reads --------------------------------------------------------------------------------

    def personas_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "channel": {"id": self.channel, "name": self.channel_name},
            "personas": [_persona_json(p) for p in self.personas],
            "controls": [{"id": index, "label": c.label} for index, c in enumerate(self.controls)],
        }

    def commands_json(self) -> dict[str, Any]:
        """The `/incident` sub-commands for the composer's completion: documented ones first, in the order
        `/incident help` lists them, then aliases the parser also takes."""
        documented = [
            {"name": name, "usage": _usage(usage), "alias": False}
            for name, usage in COMMAND_USAGE.items()
            if name in SUBCOMMANDS
        ]
        aliases = [
            {"name": name, "usage": None, "alias": True}
            for name in sorted(SUBCOMMANDS)
            if name not in COMMAND_USAGE
        ]
        return {"command": _COMMAND, "subcommands": documented + aliases}

    def state_json(self, user: str, conversation: str | None = None) -> dict[str, Any]:
        """What `user` sees: the sidebar, one conversation's messages with their private replies, and the
        modal that is open for them."""
        persona = self._persona(user)
        # Read first: a change recorded while this is built bumps past it, and the page fetches again.
        with self._changes:
            version = self._version
        conversations = self._conversations(persona.slack_id)
        current = conversation or self.channel
        chosen = next((c for c in conversations if c["id"] == current), None)
        if chosen is None:
            raise _HttpError(404, f"{persona.real_name} has no conversation {current!r}")
        messages = [self._message_json(current, m) for m in self.emulator.channel_messages(current)]
        ephemerals = [e for e in self._ephemerals(current, persona.slack_id) if e["thread_ts"] is None]
        view = self._open_view(persona.slack_id)
        return {
            "version": version,
            "user": _persona_json(persona),
            "conversations": conversations,
            "conversation": chosen,
            "messages": messages,
            "ephemerals": ephemerals,
            "view": view,
            **self._names([messages, ephemerals, view]),
        }

    def thread_json(self, user: str, channel: str, ts: str) -> dict[str, Any]:
        persona = self._persona(user)
        self._visible(persona, channel)
        try:
            parent = self.emulator.message(channel, ts)
        except KeyError:
            raise _HttpError(404, f"no message {ts!r} in {channel!r}") from None
        if parent.deleted:
            raise _HttpError(404, f"message {ts!r} in {channel!r} was deleted")
        replies = [
            self._message_json(channel, m, thread=True) for m in self.emulator.thread_replies(channel, ts)
        ]
        ephemerals = [e for e in self._ephemerals(channel, persona.slack_id) if e["thread_ts"] == ts]
        root = self._message_json(channel, parent)
        return {
            "channel": channel,
            "ts": ts,
            "parent": root,
            "replies": replies,
            "ephemerals": ephemerals,
            **self._names([root, replies, ephemerals]),
        }

    def _conversations(self, user_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = [{"id": self.channel, "name": self.channel_name, "kind": "channel"}]
        for dm_id, members in self._dms_of(user_id):
            others = [m for m in members if m not in (user_id, self.emulator.bot_user_id)]
            name = ", ".join(self._display_name(m) for m in others) or "TARS"
            found.append({"id": dm_id, "name": name, "kind": "im"})
        for entry in found:
            latest = self.emulator.channel_messages(str(entry["id"]))
            entry["latest_ts"] = latest[-1].ts if latest else None
        return found

    def _dms_of(self, user_id: str) -> list[tuple[str, list[str]]]:
        # The emulator has no public listing of IMs, and asking its Web API would itself be a recorded call
        # (another refresh); reading its table under its lock is what SignedSlackClient does with its helpers.
        with self.emulator._lock:
            return sorted(
                (dm, list(members)) for dm, members in self.emulator._dm_users.items() if user_id in members
            )

    def _visible(self, persona: Persona, channel: str) -> None:
        if channel != self.channel and channel not in {dm for dm, _ in self._dms_of(persona.slack_id)}:
            raise _HttpError(404, f"{persona.real_name} has no conversation {channel!r}")

    def _message_json(self, channel: str, message: Message, *, thread: bool = False) -> dict[str, Any]:
        replies = [] if thread else self.emulator.thread_replies(channel, message.ts)
        return {
            "ts": message.ts,
            "channel": channel,
            "user": message.user,
            "is_bot": message.user == self.emulator.bot_user_id,
            "text": message.text,
            # The same generated block/action ids the emulator puts in interaction payloads, so a click names
            # the element SignedSlackClient will find.
            "blocks": with_generated_ids(message.blocks),
            "files": [self._file_json(f) for f in message.files],
            "edited": message.edits > 0,
            "thread_ts": message.thread_ts,
            "reply_count": len(replies),
            "latest_reply": replies[-1].ts if replies else None,
        }

    @staticmethod
    def _file_json(file: dict[str, Any]) -> dict[str, Any]:
        mimetype = str(file.get("mimetype") or "application/octet-stream")
        return {
            "id": str(file.get("id")),
            "name": str(file.get("name") or ""),
            "title": str(file.get("title") or file.get("name") or ""),
            "mimetype": mimetype,
            "is_image": mimetype in _INLINE_FILE_TYPES and mimetype.startswith("image/"),
            "url": f"/files/{file.get('id')}",
        }

    def _ephemerals(self, channel: str, user_id: str) -> list[dict[str, Any]]:
        """Private replies to `user_id` in `channel`: command acks, response_url replies, postEphemeral."""
        found = []
        for call in self.emulator.ephemerals(channel=channel, user=user_id):
            args = call.args
            blocks = args.get("blocks")
            # postEphemeral answers with the ts Slack gave the reply; the others only have when they arrived.
            ts = str(call.response.get("message_ts") or f"{call.at:.6f}")
            found.append(
                {
                    "id": f"{call.method}:{call.at:.6f}",
                    "ts": ts,
                    "kind": call.method,
                    "text": str(args.get("text") or ""),
                    "blocks": with_generated_ids(blocks) if isinstance(blocks, list) else [],
                    "thread_ts": str(args["thread_ts"]) if args.get("thread_ts") else None,
                }
            )
        return found

    def _open_view(self, user_id: str) -> dict[str, Any] | None:
        with self._changes:
            dismissed = set(self._dismissed)
        views = [v for v in self.emulator.views(user_id) if v.id not in dismissed]
        if not views:
            return None
        # Pushed modals stack up; the page shows the top one, as Slack does.
        top = views[-1]
        return {
            "id": top.id,
            "hash": top.hash,
            "callback_id": str(top.view.get("callback_id") or ""),
            "title": _text_of(top.view.get("title")),
            "submit": _text_of(top.view.get("submit")) or None,
            "close": _text_of(top.view.get("close")) or "Cancel",
            "blocks": with_generated_ids(top.view.get("blocks") or []),
            "depth": len(views),
        }

    def _names(self, shown: Sequence[Any]) -> dict[str, dict[str, str]]:
        """Display names for the people and channels that what is shown mentions (`<@U…>`, `<#C…>`)."""
        text = json.dumps(shown, ensure_ascii=False)
        user_ids = {*_USER_MENTION.findall(text), *self._by_id, self.emulator.bot_user_id}
        channel_ids = {*_CHANNEL_MENTION.findall(text), self.channel}
        return {
            "users": {u: self._display_name(u) for u in sorted(user_ids)},
            "channels": {
                c: self.channel_name if c == self.channel else self.emulator._channel_name(c)
                for c in sorted(channel_ids)
            },
        }

    def _display_name(self, user_id: str) -> str:
        if user_id == self.emulator.bot_user_id:
            return "TARS"
        persona = self._by_id.get(user_id)
        return persona.real_name if persona else self.emulator._user_name(user_id)

    def _persona(self, user: Any) -> Persona:
        persona = self._by_id.get(user) if isinstance(user, str) else None
        if persona is None:
            known = ", ".join(self._by_id)
            raise _HttpError(400, f"user must be one of the personas ({known}), not {user!r}")
        return persona

    # --- what the page does: each goes to TARS signed like Slack ---------------------------------------------

    def control(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{id}`: press one of the sandbox's own controls, then wait for what TARS does about it."""
        index = body.get("id")
        if not isinstance(index, int) or not 0 <= index < len(self.controls):
            raise _HttpError(400, f"no control {index!r}")
        message = self.controls[index].run()
        self._run_settle()
        return {"ok": True, "message": message}

    def command(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{user, text, channel?}`: a slash command. `text` is what was typed, `/incident ...` (or only what
        follows `/incident`); it is sent from `channel` (#incidents unless given)."""
        persona = self._persona(body.get("user"))
        text = _required(body, "text", limit=_MAX_COMMAND_TEXT + len(_COMMAND) + 1)
        channel = _optional(body, "channel") or self.channel
        self._visible(persona, channel)
        typed = text.strip()
        if typed.startswith("/"):
            word, _, rest = typed.partition(" ")
            if word != _COMMAND:
                raise _HttpError(400, f"TARS answers {_COMMAND} only, not {word}; try `{_COMMAND} help`")
            typed = rest.strip()
        if len(typed) > _MAX_COMMAND_TEXT:
            raise _HttpError(400, f"a command's text is at most {_MAX_COMMAND_TEXT} characters, as in Slack")
        response = self.client.slash_command(typed, user_id=persona.slack_id, channel_id=channel)
        if response.status != 200:
            raise _HttpError(502, f"TARS answered HTTP {response.status}: {response.body[:300]}")
        self._run_settle()
        ack = _json_or_none(response.body)
        recorded = isinstance(ack, dict) and bool(ack.get("text"))
        # An ack with text in JSON is recorded by the emulator and shown from there; a bare-text ack is not,
        # so the page shows that one itself.
        local = None if recorded else (response.body.strip() or None)
        return {
            "ok": True,
            "ack": ack.get("text") if recorded and isinstance(ack, dict) else None,
            "local_ack": local,
        }

    def action(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{user, channel, message_ts, action_id, value}` presses a button; with `selected_option` (a value or
        `{value}`) instead of `value` it picks an option of a static select. Threads and DMs included."""
        persona = self._persona(body.get("user"))
        channel = _required(body, "channel")
        self._visible(persona, channel)
        message_ts = _required(body, "message_ts")
        action_id = _required(body, "action_id")
        try:
            if "selected_option" in body:
                option = body["selected_option"]
                value = option.get("value") if isinstance(option, dict) else option
                if not isinstance(value, str) or not value:
                    raise _HttpError(400, "selected_option must be an option's value (a non-empty string)")
                response = self.client.select_option(
                    user_id=persona.slack_id,
                    channel_id=channel,
                    message_ts=message_ts,
                    action_id=action_id,
                    option_value=value,
                )
            else:
                response = self.client.click_button(
                    user_id=persona.slack_id,
                    channel_id=channel,
                    message_ts=message_ts,
                    action_id=action_id,
                    value=_optional(body, "value"),
                )
        except LookupError as gone:
            # The message changed under the person (another persona acted first): say so, do not guess.
            raise _HttpError(409, f"that control is no longer on the message: {gone}") from None
        if response.status != 200:
            raise _HttpError(502, f"TARS answered HTTP {response.status}: {response.body[:300]}")
        self._run_settle()
        return {"ok": True}

    def submit_view(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{user, view_id, values: {block_id: {action_id: value}}}`; a value is a string, a list of strings
        (checkboxes, multi-selects) or null. TARS's `response_action: errors` comes back as `errors`."""
        persona = self._persona(body.get("user"))
        view_id = _required(body, "view_id")
        values = body.get("values", {})
        if not isinstance(values, dict) or not all(
            isinstance(block, str) and isinstance(actions, dict) and all(isinstance(a, str) for a in actions)
            for block, actions in values.items()
        ):
            raise _HttpError(400, "values must be {block_id: {action_id: value}}")
        for actions in values.values():
            for value in actions.values():
                if not (
                    value is None
                    or isinstance(value, str)
                    or (isinstance(value, list) and all(isinstance(v, str) for v in value))
                ):
                    raise _HttpError(400, "a form value is a string, a list of strings or null")
        if view_id not in {v.id for v in self.emulator.views(persona.slack_id)}:
            raise _HttpError(
                409, f"{persona.real_name} has no open form {view_id!r}; it was closed or replaced"
            )
        try:
            response = self.client.submit_view(user_id=persona.slack_id, view_id=view_id, values=values)
        except KeyError as unknown:
            raise _HttpError(400, str(unknown.args[0] if unknown.args else unknown)) from None
        except LookupError as unknown:
            raise _HttpError(400, str(unknown)) from None
        if response.status != 200:
            # Slack keeps the modal open with a generic error when the app fails; so does the page.
            raise _HttpError(502, f"TARS answered HTTP {response.status}: {response.body[:300]}")
        ack = _json_or_none(response.body)
        action = ack.get("response_action") if isinstance(ack, dict) else None
        if action == "errors" and isinstance(ack, dict):
            errors = ack.get("errors")
            return {
                "ok": False,
                "response_action": "errors",
                "errors": errors if isinstance(errors, dict) else {},
            }
        self._run_settle()
        return {"ok": True, "response_action": action}

    def close_view(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{user, view_id}`: Cancel or ×. Only the page forgets the modal (see `_dismissed`)."""
        persona = self._persona(body.get("user"))
        view_id = _required(body, "view_id")
        if view_id not in {v.id for v in self.emulator.views(persona.slack_id)}:
            raise _HttpError(409, f"{persona.real_name} has no open form {view_id!r}")
        with self._changes:
            self._dismissed.add(view_id)
        self._changed()
        return {"ok": True}

    def _run_settle(self) -> None:
        """Wait for TARS's follow-up work, so the page's request ends when what it caused is visible."""
        if self._settle is None:
            return
        try:
            self._settle()
        except Exception:
            # The request itself reached TARS; a failed wait only means the page learns of the rest by events.
            logger.exception("waiting for TARS to settle failed")

    # --- HTTP guards ----------------------------------------------------------------------------------------

    def _check_host(self, host_header: str | None) -> None:
        """Refuse requests for another host name: a DNS-rebinding page must not drive the sandbox."""
        if self.host not in _LOOPBACK:
            return
        allowed = {f"{name}:{self.port}" for name in ("127.0.0.1", "localhost", "[::1]")}
        if host_header not in allowed:
            raise _HttpError(403, f"this page answers on {self.url} only")

    def _check_post(self, headers: Any) -> None:
        """Only the page's own fetches may act: JSON (which another site cannot send without a CORS
        preflight this server never grants) and, when the browser says where from, from this origin."""
        content_type = str(headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            raise _HttpError(415, "send JSON (Content-Type: application/json)")
        origin = headers.get("Origin")
        if origin is not None and origin.rstrip("/") != f"http://{headers.get('Host')}":
            raise _HttpError(403, f"requests from {origin} are not accepted")


def _param(query: dict[str, str], name: str) -> str:
    value = query.get(name)
    if not value:
        raise _HttpError(400, f"missing query parameter {name!r}")
    return value


def _optional(body: dict[str, Any], name: str, *, limit: int = 1000) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _HttpError(400, f"{name!r} must be a string")
    if len(value) > limit:
        raise _HttpError(400, f"{name!r} is longer than {limit} characters")
    return value


def _required(body: dict[str, Any], name: str, *, limit: int = 1000) -> str:
    value = _optional(body, name, limit=limit)
    if value is None:
        raise _HttpError(400, f"missing {name!r}")
    return value


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return None


class _PageServer(ThreadingHTTPServer):
    # Event streams stay open for as long as a page is; they must not keep the process alive.
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], page: SandboxPage) -> None:
        super().__init__(address, _Handler)
        self.page = page


class _Handler(BaseHTTPRequestHandler):
    server: _PageServer
    server_version = "TarsSandboxPage/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes every request to stderr, over the sandbox's own output.
        logger.debug("sandbox page: " + format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, verb: str) -> None:
        page = self.server.page
        parts = urlsplit(self.path)
        try:
            page._check_host(self.headers.get("Host"))
            if verb == "GET" and parts.path == "/api/events":
                self._stream_events(page)
                return
            if verb == "GET":
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                reply = page._get(parts.path, query)
            else:
                page._check_post(self.headers)
                reply = page._post(parts.path, self._json_body())
        except _HttpError as error:
            reply = _json_reply({"error": error.message}, error.status)
        except Exception as error:
            logger.exception("sandbox page failed on %s %s", verb, self.path)
            reply = _json_reply({"error": f"the sandbox page failed: {error}; see its log"}, 500)
        self._send(reply)

    def _json_body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _HttpError(400, "bad Content-Length") from None
        if length > _MAX_BODY:
            raise _HttpError(413, f"request body over {_MAX_BODY} bytes")
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise _HttpError(400, f"the body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise _HttpError(400, "the body must be a JSON object")
        return body

    def _send(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("the browser went away before %s was answered", self.path)

    def _stream_events(self, page: SandboxPage) -> None:
        """Server-Sent Events: `changed` (data: the new version) whenever the emulator recorded a call, and
        a comment every few seconds so proxies and the browser keep the stream open."""
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            # Right away: a page that reconnects may have missed changes while it was away.
            with page._changes:
                seen = page._version
            self.wfile.write(f"retry: 1000\nevent: changed\ndata: {seen}\n\n".encode())
            while True:
                version = page._wait_for_change(seen, _KEEPALIVE_SECONDS)
                if version is None:
                    return
                if version == seen:
                    self.wfile.write(b": keep-alive\n\n")
                    continue
                seen = version
                self.wfile.write(f"event: changed\ndata: {version}\n\n".encode())
        except (BrokenPipeError, ConnectionResetError, OSError):
            logger.debug("an event stream closed")
