"""`tars sandbox`: TARS on your laptop, no Slack workspace needed.

Starts the Slack Web API emulator on loopback, the demo world (a Kubernetes cluster, AWS, GitHub, a metrics
source and an alert source, all simulated: `sandbox/demo_world.py`), runs the real app behind its real HTTP
endpoint, serves a browser page that looks like the channel, and gives you a prompt: type `/incident ...`
(signed exactly like Slack signs it), press a card's buttons by number, fill in forms, fire alerts, let time
pass, and see what #incidents, threads and DMs would show.
"""

from __future__ import annotations

import errno
import secrets
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from bot.app import create_app
from bot.core.database import make_engine, upgrade_database
from bot.core.durations import format_duration, parse_duration
from bot.core.settings import Config, load_config
from bot.ingress.http_server import HttpServer, PortInUse
from sandbox.demo_world import PERSONAS, DemoWorld
from sandbox.emulator import RecordedCall, SignedSlackClient, SlackEmulator
from sandbox.web import PageControl, SandboxPage

YOU = PERSONAS["you"].slack_id
DEFAULT_CHANNEL = "C0INCIDENTS"
# `tars sandbox --script demo` plays this: the whole story, from an alert to the post-mortem.
DEMO_SCRIPT = Path(__file__).with_name("demo_script.txt")

HELP = """\
Type what you would type in Slack, or one of:
  /incident help              all incident commands (try: /incident declare payments P1 Card payments failing)
  <number>                    press that button on the latest card
  buttons                     list the buttons again
  card <incident>             press buttons on that incident's card instead, e.g. `card INC-1`
  as <who>                    act as someone else: {personas}
  alert <service> <name>      an alert fires (Alertmanager), e.g. `alert payments HighErrorRate`
  wait <duration>             let time pass (e.g. `wait 5m`): TARS's reminders and validations come due
  channel                     show #incidents as it is now
  quit                        stop TARS
"""


class DemoClock:
    """The sandbox's time: the real clock, plus whatever `wait` added. TARS and the demo world share it, so
    "5 minutes after the fix" is the same moment for TARS's validation and for the metrics it reads."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta

    def seconds(self) -> float:
        return self.now().timestamp()


class Sandbox:
    def __init__(self, config: Config, out: TextIO) -> None:
        self.out = out
        self.clock = DemoClock()
        self.world = DemoWorld(clock=self.clock.seconds)
        self.emulator = SlackEmulator(bot_token="xoxb-sandbox")
        self.signing_secret = secrets.token_hex(16)
        self.config = config
        self.user = YOU
        self.events: list[RecordedCall] = []
        self.events_lock = threading.Lock()
        self.buttons: list[dict[str, Any]] = []
        # The message whose buttons the numbers press: (channel, ts); a card, or an approval card in a thread.
        self.focused_card: tuple[str, str] | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self, *, page_port: int = 0) -> None:
        self.emulator.start()
        self.world.start()
        for persona in PERSONAS.values():
            self.emulator.add_user(persona.slack_id, persona.name, persona.real_name)
        # The demo world's catalog and platforms: remediation runs for real against the simulations, so the
        # sandbox is not a dry run.
        self.config = self.config.model_copy(
            update={
                **self.world.config_overrides(),
                "slack_bot_token": "xoxb-sandbox",
                "slack_signing_secret": self.signing_secret,
                "slack_app_token": None,
                "slack_api_url": self.emulator.base_url,
                "incidents_channel": self.config.incidents_channel or DEFAULT_CHANNEL,
            }
        )
        # Migrated before TARS starts, so its delivery workers never look for tables that are not there yet.
        engine = make_engine(self.config.database_url)
        upgrade_database(engine)
        self.app = create_app(
            self.config,
            clock=self.clock,
            engine=engine,
            platforms=self.world.platforms(self.config),
            github=self.world.github_client(),
        )
        self.server = HttpServer(self.app.wsgi, host="127.0.0.1", port=0).start()
        self.app.tars.scheduler.start()
        self.client = SignedSlackClient(
            f"http://127.0.0.1:{self.server.port}/slack/events", self.signing_secret, self.emulator
        )
        self.page = SandboxPage(
            self.emulator,
            self.client,
            list(PERSONAS.values()),
            self.channel,
            settle=self.app.settle,
            port=page_port,
            controls=[
                PageControl(
                    "🔔 Alert: payments errors", lambda: self.fire_alert("payments", "HighErrorRate")
                ),
                PageControl("⏩ 5 minutes later", lambda: self.later(timedelta(minutes=5))),
            ],
        ).start()
        self.emulator.subscribe(self._record)

    def stop(self) -> None:
        """Stop what has started, in reverse order; after a failed start, only that much."""
        for part, stop in (("page", "stop"), ("server", "stop"), ("app", "close")):
            if hasattr(self, part):
                getattr(getattr(self, part), stop)()
        self.world.stop()
        self.emulator.stop()

    @property
    def channel(self) -> str:
        return self.config.incidents_channel or DEFAULT_CHANNEL

    # --- the prompt -----------------------------------------------------------------------------------------

    def run(self, lines: Iterator[str], interactive: bool) -> int:
        people = ", ".join(f"{p.name.split('.')[0]} ({p.role})" for p in PERSONAS.values())
        self._print(
            f"TARS sandbox: open {self.page.url} in a browser to see #incidents as Slack would show it.\n"
            f"TARS on http://127.0.0.1:{self.server.port}/slack/events, database {self.config.database_url}.\n"
            f"You are <@{YOU}> in #incidents ({self.channel}). Services: {', '.join(sorted(self.config.services))}"
            f" (simulated: payments on Kubernetes, checkout on ECS; both had a bad deploy a moment ago).\n"
            f"People: {people}.\n{self._help()}"
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

    def _help(self) -> str:
        return HELP.format(personas=", ".join(p.name.split(".")[0] for p in PERSONAS.values()))

    def handle(self, line: str) -> None:
        if line == "help":
            self._print(self._help())
        elif line.startswith("alert "):
            self._alert(line[len("alert ") :].split())
        elif line.startswith("wait "):
            self._wait(line[len("wait ") :].strip())
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
            posted = str(call.response.get("channel") or channel)
            ts = str(call.response.get("ts"))
            top_level_card = not args.get("thread_ts") and channel == self.channel
            if top_level_card or self.client.message_actions(posted, ts):
                self._focus(posted, ts)
        elif call.method == "chat.update":
            self._print(f"\n── #incidents ─ TARS updated a card:\n{_indent(str(args.get('text', '')))}")
            updated = (str(args.get("channel") or self.channel), str(args.get("ts")))
            # The card in focus gets its new buttons; another card's update does not steal the focus.
            if updated == self.focused_card or self.focused_card is None:
                self._focus(*updated)
        elif call.method == "files.completeUploadExternal":
            titles = ", ".join(str(f.get("title") or f.get("name")) for f in call.response.get("files") or [])
            where = "#incidents (thread)" if args.get("thread_ts") else "#incidents"
            comment = str(args.get("initial_comment") or "")
            self._print(f"\n── {where} ─ TARS shared {titles} (open the page to see it):\n{_indent(comment)}")
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

    def _focus(self, channel: str, ts: str) -> None:
        self.focused_card = (channel, ts)
        self.buttons = []
        for element in self.client.message_actions(channel, ts):
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
        self._focus(incident.channel_id or self.channel, incident.card_ts)
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
        channel, ts = self.focused_card
        try:
            if button["type"] == "button":
                response = self.client.click_button(
                    user_id=self.user,
                    channel_id=channel,
                    message_ts=ts,
                    action_id=button["action_id"],
                    value=button["value"],
                )
            else:
                response = self.client.select_option(
                    user_id=self.user,
                    channel_id=channel,
                    message_ts=ts,
                    action_id=button["action_id"],
                    option_value=button["option"],
                )
        except LookupError:
            # Someone (in the browser page, say) changed the card since its buttons were listed.
            self._print("That button is no longer on the card; `buttons` lists what it has now.")
            self._focus(channel, ts)
            return
        self._show_ack(response.status, response.body)
        self._settle()

    def _fill_form(self, call: RecordedCall) -> None:
        view_id = str(call.response["view"]["id"])
        if view_id not in {view.id for view in self.emulator.views(self.user)}:
            return  # someone else's form (opened from the browser page), or already closed
        title = call.args["view"].get("title", {}).get("text", "Form")
        self._print(f"\n── a form opened: {title} (empty answer = keep what is filled in, or leave blank)")
        fields = self.client.view_input_fields(view_id)
        values: dict[str, dict[str, Any]] = {}
        to_ask = fields
        while True:
            # Like Slack's form: answers stay, only the fields with an error are asked again.
            try:
                for field in to_ask:
                    values[field["block_id"]] = {field["action_id"]: self._ask_field(field)}
            except EOFError:
                self._print("  (the input ended; the form was left unsubmitted)")
                return
            try:
                response = self.client.submit_view(user_id=self.user, view_id=view_id, values=values)
            except LookupError:
                self._print("  (the form was closed elsewhere, in the browser page, before it was sent)")
                return
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
        initial = field.get("initial_value")
        if initial:
            shown = ", ".join(initial) if isinstance(initial, list) else str(initial)
            label += f" (filled in: {shown})"
        typed = self._ask(f"  {label}: ")
        if typed is None:
            raise EOFError
        answer = typed.strip()
        if not answer and initial:
            return initial  # type: ignore[no-any-return]
        if field.get("type") in ("checkboxes", "multi_static_select"):
            return [part.strip() for part in answer.split(",") if part.strip()]  # type: ignore[return-value]
        return answer or None

    def _switch_user(self, who: str) -> None:
        aliases = {p.name.split(".")[0]: p.slack_id for p in PERSONAS.values()} | {"me": YOU}
        user = aliases.get(who.lower(), who.upper())
        if not user.startswith(("U", "W")):
            self._print(f"`as` takes one of {', '.join(sorted(aliases))}, or a Slack user id (U...).")
            return
        self.user = user
        self._print(f"You are now <@{user}>.")

    def _who(self) -> str:
        return next((p.name.split(".")[0] for p in PERSONAS.values() if p.slack_id == self.user), self.user)

    def fire_alert(self, service: str, name: str) -> str:
        """The alert source fires: Alertmanager's webhook, with its bearer token, into TARS."""
        try:
            status, body = self.world.fire_alert(f"http://127.0.0.1:{self.server.port}", service, name)
        except OSError as error:
            return f"TARS answered the alert with an error: {error}"
        if status != 200:
            return f"TARS answered the alert with HTTP {status}: {body}"
        return f"{service} {name} fired"

    def later(self, delta: timedelta) -> str:
        """Let time pass for TARS and the demo world alike, and run what came due meanwhile. Work in flight
        finishes first: moving the clock under a leased post would let another worker take it over."""
        self.app.settle()
        self.clock.advance(delta)
        self.app.tars.scheduler.tick()  # now, rather than at the next tick
        return f"{format_duration(delta)} later: {self.clock.now():%H:%M} UTC"

    def _alert(self, words: list[str]) -> None:
        if len(words) != 2 or words[0] not in self.config.services:
            self._print(
                f"`alert` takes a service ({', '.join(sorted(self.config.services))}) and an alert name."
            )
            return
        said = self.fire_alert(words[0], words[1])
        if said.startswith("TARS answered"):
            self._print(f"  {said}")
        self._settle()

    def _wait(self, text: str) -> None:
        try:
            delta = parse_duration(text)
        except ValueError as error:
            self._print(str(error))
            return
        self._print(f"  ({self.later(delta)})")
        self._settle()

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


def run_sandbox(script: str | None = None, out: TextIO | None = None, page_port: int = 0) -> int:
    config = load_config()
    sandbox = Sandbox(config, out or sys.stdout)
    try:
        sandbox.start(page_port=page_port)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        sandbox.stop()
        raise PortInUse(
            f"port {page_port} is taken, so the sandbox page cannot start there; "
            "pick another with --port or TARS_SANDBOX_PORT (0 takes a free one)"
        ) from None
    try:
        if script is None:
            return sandbox.run(iter(()), interactive=True)
        if script == "demo":
            script = str(DEMO_SCRIPT)
        with open(script, encoding="utf-8") if script != "-" else _stdin() as source:
            return sandbox.run(iter(source.readlines()), interactive=False)
    finally:
        sandbox.stop()


def _stdin() -> TextIO:
    # A context manager that does not close the real stdin.
    import contextlib

    return contextlib.nullcontext(sys.stdin)  # type: ignore[return-value]
