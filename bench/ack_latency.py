"""How fast TARS acks Slack, against the floor: a bare Bolt app set up and served exactly as TARS is.

Each server runs in its own process, so its CPU can be read alone from /proc: the floor (bench/bare_bolt_app.py,
which only acks) and TARS itself (`python -m bot.cli serve`, configured from the environment as in production,
on a fresh Postgres database that this script creates and drops, talking to a Slack emulator in this process).

Both get the identical sequences of signed requests, a realistic mix of `/incident` commands (declare, update,
status, severity, list, show, help) and block_actions clicks (Acknowledge and status buttons) on real card messages
of incidents seeded through TARS first. After a warm-up of each, the two servers take turns in three rounds: in
each round, 1 client and then 50 concurrent clients (threads, each with its own keep-alive connection) send fresh
requests to one server and the same requests to the other right after, the first of the two alternating from
round to round. Latency is measured by the client, from sending a request to having read the whole answer (the
ack). CPU per request is the server process's CPU from just before a phase until it is idle again afterwards, so
work a listener does after acking is counted; Postgres's CPU over the same span is shown too (all of the local
server's processes, so other users of it show up there).

Why rounds: on a shared machine the CPU's speed drifts by up to 2x within minutes, and a floor measured minutes
before TARS made single-run ratios swing by as much. Each round's pair ran back to back, so its ratios compare
the two servers on the same machine; the verdict takes the median of the three rounds' ratios, and the worst
single ack of all rounds.

Targets for TARS against the floor: p99 at most 3x, no ack over 1 s, throughput at least 1/3, CPU per request at
most 5x, and no answer other than 200.

Usage: .venv/bin/python bench/ack_latency.py [--quick] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

import bot
from bot.slack import rendering
from sandbox.emulator import SignedSlackClient, SlackEmulator, SlackHttpResponse

SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench-token"
CHANNEL = "C0INCIDENTS"
ONCALL = {
    "payments": "U0PAYONCALL",
    "checkout": "U0CHKONCALL",
    "search": "U0SRCHONCALL",
    "identity": "U0IDONCALL",
}
RESPONDERS = ["U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0ERIN"]
# The checkout whose code this script imported: both servers run that same code.
ROOT = Path(bot.__file__).resolve().parent.parent
FORM = "application/x-www-form-urlencoded"

# Out of every 100 requests. Clicks carry the card message they were made on, as Slack sends them.
MIX = {
    "declare": 10,
    "update": 15,
    "status": 10,
    "severity": 5,
    "list": 5,
    "show": 15,
    "help": 5,
    "click ack": 10,
    "click status": 25,
}
STATUSES = ["investigating", "mitigating", "monitoring"]

# Targets: TARS against the floor.
P99_RATIO_MAX = 3.0
ACK_MAX_MS = 1000.0
THROUGHPUT_RATIO_MIN = 1 / 3
CPU_RATIO_MAX = 5.0
# Rounds of paired phases; the verdict takes the median of their ratios.
ROUNDS = 3


# --- servers, each in its own process ---------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds (user + system) of a process, all its threads; with children, also its reaped children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def went_quiet(cpu: Callable[[], float], *, busy: float, timeout: float) -> bool:
    """Whether `cpu` (seconds used so far) grew by at most `busy` in two half-seconds in a row within `timeout`."""
    deadline = time.monotonic() + timeout
    quiet = 0
    last = cpu()
    while quiet < 2:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
        now = cpu()
        quiet = quiet + 1 if now - last <= busy else 0
        last = now
    return True


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def cpu(self) -> float:
        return process_cpu(self.process.pid)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Until the server has finished the work it acked."""
        if not went_quiet(self.cpu, busy=0.02, timeout=timeout):
            raise RuntimeError(f"{self.name} still busy {timeout:.0f} s after the load ended")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def server_process(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Iterator[Server]:
    port = free_port()
    log_path = log_dir / f"{name.lower()}.log"
    child_env = {
        **os.environ,
        **env,
        "PORT": str(port),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(name, process, port, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer /healthz within 60 s:\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


@contextmanager
def throwaway_database(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the server of `postgres_url`, dropped afterwards; yields its URL."""
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    name = f"tars_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def catalog_file(directory: Path, oncall: dict[str, str]) -> Path:
    """A TARS_CONFIG naming these services, each with its on-call."""
    catalog = directory / "catalog.yaml"
    catalog.write_text(
        "services:\n" + "".join(f"  {name}:\n    oncall: {user}\n" for name, user in oncall.items())
    )
    return catalog


class PostgresCpu:
    """CPU seconds of the local Postgres server: the postmaster, its live children, and its reaped children."""

    def __init__(self, admin_url: str) -> None:
        engine = create_engine(admin_url)
        try:
            with engine.connect() as connection:
                backend = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
            stat = Path(f"/proc/{backend}/stat").read_text()
            self.postmaster: int | None = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            self.postmaster = None  # Postgres is not on this machine (or not visible): no column
        finally:
            engine.dispose()

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Until Postgres's own background work is done (a checkpoint, autovacuum after the seeding, another
        benchmark's dropped database), or `timeout`: it shares the 2 cores with the servers."""
        if self.postmaster is not None:
            went_quiet(lambda: self.cpu() or 0.0, busy=0.05, timeout=timeout)

    def cpu(self) -> float | None:
        if self.postmaster is None:
            return None
        total = process_cpu(self.postmaster, children=True)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.postmaster:
                    total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total


# --- the requests ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    kind: str
    body: bytes


class _CapturingClient(SignedSlackClient):
    """SignedSlackClient's own payload builders; the body is kept instead of sent, to be signed at send time."""

    captured: bytes = b""

    def post(
        self, body: bytes, content_type: str, *, timestamp: int | None = None, signature: str | None = None
    ) -> SlackHttpResponse:
        assert content_type == FORM
        self.captured = body
        return SlackHttpResponse(200, {}, "")


@dataclass
class _Seeded:
    incident_id: int
    card_ts: str
    status: str = "investigating"
    severity: int = 2


class Planner:
    """The request sequence: the same bodies go to the floor and to TARS."""

    def __init__(self, slack: SlackEmulator, seeded: list[_Seeded], rng: random.Random) -> None:
        self.client = _CapturingClient("http://unused.invalid/slack/events", SIGNING_SECRET, slack)
        self.seeded = seeded
        self.unacknowledged = list(seeded)
        self.rng = rng
        self.declared = 0
        self.deck: list[str] = []

    def plan(self, count: int) -> list[Planned]:
        return [self._one() for _ in range(count)]

    def _next_kind(self) -> str:
        if not self.deck:
            self.deck = [kind for kind, weight in MIX.items() for _ in range(weight)]
            self.rng.shuffle(self.deck)
        return self.deck.pop()

    def _command(self, kind: str, words: str) -> Planned:
        self.client.slash_command(words, user_id=self.rng.choice(RESPONDERS), channel_id=CHANNEL)
        return Planned(kind, self.client.captured)

    def _one(self) -> Planned:
        kind = self._next_kind()
        target = self.rng.choice(self.seeded)
        ref = target.incident_id
        if kind == "declare":
            self.declared += 1
            service = list(ONCALL)[self.declared % len(ONCALL)]
            severity = (1, 2, 2, 3)[self.declared % 4]
            return self._command(
                kind,
                f'declare {service} P{severity} Bench incident {self.declared}: checkout errors impact="some users"',
            )
        if kind == "update":
            return self._command(
                kind, f'update {ref} Error rate down to 2% after the cache flush, watching eta="30m"'
            )
        if kind == "status":
            target.status = self.rng.choice([s for s in STATUSES if s != target.status])
            return self._command(kind, f"status {ref} {target.status}")
        if kind == "severity":
            target.severity = self.rng.choice([s for s in (1, 2, 3) if s != target.severity])
            return self._command(kind, f"severity {ref} P{target.severity}")
        if kind == "list":
            return self._command(kind, "list")
        if kind == "show":
            return self._command(kind, f"show {ref}")
        if kind == "help":
            return self._command(kind, "help")
        if kind == "click ack":
            # Each Acknowledge click on its own unacknowledged incident, as long as there are some.
            target = self.unacknowledged.pop() if self.unacknowledged else target
            action_id, value = rendering.ACK_ACTION, str(target.incident_id)
        else:  # click status: the card was captured while investigating, so its other two buttons are there
            wanted = self.rng.choice([s for s in STATUSES[1:] if s != target.status])
            target.status = wanted
            action_id, value = rendering.STATUS_ACTION_PREFIX + wanted, str(target.incident_id)
        self.client.click_button(
            user_id=self.rng.choice(RESPONDERS),
            channel_id=CHANNEL,
            message_ts=target.card_ts,
            action_id=action_id,
            value=value,
        )
        return Planned(kind, self.client.captured)


def ack_clicks_in(count: int) -> int:
    return -(-count * MIX["click ack"] // sum(MIX.values()))


def seed_incidents(slack: SlackEmulator, tars: Server, count: int) -> list[_Seeded]:
    """Declare incidents through TARS itself and wait for their cards, so clicks land on real card messages."""
    client = SignedSlackClient(f"http://127.0.0.1:{tars.port}/slack/events", SIGNING_SECRET, slack)

    def declare(n: int) -> None:
        service = list(ONCALL)[n % len(ONCALL)]
        answer = client.slash_command(
            f"declare {service} P2 Seeded incident {n}: elevated 5xx", user_id="U0ALICE", channel_id=CHANNEL
        )
        if answer.status != 200:
            raise RuntimeError(f"seeding: declare answered {answer.status}: {answer.body}")

    numbers = iter(range(count))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            declare(n)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # TARS paces its posts to Slack's one per second per channel, so the cards take about a second each.
    deadline = time.monotonic() + 60 + 2 * count
    while True:
        cards = card_messages(slack)
        if len(cards) >= count:
            return [_Seeded(incident_id, ts) for incident_id, ts in sorted(cards.items())[:count]]
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(cards)} of {count} seeded cards were posted:\n{tars.log_tail()}")
        time.sleep(0.2)


def card_messages(slack: SlackEmulator) -> dict[int, str]:
    """Incident id -> card ts, for every card in the incidents channel still showing an Acknowledge button."""
    cards: dict[int, str] = {}
    for message in slack.channel_messages(CHANNEL):
        for block in message.blocks:
            for element in block.get("elements") or []:
                if isinstance(element, dict) and element.get("action_id") == rendering.ACK_ACTION:
                    cards[int(element["value"])] = message.ts
    return cards


# --- load -----------------------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    clients: int
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    # Private replies that came in a command's answer rather than through its response_url.
    replies: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu_ms: float = 0.0
    pg_cpu_ms: float | None = None

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, q: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[q - 1]

    @property
    def non_200(self) -> int:
        return self.requests - self.statuses[200]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_per_request(self) -> float:
        return self.cpu_ms / self.requests


def run_load(port: int, plan: list[Planned], clients: int, signer: SignedSlackClient) -> PhaseResult:
    result = PhaseResult(clients)
    next_index = itertools.count()
    start = threading.Barrier(clients + 1)
    lock = threading.Lock()
    finished: list[float] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        replies: list[str] = []
        start.wait()
        while (index := next(next_index)) < len(plan):
            body = plan[index].body
            headers = {
                **signer.sign(body),
                "Content-Type": FORM,
                "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            }
            began = time.perf_counter()
            try:
                connection.request("POST", "/slack/events", body=body, headers=headers)
                answer = connection.getresponse()
                reply = answer.read()
                status = answer.status
                if reply.startswith(b"{"):
                    # A command's private reply comes in its answer; keep it for the reply check.
                    text = json.loads(reply).get("text")
                    if text:
                        replies.append(str(text))
                if answer.will_close:
                    connection.close()
            except (OSError, http.client.HTTPException):
                status = 0  # no answer at all (timeout, reset): counted as not 200
                connection.close()
            latencies.append((time.perf_counter() - began) * 1000)
            statuses[status] += 1
        connection.close()
        with lock:
            result.latencies_ms += latencies
            result.statuses += statuses
            result.replies += replies
            finished.append(time.perf_counter())

    threads = [threading.Thread(target=client, name=f"bench-client-{n}") for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    result.seconds = max(finished) - began
    return result


def measure(
    server: Server, postgres: PostgresCpu, plan: list[Planned], clients: int, signer: SignedSlackClient
) -> PhaseResult:
    server.wait_idle()
    postgres.wait_idle()
    cpu_before, pg_before = server.cpu(), postgres.cpu()
    result = run_load(server.port, plan, clients, signer)
    server.wait_idle()
    result.cpu_ms = (server.cpu() - cpu_before) * 1000
    pg_after = postgres.cpu()
    if pg_before is not None and pg_after is not None:
        result.pg_cpu_ms = (pg_after - pg_before) * 1000
    print(
        f"  {server.name:<5} {clients:>2} client(s): {result.requests} requests in {result.seconds:.1f} s",
        flush=True,
    )
    return result


# --- report ---------------------------------------------------------------------------------------------------


def machine() -> str:
    """Other work on a shared machine moves the numbers: say how busy it was."""
    return f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_report(results: dict[tuple[str, int], list[PhaseResult]], open_incidents: int) -> None:
    print()
    print(
        f"{'round':>5} {'clients':>7} {'server':<6} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'req/s':>7} {'CPU ms/req':>10} {'PG ms/req':>9} {'non-200':>7}"
    )
    for (name, clients), rounds in results.items():
        for number, r in enumerate(rounds, start=1):
            pg = f"{r.pg_cpu_ms / r.requests:>9.1f}" if r.pg_cpu_ms is not None else f"{'n/a':>9}"
            print(
                f"{number:>5} {clients:>7} {name:<6} {r.requests:>8} {r.percentile(50):>8.0f}"
                f" {r.percentile(99):>8.0f} {max(r.latencies_ms):>8.0f} {r.throughput:>7.1f}"
                f" {r.cpu_per_request:>10.1f} {pg} {r.non_200:>7}"
            )
    print(
        "CPU ms/req: the server process alone, until idle after the load; PG ms/req: the whole local Postgres"
        " server over the same span (other users of it included)"
    )
    print()
    print(
        f"TARS / floor: p99 <= {P99_RATIO_MAX:g}x, max ack <= {ACK_MAX_MS:.0f} ms, throughput >= 1/3,"
        f" CPU/request <= {CPU_RATIO_MAX:g}x, non-200 = 0"
    )
    print(
        "Each ratio: one per round (TARS against the floor run beside it), then [the median], which is judged."
    )
    passed = True
    for clients in sorted({c for _, c in results}):
        pairs = list(zip(results[("floor", clients)], results[("TARS", clients)], strict=True))
        p99 = [tars.percentile(99) / floor.percentile(99) for floor, tars in pairs]
        throughput = [tars.throughput / floor.throughput for floor, tars in pairs]
        cpu = [
            tars.cpu_per_request / floor.cpu_per_request if floor.cpu_ms > 0 else float("inf")
            for floor, tars in pairs
        ]
        worst = max(max(tars.latencies_ms) for _, tars in pairs)
        bad = sum(tars.non_200 + floor.non_200 for floor, tars in pairs)
        checks = {
            "p99 ratio": (_ratios(p99, "x"), statistics.median(p99) <= P99_RATIO_MAX),
            "TARS max ack": (f"{worst:.0f} ms", worst <= ACK_MAX_MS),
            "throughput": (
                _ratios(throughput, "x", digits=2),
                statistics.median(throughput) >= THROUGHPUT_RATIO_MIN,
            ),
            "CPU ratio": (_ratios(cpu, "x"), statistics.median(cpu) <= CPU_RATIO_MAX),
            "non-200": (str(bad), bad == 0),
        }
        passed = passed and all(ok for _, ok in checks.values())
        print(
            f"{clients:>3} client(s): "
            + "; ".join(f"{name} {shown} {verdict(ok)}" for name, (shown, ok) in checks.items())
        )
    print(f"overall: {verdict(passed)} ({open_incidents} open incidents in TARS at the end; {machine()})")


def _ratios(values: list[float], unit: str, *, digits: int = 1) -> str:
    return " ".join(f"{v:.{digits}f}" for v in values) + f" [{statistics.median(values):.{digits}f}{unit}]"


def tars_replies(slack: SlackEmulator, phases: list[PhaseResult]) -> str:
    """What TARS's private replies said went wrong: a check that the mix exercised the paths it meant to."""
    texts = [str(call.args.get("text", "")) for call in slack.calls_to("response_url")]
    texts += [reply for phase in phases for reply in phase.replies]
    unexpected = sum("unexpected error" in t for t in texts)
    conflicts = sum("at the same moment" in t for t in texts)
    refusals = sum(" already " in t for t in texts)
    return (
        f"TARS's private replies: {len(texts)} in all; {unexpected} unexpected errors, {conflicts} concurrent-edit"
        f" conflicts, {refusals} 'already ...' refusals (clicks and commands racing on the same incident)"
    )


def count_open_incidents(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            query = text("SELECT count(*) FROM incidents WHERE status <> 'resolved'")
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


# --- main -----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--quick", action="store_true", help="a short run: fewer requests per phase")
    args = parser.parse_args()
    # Per round: the 50-client phase's p99 is its 5th-slowest answer.
    warm_up, single, concurrent = (30, 30, 100) if args.quick else (100, 100, 500)
    phases = [(1, single), (50, concurrent)]
    with throwaway_database(args.postgres_url) as database_url:
        run(args.postgres_url, database_url, warm_up, phases)


def run(postgres_url: str, database_url: str, warm_up: int, phases: list[tuple[int, int]]) -> None:
    single, concurrent = (count for _, count in phases)
    rng = random.Random(20261122)
    postgres = PostgresCpu(postgres_url)
    slack = SlackEmulator(bot_token=BOT_TOKEN).start()
    for user in [*ONCALL.values(), *RESPONDERS]:
        slack.add_user(user, user[3:].lower())
    slack_env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.base_url,
    }
    results: dict[tuple[str, int], list[PhaseResult]] = {
        (name, clients): [] for clients, _ in phases for name in ("floor", "TARS")
    }
    print(
        f"ack_latency: {warm_up} warm-up requests each, then {ROUNDS} rounds of {single} at 1 client and"
        f" {concurrent} at 50 clients; the same signed requests to each server, back to back. Mix per 100: "
        + ", ".join(f"{kind} {weight}" for kind, weight in MIX.items())
        + f"; {machine()}",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="tars-bench-") as scratch:
            log_dir = Path(scratch)
            catalog = catalog_file(log_dir, ONCALL)
            tars_env = {
                **slack_env,
                "DATABASE_URL": database_url,
                "TARS_CONFIG": str(catalog),
                "TARS_INCIDENTS_CHANNEL": CHANNEL,
            }
            tars_argv = [sys.executable, "-m", "bot.cli", "serve"]
            floor_argv = [sys.executable, str(Path(__file__).resolve().parent / "bare_bolt_app.py")]
            with (
                server_process("TARS", tars_argv, tars_env, log_dir) as tars,
                server_process("floor", floor_argv, slack_env, log_dir) as floor,
            ):
                seeds = ack_clicks_in(warm_up + ROUNDS * (single + concurrent)) + 10
                seeded = seed_incidents(slack, tars, seeds)
                print(
                    f"  seeded {len(seeded)} incidents through TARS; their cards are in the emulator",
                    flush=True,
                )
                planner = Planner(slack, seeded, rng)
                warm_plan = planner.plan(warm_up)
                slack_calls_before = len(slack.calls)
                for server in (floor, tars):
                    run_load(server.port, warm_plan, 10, planner.client)
                for number in range(ROUNDS):
                    # The floor goes first in odd rounds, TARS in even ones: neither always gets the quieter slot.
                    turns = (floor, tars) if number % 2 == 0 else (tars, floor)
                    for clients, count in phases:
                        plan = planner.plan(count)
                        for server in turns:
                            results[(server.name, clients)].append(
                                measure(server, postgres, plan, clients, planner.client)
                            )
                tars_phases = [
                    phase for (name, _), rounds in results.items() if name == "TARS" for phase in rounds
                ]
                print(
                    f"  {tars_replies(slack, tars_phases)}; {len(slack.calls) - slack_calls_before} Slack calls during the load"
                )
            open_incidents = count_open_incidents(database_url)
        print_report(results, open_incidents)
    finally:
        slack.stop()


if __name__ == "__main__":
    main()
