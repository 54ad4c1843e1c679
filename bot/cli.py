"""`tars`: serve, migrate, or try TARS locally in a sandbox."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from bot.core.settings import ConfigError, load_config

log = logging.getLogger("tars")


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # APScheduler logs two lines per tick at INFO; TARS logs what a tick did itself.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def cmd_migrate(_args: argparse.Namespace) -> int:
    from bot.core.database import make_engine, upgrade_database

    config = load_config()
    upgrade_database(make_engine(config.database_url))
    print(f"database is up to date ({_safe_url(config.database_url)})")
    return 0


def cmd_serve(_args: argparse.Namespace) -> int:
    from bot.app import create_app
    from bot.core.database import make_engine, upgrade_database
    from bot.ingress.http_server import HttpServer

    config = load_config()
    engine = make_engine(config.database_url)
    upgrade_database(engine)
    tars_app = create_app(config, engine=engine)
    log.info(
        "TARS starting: %s mode, database %s, catalog from %s (%d services)",
        "Socket" if config.socket_mode else "HTTP",
        _safe_url(config.database_url),
        config.config_source,
        len(config.services),
    )
    server = HttpServer(tars_app.wsgi, port=config.port)
    stop = threading.Event()
    # Kubernetes sends SIGTERM and waits terminationGracePeriodSeconds (30 s) before SIGKILL.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    tars_app.tars.scheduler.start()
    if config.socket_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        SocketModeHandler(tars_app.bolt, config.slack_app_token).connect()
        log.info("Socket Mode connected; health check on :%d/healthz", server.port)
    else:
        log.info("listening on :%d (POST /slack/events, GET /healthz)", server.port)
    server.start()
    stop.wait()
    log.info("stopping: no new work; finishing or releasing what is in flight")
    server.stop()
    tars_app.close(wait_for_remediation=False)
    log.info("stopped")
    logging.shutdown()
    # A remediation still following a rollout must not hold the process past the grace period; it is
    # recorded as abandoned and marked failed later, as after any crash.
    os._exit(0)


def cmd_sandbox(args: argparse.Namespace) -> int:
    try:
        from sandbox.repl import run_sandbox
    except ModuleNotFoundError as missing:
        if missing.name != "sandbox" and not (missing.name or "").startswith("sandbox."):
            raise
        # The production image ships without the sandbox and its Slack emulator.
        print(
            "tars sandbox is not part of this install; run it from a checkout with `make run`",
            file=sys.stderr,
        )
        return 2
    return run_sandbox(script=args.script)


def _safe_url(url: str) -> str:
    """The database URL without its password, for logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else f"{scheme}://{user}@{host}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tars", description="TARS, the incident-response bot for Slack.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run TARS for a real Slack workspace (migrates the database first)")
    commands.add_parser("migrate", help="upgrade the database to the newest schema")
    sandbox = commands.add_parser("sandbox", help="try TARS in the terminal against a local Slack emulator")
    sandbox.add_argument(
        "--script", help="read commands from this file instead of the terminal ('-' = stdin)"
    )
    args = parser.parse_args(argv)
    _setup_logging(args.log_level if args.command != "sandbox" else "WARNING")
    handler = {"serve": cmd_serve, "migrate": cmd_migrate, "sandbox": cmd_sandbox}[args.command]
    try:
        return handler(args)
    except ConfigError as error:
        print(f"tars: configuration error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
