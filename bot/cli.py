"""`tars`: serve, migrate, check the configuration, or try TARS locally in a sandbox."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from sqlalchemy.exc import OperationalError

from bot.core.logs import LOG_FORMATS, setup_logging
from bot.core.settings import Config, ConfigError, load_config
from bot.ingress.http_server import PortInUse
from bot.observability.service_readers import describe, missing_secrets

log = logging.getLogger("tars")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tars")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def cmd_migrate(_args: argparse.Namespace) -> int:
    from bot.core.database import make_engine, upgrade_database

    config = load_config()
    upgrade_database(make_engine(config.database_url))
    print(f"database is up to date ({_safe_url(config.database_url)})")
    return 0


def cmd_serve(_args: argparse.Namespace) -> int:
    from bot.app import create_app
    from bot.core.database import make_engine, upgrade_database
    from bot.core.heap import settle_after_startup
    from bot.ingress.http_server import HttpServer, bind_listener

    config = _load_checked_config()
    engine = make_engine(config.database_url)
    upgrade_database(engine)
    # Bound before anything starts, so a taken port is reported before any work begins.
    listener = bind_listener(config.port)
    tars_app = create_app(config, engine=engine)
    log.info(
        "TARS starting: %s mode, database %s, catalog from %s (%d services)",
        "Socket" if config.socket_mode else "HTTP",
        _safe_url(config.database_url),
        config.config_source,
        len(config.services),
    )
    server = HttpServer(tars_app.wsgi, listener=listener)
    settle_after_startup()
    stop = threading.Event()
    # Kubernetes sends SIGTERM and waits terminationGracePeriodSeconds (30 s) before SIGKILL.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    tars_app.tars.scheduler.start()
    if config.socket_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        socket_mode = SocketModeHandler(tars_app.bolt, config.slack_app_token)
        socket_mode.connect()
        tars_app.wsgi.socket_mode_connected = socket_mode.client.is_connected
        log.info("Socket Mode connected; probes on :%d/livez and /readyz", server.port)
    else:
        log.info("listening on :%d (POST /slack/events, GET /livez, /readyz)", server.port)
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


def _load_checked_config() -> Config:
    """The configuration, with every secret the catalog names present in the environment."""
    config = load_config()
    missing = missing_secrets(config.services, os.environ)
    if missing:
        raise ConfigError("; ".join(missing))
    return config


def cmd_check_config(_args: argparse.Namespace) -> int:
    """Validate the environment and the YAML without connecting anywhere."""
    config = _load_checked_config()
    print(
        f"configuration is valid: {'Socket' if config.socket_mode else 'HTTP'} mode, database "
        f"{_safe_url(config.database_url)}, {len(config.services)} services from {config.config_source}"
    )
    endpoints = {
        "/signals/alertmanager": "TARS_ALERTMANAGER_TOKEN" if not config.alertmanager_token else None,
        "/signals/sns": "signals.sns_topics" if not config.signals.sns_topics else None,
        "/signals/webhook": "TARS_SIGNAL_WEBHOOK_SECRET" if not config.signal_webhook_secret else None,
    }
    on = [path for path, missing in endpoints.items() if missing is None]
    off = [f"{path} (set {missing})" for path, missing in endpoints.items() if missing is not None]
    print(f"alert endpoints on: {', '.join(on) or 'none'}; off: {', '.join(off) or 'none'}")
    print(describe(config.services))
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    """Print the least privilege the catalog's remediation needs: Kubernetes RBAC (YAML) or an IAM policy (JSON)."""
    import json

    import yaml

    from bot.core.domain_errors import UsageError
    from bot.remediation.least_privilege import aws_policy, kubernetes_rbac

    config = load_config()
    if args.platform == "kubernetes":
        objects = kubernetes_rbac(
            config, service_account=args.service_account, account_namespace=args.namespace
        )
        if not objects:
            print("# the catalog names no Kubernetes deployments: TARS needs no Kubernetes permissions")
        print(yaml.safe_dump_all(objects, sort_keys=False), end="")
        return 0
    try:
        policy = aws_policy(config, account=args.account, region=args.region)
    except UsageError as error:
        print(f"tars: {error.message}", file=sys.stderr)
        return 2
    print(json.dumps(policy, indent=2))
    return 0


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
    return run_sandbox(script=args.script, page_port=args.port)


def _aws_account(value: str) -> str:
    if not (len(value) == 12 and value.isdigit()):
        raise argparse.ArgumentTypeError(f"an AWS account id is 12 digits, not {value!r}")
    return value


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
    parser.add_argument("--version", action="version", version=f"tars {_version()}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=LOG_LEVELS,
        help="DEBUG, INFO, WARNING or ERROR (default INFO)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run TARS for a real Slack workspace (migrates the database first)")
    commands.add_parser("migrate", help="upgrade the database to the newest schema")
    commands.add_parser(
        "check-config", help="validate the environment and the YAML file without connecting anywhere"
    )
    policy = commands.add_parser("policy", help="print the least privilege the catalog's remediation needs")
    platforms = policy.add_subparsers(dest="platform", required=True)
    kubernetes = platforms.add_parser("kubernetes", help="a Role and RoleBinding per namespace (YAML)")
    kubernetes.add_argument("--service-account", default="tars", help="TARS's ServiceAccount (default tars)")
    kubernetes.add_argument(
        "--namespace", default="tars", help="the ServiceAccount's namespace (default tars)"
    )
    aws = platforms.add_parser(
        "aws", help="an IAM policy for the catalog's ECS, SSM and Lambda resources (JSON)"
    )
    aws.add_argument("--account", required=True, type=_aws_account, help="the AWS account id (12 digits)")
    aws.add_argument(
        "--region", help="for resources whose region the catalog does not name (default aws.region)"
    )
    sandbox = commands.add_parser(
        "sandbox", help="try TARS locally: a Slack-like page in your browser, and a prompt in the terminal"
    )
    sandbox.add_argument(
        "--script",
        help="read commands from this file instead of the terminal ('-' = stdin; 'demo' plays the demo story)",
    )
    sandbox.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("TARS_SANDBOX_PORT", "8080")),
        help="the browser page's port on 127.0.0.1 (default 8080, or TARS_SANDBOX_PORT; 0 picks a free one)",
    )
    args = parser.parse_args(argv)
    log_format = os.environ.get("LOG_FORMAT", "text").strip().lower() or "text"
    if log_format not in LOG_FORMATS:
        print(f"tars: LOG_FORMAT must be text or json, not {log_format!r}", file=sys.stderr)
        return 2
    setup_logging(args.log_level if args.command != "sandbox" else "WARNING", log_format)
    handler = {
        "serve": cmd_serve,
        "migrate": cmd_migrate,
        "check-config": cmd_check_config,
        "policy": cmd_policy,
        "sandbox": cmd_sandbox,
    }[args.command]
    try:
        return handler(args)
    except ConfigError as error:
        print(f"tars: configuration error: {error}", file=sys.stderr)
        return 2
    except PortInUse as error:
        print(f"tars: {error}", file=sys.stderr)
        return 1
    except OperationalError as error:
        # The driver's first line says why (refused, unknown host, authentication); the rest is noise here.
        reason = str(error.orig).strip().splitlines()[0] if error.orig is not None else type(error).__name__
        # As the operator wrote it (before psycopg's driver name is added), or Config's default.
        url = _safe_url(os.environ.get("DATABASE_URL", str(Config.model_fields["database_url"].default)))
        print(f"tars: cannot reach the database at {url}: {reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
