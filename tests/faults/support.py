"""Fault-test plumbing: a private Postgres cluster, TARS as a real `tars serve` process, and what people see.

The cluster is this test's own (initdb into a temp dir, its own port on 127.0.0.1), so stopping it or killing
the processes that use it touches nothing else; the shared cluster on 5432 is never used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bot.incidents.incident_records import Incident, TimelineEvent
from sandbox.emulator import RecordedCall, SignedSlackClient, SlackEmulator, SlackHttpResponse

REPO_ROOT = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "fault-test-signing-secret"
BOT_TOKEN = "xoxb-test-token"  # the token the shared `slack` fixture's emulator accepts
CHANNEL = "C0INCIDENTS"
ONCALL = "U0PAYONCALL"
REPORTER = "U0ALICE"
SHARED_POSTGRES_PORT = 5432

CONFIG_YAML = f"""\
incidents_channel: {CHANNEL}
services:
  payments:
    oncall: {ONCALL}
    description: Card payments
  checkout:
    oncall: U0CHKONCALL
scheduler:
  tick: 1s
"""


class PostgresUnavailable(Exception):
    """No Postgres server binaries on this machine."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return port if port != SHARED_POSTGRES_PORT else free_port()


def postgres_bindir() -> Path:
    """TARS_TEST_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin, else wherever `initdb` is on PATH."""
    candidates: list[Path] = []
    if os.environ.get("TARS_TEST_PG_BINDIR"):
        candidates.append(Path(os.environ["TARS_TEST_PG_BINDIR"]))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += versions
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PostgresUnavailable("no Postgres server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin")


class PrivatePostgres:
    """A Postgres cluster owned by one test: trust auth, 127.0.0.1 only, its own port and socket directory."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        if self.port == SHARED_POSTGRES_PORT:
            raise AssertionError("a private cluster must never take the shared cluster's port")
        # Not pytest's tmp_path: its parents are private to root, and the server must run as `postgres`.
        self.root = Path(tempfile.mkdtemp(prefix="tars-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            import pwd

            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and there is no `postgres` user") from None
            self._owner = (entry.pw_uid, entry.pw_gid)
            os.chown(self.root, *self._owner)
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [str(self.bindir / tool), *args]
        if self._owner is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                + self.log_tail()
            )

    def initialize(self) -> PrivatePostgres:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",  # a test cluster: speed over surviving a machine crash
            "full_page_writes": "off",
            "max_connections": "100",
        }
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("".join(f"{key} = {value}\n" for key, value in settings.items()))
        return self

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        self.running = True

    def stop(self) -> None:
        """Shut down the way an operator or a failover does: every connection is cut at once."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        self.running = False

    def destroy(self) -> None:
        try:
            if self.running:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
                self.running = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no postgres log)"
        return "postgres log (tail):\n" + "\n".join(text.splitlines()[-lines:])


class TarsProcess:
    """One `tars serve` process: its own port, the shared private database, the test's Slack emulator."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.port = int(env["PORT"])
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve"],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.started_at = time.monotonic()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthz(self) -> int | None:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return None

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode} while starting")
            if self.healthz() == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not answer /healthz with 200 within {timeout:g}s")

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code (negative: killed by that signal), or None if it is still running after `timeout`."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def close(self) -> None:
        self.kill()
        self._log.close()

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@dataclass
class Fleet:
    """Starts TARS processes for one test and cleans up after them."""

    postgres: PrivatePostgres
    slack: SlackEmulator
    workdir: Path
    processes: list[TarsProcess] = field(default_factory=list)

    def environment(self) -> dict[str, str]:
        config = self.workdir / "tars.yaml"
        config.write_text(CONFIG_YAML, encoding="utf-8")
        unwanted = {"SLACK_APP_TOKEN", "TARS_INCIDENTS_CHANNEL", "GITHUB_TOKEN"}  # would change what runs
        env = {key: value for key, value in os.environ.items() if key.upper() not in unwanted}
        inherited_path = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
        env.update(
            DATABASE_URL=self.postgres.url,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=self.slack.base_url,
            TARS_CONFIG=str(config),
            PORT=str(free_port()),
            PYTHONPATH=os.pathsep.join(dict.fromkeys([str(REPO_ROOT), *inherited_path])),
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self) -> TarsProcess:
        tars = TarsProcess(f"tars-{len(self.processes) + 1}", self.environment(), self.workdir)
        self.processes.append(tars)
        tars.wait_healthy()
        return tars

    def client(self, tars: TarsProcess) -> SignedSlackClient:
        return SignedSlackClient(tars.url + "/slack/events", SIGNING_SECRET, self.slack)

    def command(self, tars: TarsProcess, text: str) -> SlackHttpResponse:
        response = self.client(tars).slash_command(text, user_id=REPORTER, channel_id=CHANNEL)
        assert response.status == 200, response
        return response

    def close(self) -> None:
        for tars in self.processes:  # all gone first, so a failure below cannot leave a process behind
            tars.close()
        for tars in self.processes:
            print(f"\n===== {tars.name} (exit {tars.process.returncode}) =====\n{tars.output()}")
        print(self.postgres.log_tail())


# --- what is stored ---------------------------------------------------------------------------------------------


class Rows:
    """Reads the private cluster; no pooled connections, so a stopped server leaves nothing stale behind."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, poolclass=NullPool)

    def incidents(self) -> list[Incident]:
        with Session(self.engine) as session:
            return list(session.scalars(select(Incident).order_by(Incident.id)))

    def updates_stored(self, incident_id: int) -> int:
        with Session(self.engine) as session:
            statement = (
                select(func.count())
                .select_from(TimelineEvent)
                .where(TimelineEvent.incident_id == incident_id, TimelineEvent.kind == "update")
            )
            return int(session.scalar(statement) or 0)

    def timeline_kinds(self, incident_id: int) -> list[str]:
        with Session(self.engine) as session:
            statement = (
                select(TimelineEvent.kind)
                .where(TimelineEvent.incident_id == incident_id)
                .order_by(TimelineEvent.id)
            )
            return list(session.scalars(statement))

    def close(self) -> None:
        self.engine.dispose()


# --- what people see in Slack ------------------------------------------------------------------------------------

FINDINGS = re.compile(r"^Latest findings: (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Seen:
    cards: list[RecordedCall]
    updates: list[str]  # the findings of each 📊 post, in the order they were posted
    pages: list[RecordedCall]

    def has_all(self, findings: list[str]) -> bool:
        return bool(self.cards) and bool(self.pages) and set(findings) <= set(self.updates)


def seen(slack: SlackEmulator, oncall: str = ONCALL) -> Seen:
    """Successful posts: the card and the 📊 updates at the top of #incidents, and DMs to the on-call."""
    posts = [call for call in slack.calls_to("chat.postMessage") if call.ok]
    top_level = [c for c in posts if c.args.get("channel") == CHANNEL and not c.args.get("thread_ts")]
    dm_channels = {
        call.response["channel"]["id"]
        for call in slack.calls_to("conversations.open")
        if call.ok and call.args.get("users") == oncall
    }
    return Seen(
        cards=[c for c in top_level if str(c.args.get("text", "")).startswith("🚨")],
        updates=[
            match.group(1)
            for c in top_level
            if str(c.args.get("text", "")).startswith("📊")
            and (match := FINDINGS.search(str(c.args.get("text", ""))))
        ],
        pages=[c for c in posts if c.args.get("channel") in dm_channels],
    )


def card_shows(slack: SlackEmulator, card: RecordedCall, text: str) -> bool:
    """Whether the card, as the channel shows it now (after chat.update), contains `text`."""
    message = slack.message(CHANNEL, str(card.response["ts"]))
    return text in message.text or text in json.dumps(message.blocks, ensure_ascii=False)


def everything_posted_once(current: Seen, findings: list[str]) -> list[str]:
    """What is wrong with the posts of one incident: each must be there, exactly once, updates in order."""
    problems = []
    if len(current.cards) != 1:
        problems.append(f"the 🚨 card was posted {len(current.cards)} times (expected once)")
    if len(current.pages) != 1:
        problems.append(f"the on-call was DM'd {len(current.pages)} times (expected once)")
    if current.updates != findings:
        problems.append(f"📊 updates posted {current.updates}, expected each once, in order: {findings}")
    return problems


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False), so callers can report."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def fail_with(problems: list[str]) -> None:
    assert not problems, "\n".join(["what a user would notice:", *(f"- {p}" for p in problems)])
