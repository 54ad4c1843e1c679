"""Slack delivery under a burst of changes, against a Slack stand-in that enforces Slack's published rate limits.

TARS runs as `python -m bot.cli serve` (configured from the environment as in production) on a fresh Postgres
database that this script creates and drops, talking to a Slack emulator in this process with rate limits on:
a call beyond Slack's published limits is answered 429, as Slack does. Five incidents are declared through TARS
first. Then, for `--seconds` (20; `--quick`: 5), 20 responders, each a thread with its own Slack user, loop:
look at the card of one of the five incidents as the emulator shows it, change something it offers (a status
button, Acknowledge, the severity select, `/incident update <id> <findings>`, `/incident status <id> <status>`),
think for 0.2 to 1 s. A reporter declares a new incident about every 3 s. Every request is signed as Slack signs
it; its ack (the HTTP answer) is timed by the client.

After the burst, the script waits (at most 60 s) until every card shows its incident's newest state as stored
(status, severity, acknowledged, latest findings). Targets:
- no call answered 429;
- every 🚨 card posted within 2 s of the ack of its declaration;
- every card showing its incident's newest state within 10 s of the ack of its last change: the first card write
  (chat.postMessage or chat.update, timestamped by the emulator) showing the final state, after that change was
  sent.
Also shown: Slack Web API calls per state change (calls made during the burst, 429s included, over the changes
stored during it; posts still queued after the burst are not in it), ack latency, and private-reply latency (a
command's reply is its ack body; a click gets a private reply, via its response_url, only when it is refused).

Usage: .venv/bin/python bench/delivery.py [--quick] [--seconds 20] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, text

from bot.slack import rendering
from sandbox.emulator import RecordedCall, SignedSlackClient, SlackEmulator, SlackHttpResponse

# bench/ is this script's directory, so its sibling is importable: the same server start-up as ack_latency.
from ack_latency import Server, machine, server_process, verdict  # isort: skip

SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench-token"
CHANNEL = "C0INCIDENTS"
ONCALL = {
    "payments": "U0PAYONCALL",
    "checkout": "U0CHKONCALL",
    "search": "U0SRCHONCALL",
    "identity": "U0IDONCALL",
}
RESPONDERS = [f"U0RESP{n:02d}" for n in range(1, 21)]
REPORTER = "U0REPORTER"
SEEDED = 5
DECLARE_EVERY = 3.0
THINK = (0.2, 1.0)
SETTLE_MAX = 60.0
STATUSES = ["investigating", "mitigating", "monitoring"]
# What a responder does, out of every 100 loops; Acknowledge only while the card still offers it (else a
# status button).
MIX = {"click status": 30, "click ack": 10, "select severity": 15, "update": 30, "status": 15}
# Timeline kinds that are a state change made by a person.
CHANGE_KINDS = ("declared", "acknowledged", "status_changed", "severity_changed", "update")

# Targets.
MAX_429 = 0
DECLARE_POST_MAX_S = 2.0
CARD_LAG_MAX_S = 10.0

API_PSEUDO_METHODS = {"response_url", "command_ack"}


# --- what the emulator shows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardState:
    status: str
    severity: int
    acknowledged: bool
    findings: str | None


CARD_REF = re.compile(r"^🚨 INCIDENT P(\d): \S+ — INC-(\d+)$", re.MULTILINE)
CARD_STATUS = re.compile(r"^Status: (\w+)$", re.MULTILINE)
FINDINGS_FIELD = "*Latest findings*\n"


def card_incident(text_: str) -> int | None:
    match = CARD_REF.search(text_)
    return int(match.group(2)) if match else None


def card_state(text_: str, blocks: list[dict[str, Any]]) -> CardState | None:
    """The state a card message shows: from its text (status, severity, acknowledged) and its findings field."""
    ref, status = CARD_REF.search(text_), CARD_STATUS.search(text_)
    if ref is None or status is None:
        return None
    findings = None
    for block in blocks:
        for item in block.get("fields") or []:
            if isinstance(item, dict) and str(item.get("text", "")).startswith(FINDINGS_FIELD):
                findings = str(item["text"])[len(FINDINGS_FIELD) :]
    return CardState(status.group(1).lower(), int(ref.group(1)), "\nAcknowledged: " in text_, findings)


@dataclass(frozen=True)
class CardWrite:
    incident_id: int
    at: float
    method: str
    state: CardState | None


class Recorder:
    """Subscribed to the emulator: every card write, 🚨 post and response_url reply, with the emulator's time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.card_writes: list[CardWrite] = []
        self.replies: list[RecordedCall] = []

    def __call__(self, call: RecordedCall) -> None:
        if call.method == "response_url":
            with self.lock:
                self.replies.append(call)
            return
        if call.method not in ("chat.postMessage", "chat.update") or not call.ok:
            return
        if call.args.get("channel") != CHANNEL or call.args.get("thread_ts"):
            return
        text_ = str(call.args.get("text") or "")
        incident_id = card_incident(text_)
        if incident_id is None:
            return
        blocks = call.args.get("blocks") or []
        write = CardWrite(incident_id, call.at, call.method, card_state(text_, list(blocks)))
        with self.lock:
            self.card_writes.append(write)


# --- requests -----------------------------------------------------------------------------------------------------


@dataclass
class Sent:
    kind: str
    user: str
    incident_id: int | None
    sent_at: float  # wall clock, comparable with the emulator's and TARS's timestamps
    acked_at: float
    status: int
    reply: str  # a command's ack body text ("" when none)

    @property
    def ack_seconds(self) -> float:
        return self.acked_at - self.sent_at


class TimedClient(SignedSlackClient):
    """SignedSlackClient that times the HTTP exchange alone; one per thread."""

    sent_at = 0.0
    acked_at = 0.0

    def post(
        self, body: bytes, content_type: str, *, timestamp: int | None = None, signature: str | None = None
    ) -> SlackHttpResponse:
        self.sent_at = time.time()
        try:
            return super().post(body, content_type, timestamp=timestamp, signature=signature)
        except OSError:
            return SlackHttpResponse(0, {}, "")  # no answer at all (timeout, reset)
        finally:
            self.acked_at = time.time()


def ack_text(answer: SlackHttpResponse) -> str:
    if answer.status != 200 or not answer.body.strip().startswith("{"):
        return ""
    body = answer.json()
    return str(body.get("text") or "") if isinstance(body, dict) else ""


@dataclass
class Burst:
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[str] = field(default_factory=list)

    def add(self, item: Sent) -> None:
        with self.lock:
            self.sent.append(item)


def shown(client: TimedClient, card_ts: str) -> tuple[str | None, int | None, bool, list[str]]:
    """What the card offers right now: (status, severity, Acknowledge offered, status buttons offered)."""
    status_buttons: list[str] = []
    severity: int | None = None
    ack_offered = False
    for action in client.message_actions(CHANNEL, card_ts):
        action_id = str(action.get("action_id"))
        if action_id == rendering.ACK_ACTION:
            ack_offered = True
        elif action_id.startswith(rendering.STATUS_ACTION_PREFIX):
            status_buttons.append(action_id.removeprefix(rendering.STATUS_ACTION_PREFIX))
        elif action_id == rendering.SEVERITY_ACTION and action.get("selected"):
            severity = int(str(action["selected"]).split(":")[1])
    current = [s for s in STATUSES if s not in status_buttons]
    return (current[0] if len(current) == 1 else None), severity, ack_offered, status_buttons


def responder(
    n: int, tars: Server, slack: SlackEmulator, cards: dict[int, str], until: float, burst: Burst, seed: int
) -> None:
    rng = random.Random(seed * 100 + n)
    user = RESPONDERS[n]
    client = TimedClient(f"http://127.0.0.1:{tars.port}/slack/events", SIGNING_SECRET, slack)
    kinds, weights = list(MIX), list(MIX.values())
    step = 0
    while time.time() < until:
        incident_id = rng.choice(sorted(cards))
        card_ts = cards[incident_id]
        status, severity, ack_offered, status_buttons = shown(client, card_ts)
        kind = rng.choices(kinds, weights)[0]
        if kind == "click ack" and not ack_offered:
            kind = "click status"
        step += 1
        answer: SlackHttpResponse
        if kind == "click ack":
            answer = client.click_button(
                user_id=user,
                channel_id=CHANNEL,
                message_ts=card_ts,
                action_id=rendering.ACK_ACTION,
                value=str(incident_id),
            )
        elif kind == "click status":
            answer = client.click_button(
                user_id=user,
                channel_id=CHANNEL,
                message_ts=card_ts,
                action_id=rendering.STATUS_ACTION_PREFIX + rng.choice(status_buttons),
                value=str(incident_id),
            )
        elif kind == "select severity":
            wanted = rng.choice([s for s in (1, 2, 3) if s != severity])
            answer = client.select_option(
                user_id=user,
                channel_id=CHANNEL,
                message_ts=card_ts,
                action_id=rendering.SEVERITY_ACTION,
                option_value=f"{incident_id}:{wanted}",
            )
        elif kind == "update":
            findings = f"{user} step {step}: error rate {rng.randint(1, 40)}% on {rng.choice(STATUSES)} hosts"
            answer = client.slash_command(
                f'update {incident_id} {findings} eta="{rng.randint(5, 90)}m"',
                user_id=user,
                channel_id=CHANNEL,
            )
        else:  # /incident status
            target = rng.choice([s for s in STATUSES if s != status])
            answer = client.slash_command(f"status {incident_id} {target}", user_id=user, channel_id=CHANNEL)
        burst.add(
            Sent(kind, user, incident_id, client.sent_at, client.acked_at, answer.status, ack_text(answer))
        )
        time.sleep(max(0.0, min(rng.uniform(*THINK), until - time.time())))


def reporter(tars: Server, slack: SlackEmulator, until: float, burst: Burst, seed: int) -> None:
    rng = random.Random(seed)
    client = TimedClient(f"http://127.0.0.1:{tars.port}/slack/events", SIGNING_SECRET, slack)
    number = 0
    while True:
        pause = rng.uniform(DECLARE_EVERY - 0.5, DECLARE_EVERY + 0.5)
        if time.time() + pause >= until:
            return
        time.sleep(pause)
        number += 1
        service = list(ONCALL)[number % len(ONCALL)]
        answer = client.slash_command(
            f'declare {service} P{rng.choice((2, 3))} Burst incident {number}: elevated 5xx impact="some users"',
            user_id=REPORTER,
            channel_id=CHANNEL,
        )
        reply = ack_text(answer)
        match = re.search(r"INC-(\d+)", reply)
        burst.add(
            Sent(
                "declare",
                REPORTER,
                int(match.group(1)) if match else None,
                client.sent_at,
                client.acked_at,
                answer.status,
                reply,
            )
        )


def seed_incidents(slack: SlackEmulator, tars: Server) -> dict[int, str]:
    """Declare the incidents through TARS and wait for their cards: incident id -> card ts."""
    client = SignedSlackClient(f"http://127.0.0.1:{tars.port}/slack/events", SIGNING_SECRET, slack)
    for n in range(SEEDED):
        service = list(ONCALL)[n % len(ONCALL)]
        answer = client.slash_command(
            f"declare {service} P2 Seeded incident {n}: elevated 5xx", user_id=REPORTER, channel_id=CHANNEL
        )
        if answer.status != 200:
            raise RuntimeError(f"seeding: declare answered {answer.status}: {answer.body}")
    deadline = time.monotonic() + 60
    while True:
        cards = {
            incident_id: message.ts
            for message in slack.channel_messages(CHANNEL)
            if (incident_id := card_incident(message.text)) is not None
        }
        if len(cards) >= SEEDED:
            return dict(sorted(cards.items())[:SEEDED])
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(cards)} of {SEEDED} seeded cards were posted:\n{tars.log_tail()}")
        time.sleep(0.2)


# --- the database -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    state: CardState
    card_ts: str | None


def stored_states(engine: Engine) -> dict[int, Stored]:
    """Each incident's newest state as TARS stored it, in the form its card shows it."""
    query = text(
        "SELECT id, status, severity, acknowledged_at IS NOT NULL AS acked, latest_findings, card_ts"
        " FROM incidents"
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return {
        row.id: Stored(
            CardState(
                row.status, row.severity, bool(row.acked), rendering.escape(row.latest_findings) or None
            ),
            row.card_ts,
        )
        for row in rows
    }


@dataclass(frozen=True)
class Change:
    incident_id: int
    actor: str
    kind: str
    at: float


def changes_between(engine: Engine, start: float, end: float) -> list[Change]:
    """The changes people made that were stored between `start` and `end` (epoch seconds), in order."""
    query = text(
        "SELECT incident_id, actor, kind, extract(epoch FROM at)::float8 AS at FROM timeline_events"
        " WHERE kind IN :kinds AND actor <> 'tars' AND at BETWEEN to_timestamp(:start) AND to_timestamp(:end)"
        " ORDER BY id"
    ).bindparams(bindparam("kinds", expanding=True))
    with engine.connect() as connection:
        rows = connection.execute(query, {"kinds": list(CHANGE_KINDS), "start": start, "end": end}).all()
    return [Change(row.incident_id, row.actor, row.kind, float(row.at)) for row in rows]


def pending_posts(engine: Engine) -> Counter[str]:
    query = text("SELECT kind, count(*) FROM outbox WHERE state = 'pending' GROUP BY kind")
    with engine.connect() as connection:
        return Counter({str(kind): int(count) for kind, count in connection.execute(query)})


def wait_cards_current(
    slack: SlackEmulator, engine: Engine, timeout: float
) -> tuple[dict[int, Stored], float, int]:
    """Poll until every card shows its incident's stored state (or `timeout`): the stored states, the seconds
    waited, and how many cards still did not show theirs."""
    began = time.monotonic()
    while True:
        states = stored_states(engine)
        stale = 0
        for stored in states.values():
            if stored.card_ts is None:
                stale += 1
                continue
            message = slack.message(CHANNEL, stored.card_ts)
            if card_state(message.text, message.blocks) != stored.state:
                stale += 1
        waited = time.monotonic() - began
        if stale == 0 or waited > timeout:
            return states, waited, stale
        time.sleep(0.5)


# --- report -------------------------------------------------------------------------------------------------------


def pct(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def spread(values: list[float], unit: str = "s", scale: float = 1.0, high: int = 100) -> str:
    if not values:
        return "n/a (none)"
    top = max(values) if high == 100 else pct(values, high)
    label = "max" if high == 100 else f"p{high}"
    return f"p50 {pct(values, 50) * scale:.2f} {unit}, {label} {top * scale:.2f} {unit} (n={len(values)})"


def find_request(sent: list[Sent], change: Change) -> Sent | None:
    """The request that made a stored change: same person and incident, in flight when it was stored."""
    for item in sent:
        if (
            item.user == change.actor
            and item.incident_id == change.incident_id
            and item.sent_at - 0.05 <= change.at <= item.acked_at + 0.05
        ):
            return item
    return None


def click_replies(sent: list[Sent], replies: list[RecordedCall]) -> dict[int, float]:
    """index in `sent` of a click -> when its private reply (via response_url) reached the emulator."""
    found: dict[int, float] = {}
    clicks = [(i, item) for i, item in enumerate(sent) if item.kind.startswith(("click", "select"))]
    for reply in replies:
        user = reply.args.get("user")
        mine = [(i, item) for i, item in clicks if item.user == user and item.sent_at <= reply.at]
        if mine:
            index, _item = max(mine, key=lambda pair: pair[1].sent_at)
            found.setdefault(index, reply.at)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the burst (default 20)")
    parser.add_argument("--quick", action="store_true", help="a 5 s burst")
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args()
    seconds = 5.0 if args.quick else args.seconds

    admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
    name = f"tars_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database_url = args.postgres_url.rsplit("/", 1)[0] + "/" + name
    engine = create_engine(database_url)
    slack = SlackEmulator(bot_token=BOT_TOKEN, rate_limits=True).start()
    for user in [*ONCALL.values(), *RESPONDERS, REPORTER]:
        slack.add_user(user, user[3:].lower())
    recorder = Recorder()
    slack.subscribe(recorder)
    print(
        f"delivery: {len(RESPONDERS)} responders on {SEEDED} open incidents for {seconds:g} s, a declaration"
        f" every ~{DECLARE_EVERY:g} s, against the Slack emulator with Slack's rate limits; {machine()}",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="tars-bench-") as scratch:
            log_dir = Path(scratch)
            catalog = log_dir / "catalog.yaml"
            catalog.write_text(
                "scheduler:\n  tick: 1s\nservices:\n"
                + "".join(f"  {service}:\n    oncall: {user}\n" for service, user in ONCALL.items())
            )
            tars_env = {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": slack.base_url,
                "DATABASE_URL": database_url,
                "TARS_CONFIG": str(catalog),
                "TARS_INCIDENTS_CHANNEL": CHANNEL,
            }
            tars_argv = [sys.executable, "-m", "bot.cli", "serve"]
            with server_process("TARS", tars_argv, tars_env, log_dir) as tars:
                cards = seed_incidents(slack, tars)
                print(f"  seeded {len(cards)} incidents through TARS; their cards are up", flush=True)
                burst = Burst()
                start = time.time()
                until = start + seconds
                threads = [
                    threading.Thread(
                        target=responder,
                        args=(n, tars, slack, cards, until, burst, args.seed),
                        name=f"resp-{n}",
                    )
                    for n in range(len(RESPONDERS))
                ]
                threads.append(
                    threading.Thread(
                        target=reporter, args=(tars, slack, until, burst, args.seed), name="reporter"
                    )
                )
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                end = time.time()
                burst_calls = [
                    c for c in slack.calls if start <= c.at <= end and c.method not in API_PSEUDO_METHODS
                ]
                print(f"  burst over: {len(burst.sent)} requests in {end - start:.1f} s", flush=True)
                states, waited, stale_cards = wait_cards_current(slack, engine, SETTLE_MAX)
                queued = pending_posts(engine)
                changes = changes_between(engine, start, end)
                log = Counter(
                    level
                    for line in tars.log_path.read_text(errors="replace").splitlines()
                    for level in ("ERROR", "WARNING")
                    if f" {level} " in line
                )
            report(burst, recorder, slack, states, changes, burst_calls, (waited, stale_cards), queued, log)
    finally:
        slack.stop()
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def report(
    burst: Burst,
    recorder: Recorder,
    slack: SlackEmulator,
    states: dict[int, Stored],
    changes: list[Change],
    burst_calls: list[RecordedCall],
    settled: tuple[float, int],
    queued: Counter[str],
    log: Counter[str],
) -> None:
    sent = sorted(burst.sent, key=lambda item: item.sent_at)
    with recorder.lock:
        writes = list(recorder.card_writes)
        replies = list(recorder.replies)
    limited = slack.rate_limited_calls()

    # 🚨: from the ack of each declaration to its card's chat.postMessage.
    posted: dict[int, float] = {}
    for write in writes:
        if write.method == "chat.postMessage":
            posted.setdefault(write.incident_id, write.at)
    declares = [item for item in sent if item.kind == "declare"]
    declare_lags: list[float] = []
    never_posted = 0
    for item in declares:
        if item.incident_id is None or item.incident_id not in posted:
            never_posted += 1
        else:
            declare_lags.append(max(0.0, posted[item.incident_id] - item.acked_at))

    # Cards: from the ack of each incident's last change to the first card write showing its final state.
    last: dict[int, Change] = {}
    for change in changes:
        last[change.incident_id] = change
    card_lags: list[float] = []
    stale = 0
    unmatched = 0
    for incident_id, change in sorted(last.items()):
        request = find_request(sent, change)
        if request is None:
            unmatched += 1
            sent_at = acked_at = change.at
        else:
            sent_at, acked_at = request.sent_at, request.acked_at
        final = states[incident_id].state
        shown_at = [
            w.at for w in writes if w.incident_id == incident_id and w.at >= sent_at and w.state == final
        ]
        if shown_at:
            card_lags.append(max(0.0, min(shown_at) - acked_at))
        else:
            stale += 1

    # Private replies: a command's ack body; a refused click's response_url message.
    from_clicks = click_replies(sent, replies)
    private: list[float] = []
    for index, item in enumerate(sent):
        if item.kind in ("update", "status", "declare") and item.reply:
            private.append(item.ack_seconds)
        elif index in from_clicks:
            private.append(from_clicks[index] - item.sent_at)
    acks = [item.ack_seconds for item in sent]
    non_200 = sum(item.status != 200 for item in sent)
    kinds = Counter(item.kind for item in sent)
    refusals = Counter(
        _reason(item.reply)
        for item in sent
        if item.kind in ("update", "status") and not _accepted(item.reply)
    )
    refusals += Counter(_reason(str(reply.args.get("text", ""))) for reply in replies)
    methods = Counter(c.method for c in burst_calls)

    print()
    print(
        f"requests sent: {len(sent)} ("
        + ", ".join(f"{k} {v}" for k, v in kinds.items())
        + f"); non-200: {non_200}"
    )
    print(
        f"state changes stored during the burst: {len(changes)}; refused: {sum(refusals.values())} ("
        + ", ".join(f"{reason} {n}" for reason, n in refusals.most_common())
        + ")"
    )
    print(
        f"Slack Web API calls during the burst: {len(burst_calls)} ("
        + ", ".join(f"{m} {n}" for m, n in methods.most_common())
        + f") = {len(burst_calls) / max(1, len(changes)):.2f} per state change"
    )
    waited, stale_cards = settled
    print(
        (
            f"cards all current {waited:.1f} s after the burst"
            if stale_cards == 0
            else f"{stale_cards} cards still NOT current {waited:.0f} s after the burst"
        )
        + "; posts still queued then: "
        + (", ".join(f"{k} {v}" for k, v in sorted(queued.items())) or "nothing")
        + " (Slack allows ~1 post/s per channel)"
    )
    print(f"ack latency: {spread(acks, 'ms', 1000, 99)}")
    print(f"private-reply latency: {spread(private, 'ms', 1000, 99)}")
    print(f"TARS's log: {log['ERROR']} errors, {log['WARNING']} warnings")
    if unmatched:
        print(f"note: {unmatched} last changes not matched to a request; timed from when they were stored")
    print()
    rows = [
        ("429 answers", f"{MAX_429}", f"{len(limited)}", "n/a", len(limited) <= MAX_429),
        (
            "🚨 after declare ack, max",
            f"{DECLARE_POST_MAX_S:g} s",
            f"{max(declare_lags, default=0):.2f} s" + (f" +{never_posted} never" if never_posted else ""),
            f"{max(declare_lags, default=0) / DECLARE_POST_MAX_S:.2f}x",
            never_posted == 0 and max(declare_lags, default=0) <= DECLARE_POST_MAX_S,
        ),
        (
            "card newest state lag, max",
            f"{CARD_LAG_MAX_S:g} s",
            f"{max(card_lags, default=0):.2f} s" + (f" +{stale} never" if stale else ""),
            f"{max(card_lags, default=0) / CARD_LAG_MAX_S:.2f}x",
            stale == 0 and max(card_lags, default=0) <= CARD_LAG_MAX_S,
        ),
    ]
    print(f"🚨 post after declaration ack: {spread(declare_lags)}")
    print(f"card newest-state lag after last change's ack: {spread(card_lags)}")
    print()
    print(f"{'check':<28} {'target':>8} {'TARS':>14} {'ratio':>7}  verdict")
    for label, target, value, ratio, ok in rows:
        print(f"{label:<28} {target:>8} {value:>14} {ratio:>7}  {verdict(ok)}")
    overall = all(row[4] for row in rows)
    print(f"overall: {verdict(overall)} ({machine()})")


def _reason(reply: str) -> str:
    if "at the same moment" in reply:
        return "concurrent edit"
    if " already " in reply:
        return "already so (stale card)"
    if "unexpected error" in reply:
        return "UNEXPECTED ERROR"
    return "other"


def _accepted(reply: str) -> bool:
    return bool(re.match(r"^(Recorded the update for|INC-\d+: (Status|Severity) )", reply))


if __name__ == "__main__":
    main()
