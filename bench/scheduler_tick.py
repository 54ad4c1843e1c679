"""How long one scheduler tick takes: N open incidents, of which 100 have an update due.

Prints the median and p95 of the tick (claim due reminders, fire them, queue their announcements; Slack
delivery is separate and bounded by Slack, not by us) for several numbers of open-but-not-due incidents, to show
the tick does not grow with them. Target: under 20 ms with 10,000 open incidents on a 2-core machine.

Usage: .venv/bin/python bench/scheduler_tick.py [--postgres-url URL] [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, insert, text

from bot.app import build_tars
from bot.clock import FrozenClock
from bot.config import Config, ServiceConfig
from bot.db import make_engine, upgrade_database
from bot.models import Incident, Reminder

DUE = 100
START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


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


def measure(url: str, open_incidents: int, runs: int) -> list[float]:
    engine = make_engine(url)
    upgrade_database(engine)
    seed(engine, open_incidents)
    clock = FrozenClock(START + timedelta(minutes=30))
    config = Config(
        database_url=url,
        slack_bot_token="xoxb-bench",
        slack_signing_secret="bench",
        slack_api_url="http://127.0.0.1:9/api/",
        incidents_channel="C0INCIDENTS",
        services={"payments": ServiceConfig(oncall="U0PAYONCALL")},
    )
    tars = build_tars(config, clock=clock, engine=engine)
    timings = []
    for run in range(runs + 2):
        clock.advance(timedelta(seconds=15))
        add_due(engine, open_incidents, run, clock.now())
        started = time.perf_counter()
        result = tars.scheduler.tick()
        elapsed = (time.perf_counter() - started) * 1000
        assert result.fired == DUE, result
        if run >= 2:  # the first ticks warm caches and prepared statements
            timings.append(elapsed)
    engine.dispose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--sizes", default="1000,10000,50000")
    args = parser.parse_args()
    admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
    name = f"tars_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.postgres_url.rsplit("/", 1)[0] + "/" + name
    try:
        print(f"scheduler tick, {DUE} due per tick, {args.runs} ticks per size (Postgres)")
        print(f"{'open incidents':>15} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
        for size in (int(s) for s in args.sizes.split(",")):
            timings = sorted(measure(url, size, args.runs))
            p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
            print(f"{size:>15,} {statistics.median(timings):>10.1f} {p95:>8.1f} {max(timings):>8.1f}")
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
