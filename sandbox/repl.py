"""`tars sandbox`: TARS on your laptop, no Slack workspace needed.

Starts the Slack Web API emulator on loopback, runs the real app behind its real HTTP endpoint, and gives you a
prompt: type `/incident ...` (signed exactly like Slack signs it), press a card's buttons by number, fill in
forms, and see what #incidents, threads and DMs would show.
"""

from __future__ import annotations

import secrets
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from bot.app import create_app
from bot.core.database import upgrade_database
from bot.core.settings import Config, load_config
from bot.ingress.http_server import HttpServer
from sandbox.emulator import RecordedCall, SignedSlackClient, SlackEmulator

YOU = "U0YOU"
TEAMMATE = "U0TEAMMATE"
DEFAULT_CHANNEL = "C0INCIDENTS"

HELP = """\
Type what you would type in Slack, or one of:
  /incident help              all incident commands (try: /incident declare payments P1 Card payments failing)
  <number>                    press that button on the latest card
  buttons                     list the buttons again
  card <incident>             press buttons on that incident's card instead, e.g. `card INC-1`
  as <user id|you|teammate>   act as someone else (approvals and acks by others), e.g. `as U0PAYONCALL`
  channel                     show #incidents as it is now
  quit                        stop TARS
"""


class Sandbox:
    def __init__(self, config: Config, out: TextIO) -> None:
        self.out = out
        self.emulator = SlackEmulator(bot_token="xoxb-sandbox")
        self.signing_secret = secrets.token_hex(16)
        self.config = config
        self.user = YOU
        self.events: list[RecordedCall] = []
        self.events_lock = threading.Lock()
        self.buttons: list[dict[str, Any]] = []
        self.focused_card: str | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.emulator.start()
        self.emulator.add_user(YOU, "you", "You")
        self.emulator.add_user(TEAMMATE, "teammate", "A Teammate")
        for name, service in self.config.services.items():
            self.emulator.add_user(service.oncall, f"{name}-oncall", f"On-call for {name}")
        self.config = self.config.model_copy(
            update={
                "slack_bot_token": "xoxb-sandbox",
                "slack_signing_secret": self.signing_secret,
                "slack_app_token": None,
                "slack_api_url": self.emulator.base_url,
                "incidents_channel": self.config.incidents_channel or DEFAULT_CHANNEL,
                "dry_run": True,  # the sandbox never changes a real cluster, whatever the catalog names
            }
        )
        self.app = create_app(self.config)
        upgrade_database(self.app.tars.engine)
        self.server = HttpServer(self.app.wsgi, host="127.0.0.1", port=0).start()
        self.app.tars.scheduler.start()
        self.client = SignedSlackClient(
            f"http://127.0.0.1:{self.server.port}/slack/events", self.signing_secret, self.emulator
        )
        self.emulator.subscribe(self._record)

    def stop(self) -> None:
        self.server.stop()
        self.app.close()
        self.emulator.stop()

    @property
    def channel(self) -> str:
        return self.config.incidents_channel or DEFAULT_CHANNEL

    # --- the prompt -----------------------------------------------------------------------------------------

    def run(self, lines: Iterator[str], interactive: bool) -> int:
        self._print(
            f"TARS sandbox: a local Slack emulator, TARS on http://127.0.0.1:{self.server.port}/slack/events, "
            f"database {self.config.database_url}.\nYou are <@{YOU}> in #incidents ({self.channel}). "
            f"Services: {', '.join(sorted(self.config.services))}.\n{HELP}"
        )
        self.lines = lines
        self.interactive = interactive
        while True:
            line = self._ask(f"{self._who()}@#incidents> ")
            if line is None:
                return 0
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line in ("quit", "exit"):
                return 0
            self.handle(line)

    def handle(self, line: str) -> None:
        if line == "help":
            self._print(HELP)
        elif line == "buttons":
            self._show_buttons()
        elif line == "channel":
            self._show_channel()
        elif line.startswith("card "):
            self._focus_incident(line[5:].strip())
        elif line.startswith("as "):
            self._switch_user(line[3:].strip())
        elif line.isdigit():
            self._press(int(line))
        elif line.startswith("/incident"):
            response = self.client.slash_command(
                line[len("/incident") :].strip(), user_id=self.user, channel_id=self.channel
            )
            self._show_ack(
                response.status, response.json() if response.body.startswith("{") else response.body
            )
            self._settle()
        else:
            self._print("Not understood. Commands start with /incident; `help` lists what else you can type.")

    # --- what Slack would show ------------------------------------------------------------------------------

    def _record(self, call: RecordedCall) -> None:
        with self.events_lock:
            self.events.append(call)

    def _settle(self) -> None:
        """Show everything TARS did in answer to the last action, then the buttons of the card in focus."""
        self._drain()
        if self.buttons:
            self._show_buttons()

    def _drain(self) -> None:
        """Wait until TARS has finished its follow-up work for the last action, and show it."""
        self.app.settle()
        with self.events_lock:
            events, self.events = self.events, []
        for call in events:
            self._show_call(call)

    def _show_call(self, call: RecordedCall) -> None:
        args = call.args
        if not call.ok:
            self._print(f"  (Slack answered {call.method} with {call.response.get('error')})")
            return
        if call.method == "chat.postMessage":
            channel = str(args.get("channel", ""))
            where = (
                "#incidents"
                if channel == self.channel
                else f"DM {channel}"
                if channel.startswith("D")
                else channel
            )
            if args.get("thread_ts"):
                where += " (thread)"
            self._print(f"\n── {where} ─ TARS:\n{_indent(str(args.get('text', '')))}")
            if not args.get("thread_ts") and channel == self.channel:
                self._focus(str(call.response.get("ts")))
        elif call.method == "chat.update":
            self._print(
                f"\n── #incidents ─ TARS updated the incident card:\n{_indent(str(args.get('text', '')))}"
            )
            self._focus(str(args.get("ts")))
        elif call.method in ("response_url", "chat.postEphemeral"):
            self._print(f"\n── only visible to you:\n{_indent(str(args.get('text', '')))}")
        elif call.method == "views.open":
            self._fill_form(call)

    def _show_ack(self, status: int, body: Any) -> None:
        if status != 200:
            self._print(f"  TARS answered HTTP {status}: {body}")
        elif isinstance(body, dict) and body.get("text"):
            self._print(f"\n── only visible to you:\n{_indent(str(body['text']))}")
        elif isinstance(body, str) and body:
            self._print(f"\n── only visible to you:\n{_indent(body)}")

    def _focus(self, ts: str) -> None:
        self.focused_card = ts
        self.buttons = []
        for element in self.client.message_actions(self.channel, ts):
            if element["type"] == "button":
                self.buttons.append({**element, "label": element["text"]})
            else:
                current = element.get("selected")
                for option in element.get("options") or []:
                    if option["value"] != current:
                        self.buttons.append(
                            {
                                **element,
                                "label": f"{element['text']} → {option['text']}",
                                "option": option["value"],
                            }
                        )

    def _focus_incident(self, ref: str) -> None:
        from bot.core.domain_errors import DomainError
        from bot.incidents.command_parser import parse_ref

        try:
            incident, _ = self.app.tars.flows.incident_with_timeline(parse_ref(ref, "card <incident>"))
        except DomainError as error:
            self._print(error.message)
            return
        if not incident.card_ts:
            self._print(f"{incident.ref} has no card.")
            return
        self._print(f"Buttons now act on the card of {incident.ref}.")
        self._focus(incident.card_ts)
        self._show_buttons()

    def _show_buttons(self) -> None:
        if not self.buttons:
            self._print("  (no buttons on the latest card)")
            return
        listing = "   ".join(f"[{n}] {b['label']}" for n, b in enumerate(self.buttons, start=1))
        self._print(f"  buttons: {listing}")

    def _show_channel(self) -> None:
        for message in self.emulator.channel_messages(self.channel):
            self._print(f"\n── {message.ts}:\n{_indent(message.text)}")

    # --- acting ---------------------------------------------------------------------------------------------

    def _press(self, number: int) -> None:
        if not 1 <= number <= len(self.buttons) or self.focused_card is None:
            self._print(f"There is no button {number}; `buttons` lists them.")
            return
        button = self.buttons[number - 1]
        if button["type"] == "button":
            response = self.client.click_button(
                user_id=self.user,
                channel_id=self.channel,
                message_ts=self.focused_card,
                action_id=button["action_id"],
                value=button["value"],
            )
        else:
            response = self.client.select_option(
                user_id=self.user,
                channel_id=self.channel,
                message_ts=self.focused_card,
                action_id=button["action_id"],
                option_value=button["option"],
            )
        self._show_ack(response.status, response.body)
        self._settle()

    def _fill_form(self, call: RecordedCall) -> None:
        view_id = str(call.response["view"]["id"])
        title = call.args["view"].get("title", {}).get("text", "Form")
        self._print(f"\n── a form opened: {title} (empty answer = leave blank)")
        fields = self.client.view_input_fields(view_id)
        values: dict[str, dict[str, Any]] = {}
        to_ask = fields
        while True:
            # Like Slack's form: answers stay, only the fields with an error are asked again.
            for field in to_ask:
                values[field["block_id"]] = {field["action_id"]: self._ask_field(field)}
            response = self.client.submit_view(user_id=self.user, view_id=view_id, values=values)
            body = response.json() if response.body else None
            if isinstance(body, dict) and body.get("response_action") == "errors":
                for block_id, message in body["errors"].items():
                    self._print(f"  ✗ {block_id}: {message}")
                to_ask = [f for f in fields if f["block_id"] in body["errors"]]
                continue
            self._drain()
            return

    def _ask_field(self, field: dict[str, Any]) -> str | None:
        options = field.get("options")
        label = field["label"] + ("" if not field.get("optional") else " (optional)")
        if options:
            label += " [" + ", ".join(str(o["value"]) for o in options) + "]"
        answer = (self._ask(f"  {label}: ") or "").strip()
        if field.get("type") in ("checkboxes", "multi_static_select"):
            return [part.strip() for part in answer.split(",") if part.strip()]  # type: ignore[return-value]
        return answer or None

    def _switch_user(self, who: str) -> None:
        aliases = {"you": YOU, "me": YOU, "teammate": TEAMMATE}
        user = aliases.get(who.lower(), who.upper())
        if not user.startswith(("U", "W")):
            self._print("`as` takes a Slack user id (U...), `you` or `teammate`.")
            return
        self.user = user
        self._print(f"You are now <@{user}>.")

    def _who(self) -> str:
        return {YOU: "you", TEAMMATE: "teammate"}.get(self.user, self.user)

    # --- terminal -------------------------------------------------------------------------------------------

    def _ask(self, prompt: str) -> str | None:
        if self.interactive:
            try:
                return input(prompt)
            except EOFError:
                return None
        line = next(self.lines, None)
        if line is not None:
            self._print(prompt + line.rstrip("\n"))
        return line

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.split("\n"))


def run_sandbox(script: str | None = None, out: TextIO | None = None) -> int:
    config = load_config()
    sandbox = Sandbox(config, out or sys.stdout)
    sandbox.start()
    try:
        if script is None:
            return sandbox.run(iter(()), interactive=True)
        with open(script, encoding="utf-8") if script != "-" else _stdin() as source:
            return sandbox.run(iter(source.readlines()), interactive=False)
    finally:
        sandbox.stop()


def _stdin() -> TextIO:
    # A context manager that does not close the real stdin.
    import contextlib

    return contextlib.nullcontext(sys.stdin)  # type: ignore[return-value]
