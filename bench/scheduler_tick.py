"""How long one scheduler tick takes: N open incidents, of which 100 have an update due.

Two tables, each with the median and p95 of at least 40 ticks per size, for several numbers of open-but-not-due
incidents, to show the tick does not grow with them:
- tick only: claim due reminders, fire them, queue their announcements in the outbox. Target: under 20 ms with
  10,000 open incidents on a 2-core machine.
- tick + delivery: the same tick, then the 100 queued posts delivered to a Slack emulator on loopback, timed
  until the outbox has nothing pending.

Usage: .venv/bin/python bench/scheduler_tick.py [--postgres-url URL] [--runs 40] [--sizes 1000,10000,50000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, create_engine, func, insert, select, text

from bot.app import build_tars
from bot.comms.comms_records import OutboxMessage, Reminder
from bot.comms.slack_budget import SlackBudget
from bot.core.clock import FrozenClock
from bot.core.database import make_engine, upgrade_database
from bot.core.heap import settle_after_startup
from bot.core.settings import Config, ServiceConfig
from bot.incidents.incident_records import Incident
from bot.runtime import Tars
from sandbox.emulator import SlackEmulator

DUE = 100
WARM_UP = 2  # the first ticks of each size warm caches and prepared statements; they are not counted
START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def deliver_queued(tars: Tars) -> None:
    """Deliver everything the tick queued; return only when nothing is left pending.

    The only call into the delivery API in this file: delivery is being reworked on main, adapt it here.
    """
    tars.delivery.deliver_due(timeout=120)


def seed(engine, open_incidents: int) -> None:  # type: ignore[no-untyped-def]
    rows = [
        {
            "service": "payments",
            "severity": 1,
            "status": "investigating",
            "description": f"bench incident {n}",
            "reporter": "U0BENCH",
            "oncall": "U0PAYONCALL",
            "declared_at": START,
            "channel_id": "C0INCIDENTS",
            "card_ts": f"1700000000.{n:06d}",
            "version": 1,
            "escalations": 0,
        }
        for n in range(open_incidents)
    ]
    with engine.begin() as connection:
        connection.execute(
            text("TRUNCATE outbox, reminders, timeline_events, incidents RESTART IDENTITY CASCADE")
        )
        connection.execute(insert(Incident), rows)
        # Every open incident has its next update planned; only the ones added per run are due.
        connection.execute(
            insert(Reminder),
            [
                {
                    "incident_id": n + 1,
                    "kind": "update",
                    "due_at": START + timedelta(hours=5),
                    "payload": {},
                    "state": "pending",
                    "created_at": START,
                    "late": False,
                }
                for n in range(open_incidents)
            ],
        )
        connection.execute(text("ANALYZE"))


def add_due(engine, open_incidents: int, run: int, now: datetime) -> None:  # type: ignore[no-untyped-def]
    step = max(1, open_incidents // DUE)
    with engine.begin() as connection:
        connection.execute(
            insert(Reminder),
            [
                {
                    "incident_id": (n * step + run) % open_incidents + 1,
                    "kind": "update",
                    "due_at": now - timedelta(seconds=5),
                    "payload": {},
                    "state": "pending",
                    "created_at": now,
                    "late": False,
                }
                for n in range(DUE)
            ],
        )


def outbox_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state))
        return {str(state): int(count) for state, count in rows}


def measure(url: str, open_incidents: int, runs: int, slack: SlackEmulator | None) -> list[float]:
    """Milliseconds per tick; with `slack`, per tick plus delivering what it queued to that emulator."""
    engine = make_engine(url)
    upgrade_database(engine)
    seed(engine, open_incidents)
    clock = FrozenClock(START + timedelta(minutes=30))
    config = Config(
        database_url=url,
        slack_bot_token="xoxb-bench",
        slack_signing_secret="bench",
        # Tick only: nothing listens on port 9, and nothing is delivered.
        slack_api_url=slack.base_url if slack else "http://127.0.0.1:9/api/",
        incidents_channel="C0INCIDENTS",
        services={"payments": ServiceConfig(oncall="U0PAYONCALL")},
    )
    tars = build_tars(config, clock=clock, engine=engine)
    # TARS's own cost: Slack's real pacing (one post per second per channel) would make this table a
    # measure of Slack, not of us; bench/delivery.py measures delivery against Slack's limits.
    tars.delivery.budget = SlackBudget(enforce=False)
    settle_after_startup()  # as `tars serve` does once TARS is built
    timings = []
    for run in range(runs + WARM_UP):
        clock.advance(timedelta(seconds=15))
        add_due(engine, open_incidents, run, clock.now())
        started = time.perf_counter()
        result = tars.scheduler.tick()
        if slack is not None:
            deliver_queued(tars)
        elapsed = (time.perf_counter() - started) * 1000
        assert result.fired == DUE, result
        if slack is not None:
            counts = outbox_counts(engine)
            # Every post sent, none given up on: otherwise the timing would be of failures.
            assert counts.get("pending", 0) == 0 and counts.get("failed", 0) == 0, counts
            assert counts.get("sent", 0) == DUE * (run + 1), counts
        if run >= WARM_UP:
            timings.append(elapsed)
    engine.dispose()
    return timings


def p95(timings: list[float]) -> float:
    """The 95th percentile, interpolated between the two nearest samples (numpy's default)."""
    return statistics.quantiles(timings, n=20, method="inclusive")[18]


def print_table(title: str, url: str, sizes: list[int], runs: int, slack: SlackEmulator | None) -> None:
    print(title)
    print(f"{'open incidents':>15} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'runs':>5}")
    for size in sizes:
        if slack is not None:
            slack.reset()  # forget the previous size's calls and messages
        timings = measure(url, size, runs, slack)
        print(
            f"{size:>15,} {statistics.median(timings):>10.1f} {p95(timings):>8.1f} {max(timings):>8.1f}"
            f" {len(timings):>5}",
            flush=True,
        )


def machine() -> str:
    """Other work on a shared machine moves the numbers: say how busy it was."""
    return f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--runs", type=int, default=40, help="ticks measured per size (at least 40)")
    parser.add_argument("--sizes", default="1000,10000,50000")
    args = parser.parse_args()
    if args.runs < 40:
        parser.error("--runs must be at least 40: fewer samples cannot give a p95")
    sizes = [int(s) for s in args.sizes.split(",")]
    admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
    name = f"tars_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.postgres_url.rsplit("/", 1)[0] + "/" + name
    slack = SlackEmulator(bot_token="xoxb-bench").start()
    try:
        print(
            f"scheduler tick: {DUE} due per tick, {args.runs} ticks per size after {WARM_UP} warm-up ticks"
            f" (Postgres); {machine()}\n"
        )
        print_table("tick only (claim, fire, queue the announcements)", url, sizes, args.runs, None)
        print()
        print_table(
            f"tick + delivery (the tick, then its {DUE} posts delivered to the Slack emulator until the"
            " outbox is empty)",
            url,
            sizes,
            args.runs,
            slack,
        )
        print(f"\nat the end: {machine()}")
    finally:
        slack.stop()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
