"""Sends requests into the app exactly as Slack's servers do: signed slash commands and interactions.

Payload shapes follow what Slack actually posts (form-encoded slash commands, ``payload=<json>`` for
block_actions and view_submission) so the app's request parsing and signature checks are exercised for real.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sandbox.emulator.slack_api import SlackEmulator

_FORM = "application/x-www-form-urlencoded"

# Where each element type keeps the user's input in view.state.values, and what its initial_* field is.
_TEXT_LIKE = {"plain_text_input", "number_input", "email_text_input", "url_text_input"}
_SINGLE_OPTION = {"static_select", "external_select", "radio_buttons"}
_MULTI_OPTION = {"multi_static_select", "multi_external_select", "checkboxes"}
_SCALAR_STATE: dict[str, tuple[str, str]] = {
    # element type: (state key, initial key)
    "users_select": ("selected_user", "initial_user"),
    "conversations_select": ("selected_conversation", "initial_conversation"),
    "channels_select": ("selected_channel", "initial_channel"),
    "datepicker": ("selected_date", "initial_date"),
    "timepicker": ("selected_time", "initial_time"),
    "datetimepicker": ("selected_date_time", "initial_date_time"),
}
_LIST_STATE: dict[str, tuple[str, str]] = {
    "multi_users_select": ("selected_users", "initial_users"),
    "multi_conversations_select": ("selected_conversations", "initial_conversations"),
    "multi_channels_select": ("selected_channels", "initial_channels"),
}
_STATEFUL_TYPES = (
    _TEXT_LIKE | _SINGLE_OPTION | _MULTI_OPTION | set(_SCALAR_STATE) | set(_LIST_STATE) | {"rich_text_input"}
)
_UNSET = object()


@dataclass(frozen=True)
class SlackHttpResponse:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        return str(obj.get("text", ""))
    return "" if obj is None else str(obj)


def _options_of(element: dict[str, Any]) -> list[dict[str, Any]]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return [o for o in options if isinstance(o, dict)]


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _action_ts() -> str:
    return f"{time.time():.6f}"


class SignedSlackClient:
    """Sends requests into the app exactly as Slack's servers do."""

    def __init__(
        self,
        app_url: str,
        signing_secret: str,
        emulator: SlackEmulator,
        *,
        api_app_id: str = "A0TARS",
        verification_token: str = "legacy-verification-token",
    ) -> None:
        self.app_url = app_url
        self.signing_secret = signing_secret
        self.emulator = emulator
        self.api_app_id = api_app_id
        self.verification_token = verification_token

    # ------------------------------------------------------------------ transport

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = int(time.time()) if timestamp is None else timestamp
        base = b"v0:" + str(ts).encode() + b":" + body
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}

    def post(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> SlackHttpResponse:
        headers = self.sign(body, timestamp)
        if signature is not None:
            # Lets tests send a deliberately wrong signature while keeping everything else genuine.
            headers["X-Slack-Signature"] = signature
        headers["Content-Type"] = content_type
        headers["User-Agent"] = "Slackbot 1.0 (+https://api.slack.com/robots)"
        request = urllib.request.Request(self.app_url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return SlackHttpResponse(
                    resp.status, dict(resp.headers.items()), resp.read().decode("utf-8", "replace")
                )
        except urllib.error.HTTPError as err:
            # 4xx/5xx are answers the caller wants to assert on, not transport failures.
            with err:
                text = err.read().decode("utf-8", "replace")
            return SlackHttpResponse(err.code, dict(err.headers.items()), text)

    def _post_payload(self, payload: dict[str, Any]) -> SlackHttpResponse:
        body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
        return self.post(body, _FORM)

    # ------------------------------------------------------------------ common payload parts

    def _user(self, user_id: str) -> dict[str, Any]:
        name = self.emulator._user_name(user_id)
        return {"id": user_id, "username": name, "name": name, "team_id": self.emulator.team_id}

    def _team(self) -> dict[str, Any]:
        return {"id": self.emulator.team_id, "domain": self.emulator.team_domain}

    # ------------------------------------------------------------------ slash commands

    def slash_command(
        self,
        text: str,
        *,
        user_id: str,
        channel_id: str,
        command: str = "/incident",
        user_name: str | None = None,
        timestamp: int | None = None,
    ) -> SlackHttpResponse:
        fields = {
            "token": self.verification_token,
            "team_id": self.emulator.team_id,
            "team_domain": self.emulator.team_domain,
            "channel_id": channel_id,
            "channel_name": self.emulator._channel_name(channel_id),
            "user_id": user_id,
            "user_name": user_name or self.emulator._user_name(user_id),
            "command": command,
            # Slack escapes &, < and > in what the person typed before sending it.
            "text": text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": self.emulator.new_response_url(channel_id, user_id),
            "trigger_id": self.emulator.new_trigger_id(user_id),
        }
        response = self.post(urlencode(fields).encode(), _FORM, timestamp=timestamp)
        if response.status == 200 and response.body.strip().startswith("{"):
            answer = response.json()
            if isinstance(answer, dict) and answer.get("text"):
                self.emulator.record_command_ack(channel_id, user_id, answer)
        return response

    # ------------------------------------------------------------------ message interactions

    def message_actions(self, channel_id: str, message_ts: str) -> list[dict[str, Any]]:
        message = self.emulator._message_payload(channel_id, message_ts)
        return [self._describe(block, element) for block, element in self._interactive(message)]

    @staticmethod
    def _interactive(message: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        found: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for block in message.get("blocks") or []:
            candidates: list[Any] = []
            if block.get("type") == "actions":
                candidates = list(block.get("elements") or [])
            elif block.get("type") == "section" and isinstance(block.get("accessory"), dict):
                candidates = [block["accessory"]]
            found += [
                (block, el)
                for el in candidates
                if isinstance(el, dict) and el.get("type") in ("button", "static_select")
            ]
        return found

    @staticmethod
    def _describe(block: dict[str, Any], element: dict[str, Any]) -> dict[str, Any]:
        kind = element["type"]
        entry: dict[str, Any] = {
            "action_id": element.get("action_id"),
            "block_id": block.get("block_id"),
            "type": kind,
            "text": _text_of(element.get("text") if kind == "button" else element.get("placeholder")),
            "value": element.get("value") if kind == "button" else None,
        }
        if kind == "static_select":
            entry["options"] = [
                {"text": _text_of(o.get("text")), "value": o.get("value")} for o in _options_of(element)
            ]
            initial = element.get("initial_option")
            entry["selected"] = initial.get("value") if isinstance(initial, dict) else None
        return entry

    def _interaction_base(self, user_id: str, channel_id: str, message_ts: str) -> dict[str, Any]:
        message = self.emulator._message_payload(channel_id, message_ts)
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        }
        if message.get("thread_ts"):
            container["thread_ts"] = message["thread_ts"]
        return {
            "type": "block_actions",
            "user": self._user(user_id),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "container": container,
            "trigger_id": self.emulator.new_trigger_id(user_id),
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": self.emulator._channel_name(channel_id)},
            "message": message,
            "state": {"values": {}},
            "response_url": self.emulator._register_response_url(channel_id, user_id, message_ts),
        }

    def _find_message(self, channel_id: str, message_ts: str) -> dict[str, Any]:
        try:
            return self.emulator._message_payload(channel_id, message_ts)
        except KeyError as err:
            raise LookupError(str(err.args[0])) from None

    def click_button(
        self,
        *,
        user_id: str,
        channel_id: str,
        message_ts: str,
        action_id: str,
        value: str | None = None,
    ) -> SlackHttpResponse:
        message = self._find_message(channel_id, message_ts)
        buttons = [(b, e) for b, e in self._interactive(message) if e["type"] == "button"]
        matches = [(b, e) for b, e in buttons if e.get("action_id") == action_id]
        if value is not None:
            matches = [(b, e) for b, e in matches if e.get("value") == value]
        available = ", ".join(f"{e.get('action_id')}={e.get('value')!r}" for _, e in buttons) or "none"
        if not matches:
            raise LookupError(
                f"no button action_id={action_id!r} value={value!r} in message {message_ts} "
                f"of {channel_id}; available buttons: {available}"
            )
        if len(matches) > 1:
            raise LookupError(
                f"{len(matches)} buttons have action_id={action_id!r}; pass value= to pick one: {available}"
            )
        block, element = matches[0]
        action: dict[str, Any] = {
            "type": "button",
            "action_id": element["action_id"],
            "block_id": block["block_id"],
            "text": element.get("text") or _plain(""),
            "value": element.get("value"),
        }
        if element.get("style"):
            action["style"] = element["style"]
        action["action_ts"] = _action_ts()
        payload = self._interaction_base(user_id, channel_id, message_ts)
        payload["actions"] = [action]
        return self._post_payload(payload)

    def forged_action(
        self, *, user_id: str, channel_id: str, message_ts: str, action: dict[str, Any]
    ) -> SlackHttpResponse:
        """A click on a real message whose action a hostile client rewrote (another value, a missing field):
        everything else, the message and its location included, is what Slack reports, and it is signed."""
        self._find_message(channel_id, message_ts)
        payload = self._interaction_base(user_id, channel_id, message_ts)
        payload["actions"] = [{"block_id": "forged", "action_ts": _action_ts(), **action}]
        return self._post_payload(payload)

    def select_option(
        self,
        *,
        user_id: str,
        channel_id: str,
        message_ts: str,
        action_id: str,
        option_value: str,
    ) -> SlackHttpResponse:
        message = self._find_message(channel_id, message_ts)
        selects = [
            (b, e)
            for b, e in self._interactive(message)
            if e["type"] == "static_select" and e.get("action_id") == action_id
        ]
        if not selects:
            available = [
                e.get("action_id") for _, e in self._interactive(message) if e["type"] == "static_select"
            ]
            raise LookupError(
                f"no static_select action_id={action_id!r} in message {message_ts}; have {available}"
            )
        for block, element in selects:
            option = next((o for o in _options_of(element) if o.get("value") == option_value), None)
            if option is None:
                continue
            action: dict[str, Any] = {
                "type": "static_select",
                "action_id": element["action_id"],
                "block_id": block["block_id"],
                "selected_option": {"text": option.get("text"), "value": option.get("value")},
            }
            if element.get("placeholder"):
                action["placeholder"] = element["placeholder"]
            action["action_ts"] = _action_ts()
            payload = self._interaction_base(user_id, channel_id, message_ts)
            payload["actions"] = [action]
            return self._post_payload(payload)
        values = [o.get("value") for _, e in selects for o in _options_of(e)]
        raise LookupError(f"static_select {action_id!r} has no option {option_value!r}; options: {values}")

    # ------------------------------------------------------------------ modals

    @staticmethod
    def _stateful_elements(blocks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Every (block, element) whose value Slack reports in view.state.values, in display order."""
        found: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for block in blocks:
            candidates: list[Any] = []
            if block.get("type") == "input":
                candidates = [block.get("element")]
            elif block.get("type") == "section":
                candidates = [block.get("accessory")]
            elif block.get("type") == "actions":
                candidates = list(block.get("elements") or [])
            found += [
                (block, el) for el in candidates if isinstance(el, dict) and el.get("type") in _STATEFUL_TYPES
            ]
        return found

    def view_input_fields(self, view_id: str) -> list[dict[str, Any]]:
        view = self.emulator._view_payload(view_id)
        fields: list[dict[str, Any]] = []
        for block in view.get("blocks") or []:
            element = block.get("element")
            if block.get("type") != "input" or not isinstance(element, dict):
                continue
            kind = str(element.get("type"))
            entry: dict[str, Any] = {
                "block_id": block.get("block_id"),
                "action_id": element.get("action_id"),
                "type": kind,
                "label": _text_of(block.get("label")),
                "optional": bool(block.get("optional", False)),
            }
            if kind in _SINGLE_OPTION or kind in _MULTI_OPTION:
                entry["options"] = [
                    {"text": _text_of(o.get("text")), "value": o.get("value")} for o in _options_of(element)
                ]
            initial = self._initial_raw(element)
            if initial is not None:
                entry["initial_value"] = initial
            fields.append(entry)
        return fields

    @staticmethod
    def _initial_raw(element: dict[str, Any]) -> Any:
        """The element's initial value in the same raw form submit_view accepts."""
        kind = element.get("type")
        if kind in _TEXT_LIKE:
            return element.get("initial_value")
        if kind == "rich_text_input":
            return element.get("initial_value")
        if kind in _SINGLE_OPTION:
            option = element.get("initial_option")
            return option.get("value") if isinstance(option, dict) else None
        if kind in _MULTI_OPTION:
            options = element.get("initial_options")
            return [o.get("value") for o in options] if options else None
        if kind in _SCALAR_STATE:
            return element.get(_SCALAR_STATE[kind][1])
        if kind in _LIST_STATE:
            return element.get(_LIST_STATE[kind][1])
        return None

    @staticmethod
    def _find_option(element: dict[str, Any], value: Any) -> dict[str, Any]:
        for option in _options_of(element):
            if option.get("value") == value:
                return {"text": option.get("text"), "value": option.get("value")}
        if str(element.get("type", "")).endswith("external_select"):
            # External selects load options from the app at runtime, so any value is plausible.
            return {"text": _plain(str(value)), "value": value}
        values = [o.get("value") for o in _options_of(element)]
        raise LookupError(f"{element.get('action_id')!r} has no option {value!r}; options: {values}")

    def _element_state(self, element: dict[str, Any], raw: Any) -> dict[str, Any]:
        kind = str(element.get("type"))
        state: dict[str, Any] = {"type": kind}
        if kind in _TEXT_LIKE:
            state["value"] = None if raw is None else str(raw)
        elif kind == "rich_text_input":
            if raw is None or isinstance(raw, dict):
                state["rich_text_value"] = raw
            else:
                section = {"type": "rich_text_section", "elements": [{"type": "text", "text": str(raw)}]}
                state["rich_text_value"] = {"type": "rich_text", "elements": [section]}
        elif kind in _SINGLE_OPTION:
            state["selected_option"] = None if raw is None else self._find_option(element, raw)
        elif kind in _MULTI_OPTION:
            items = [] if raw is None else [raw] if isinstance(raw, str) else list(raw)
            state["selected_options"] = [self._find_option(element, v) for v in items]
        elif kind == "datetimepicker":
            state["selected_date_time"] = None if raw is None else int(raw)
        elif kind in _SCALAR_STATE:
            state[_SCALAR_STATE[kind][0]] = raw
        elif kind in _LIST_STATE:
            state[_LIST_STATE[kind][0]] = [] if raw is None else [raw] if isinstance(raw, str) else list(raw)
        return state

    def submit_view(
        self, *, user_id: str, view_id: str, values: dict[str, dict[str, Any]]
    ) -> SlackHttpResponse:
        """Submit a stored modal; raises KeyError for unknown (or already closed) views and unknown inputs.

        Inputs left out of ``values`` keep their initial_* value, as an untouched pre-filled field does in
        Slack; without one they are reported empty (value / selected_option None).
        """
        stored = self.emulator._get_view(view_id)
        if stored.closed:
            raise KeyError(f"view {view_id!r} is closed; Slack cannot submit it")
        view = self.emulator._view_payload(view_id)
        elements = self._stateful_elements(view.get("blocks") or [])
        known = {(b["block_id"], e["action_id"]) for b, e in elements}
        unknown = [
            (bid, aid) for bid, actions in values.items() for aid in actions if (bid, aid) not in known
        ]
        if unknown:
            raise KeyError(f"view {view_id!r} has no inputs {unknown}; it has {sorted(known)}")

        state_values: dict[str, dict[str, Any]] = {}
        for block, element in elements:
            given = values.get(block["block_id"], {}).get(element["action_id"], _UNSET)
            raw = self._initial_raw(element) if given is _UNSET else given
            state_values.setdefault(block["block_id"], {})[element["action_id"]] = self._element_state(
                element, raw
            )

        view["state"] = {"values": state_values}
        view["app_id"] = self.api_app_id
        payload = {
            "type": "view_submission",
            "team": self._team(),
            "user": self._user(user_id),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "trigger_id": self.emulator.new_trigger_id(user_id),
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        response = self._post_payload(payload)
        try:
            ack = response.json()
        except json.JSONDecodeError:
            ack = None
        self.emulator._apply_view_submission(view_id, response.status, ack)
        return response
