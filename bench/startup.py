"""How fast a restarted TARS is ready, against the floor: a bare Bolt app's start-up.

Both servers are started as processes, as an orchestrator starts them, and timed from just before the process is
spawned to the first 200 answer to `GET /healthz` (polled every 10 ms): the floor is bench/bare_bolt_app.py
(slack_bolt and waitress, set up as TARS sets them up, answering /healthz itself); TARS is `python -m bot.cli
serve`, configured from the environment as in production, on a Postgres database that this script creates,
migrates once beforehand and drops, so what is measured is a restart (`serve` still checks the migrations, as it
does at every start). Bolt's App() calls auth.test at start, so both talk to a Slack emulator in this process.
The catalog names a Kubernetes, an ECS and a Lambda target, as a production catalog would.

Each server is started once untimed (bytecode and the page cache are warm, as on a restart), then `--runs` (3)
times timed, alternating; the median of each is compared. Target: TARS ready within 5x the floor.

Usage: .venv/bin/python bench/startup.py [--runs 3] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from sandbox.emulator import SlackEmulator

from ack_latency import BOT_TOKEN, CHANNEL, ROOT, SIGNING_SECRET, free_port, machine, verdict  # isort: skip

RATIO_MAX = 5.0
POLL_SECONDS = 0.01
READY_TIMEOUT = 60.0
CATALOG = """\
services:
  payments:
    oncall: U0PAYONCALL
    kubernetes: {namespace: prod, deployment: payments}
    repository: acme/payments
  checkout:
    oncall: U0CHKONCALL
    ecs: {cluster: prod, service: checkout, region: eu-west-1}
    lambda_functions: [checkout-webhooks]
flags:
  payment.new_processor.enabled:
    service: payments
    values: ["true", "false"]
"""


@dataclass(frozen=True)
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]


def healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def time_to_ready(server: Server, log_dir: Path) -> float:
    """Seconds from spawning the process to its first /healthz 200; the process is stopped afterwards."""
    port = free_port()
    env = {
        **os.environ,
        **server.env,
        "PORT": str(port),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    log_path = log_dir / f"{server.name.lower()}.log"
    with log_path.open("ab") as log:
        began = time.perf_counter()
        process = subprocess.Popen(server.argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while not healthy(port):
            elapsed = time.perf_counter() - began
            if process.poll() is not None or elapsed > READY_TIMEOUT:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
                state = f"exited with {process.returncode}" if process.returncode is not None else "timed out"
                raise RuntimeError(f"{server.name} {state} before /healthz answered 200:\n{tail}")
            time.sleep(POLL_SECONDS)
        return time.perf_counter() - began
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def migrate(database_url: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "migrate"],
        cwd=ROOT,
        env={**os.environ, **env, "DATABASE_URL": database_url},
        check=True,
        capture_output=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--runs", type=int, default=3, help="timed starts of each server (the median counts)")
    args = parser.parse_args()

    admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
    name = f"tars_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database_url = args.postgres_url.rsplit("/", 1)[0] + "/" + name
    slack = SlackEmulator(bot_token=BOT_TOKEN).start()
    slack_env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.base_url,
    }
    print(
        f"startup: process start to first /healthz 200, {args.runs} timed starts each after one untimed;"
        f" TARS restarts on an already-migrated database; {machine()}",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="tars-bench-") as scratch:
            log_dir = Path(scratch)
            catalog = log_dir / "catalog.yaml"
            catalog.write_text(CATALOG)
            tars_env = {
                **slack_env,
                "DATABASE_URL": database_url,
                "TARS_CONFIG": str(catalog),
                "TARS_INCIDENTS_CHANNEL": CHANNEL,
            }
            migrate(database_url, tars_env)
            servers = [
                Server(
                    "floor",
                    [sys.executable, str(Path(__file__).resolve().parent / "bare_bolt_app.py")],
                    slack_env,
                ),
                Server("TARS", [sys.executable, "-m", "bot.cli", "serve"], tars_env),
            ]
            times: dict[str, list[float]] = {server.name: [] for server in servers}
            for server in servers:
                time_to_ready(server, log_dir)
            for _ in range(args.runs):
                for server in servers:
                    times[server.name].append(time_to_ready(server, log_dir))
        floor, tars = (statistics.median(times[server.name]) for server in servers)
        ratio = tars / floor
        print()
        print(f"{'server':<6} {'median s':>9}  runs (s)")
        for server in servers:
            runs = ", ".join(f"{t:.2f}" for t in times[server.name])
            print(f"{server.name:<6} {statistics.median(times[server.name]):>9.2f}  {runs}")
        print(
            f"floor {floor:.2f} s / TARS {tars:.2f} s / ratio {ratio:.1f}x (target <= {RATIO_MAX:g}x): ",
            end="",
        )
        print(verdict(ratio <= RATIO_MAX))
    finally:
        slack.stop()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
