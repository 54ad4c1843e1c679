"""The app factory: configuration in, a wired Bolt app and a WSGI application out."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from sqlalchemy import Engine

from bot.actions import ActionService, ApproverDirectory
from bot.announcer import Announcer
from bot.clock import Clock, SystemClock
from bot.code_fixes import CodeFixFlows
from bot.config import Config, ConfigError
from bot.db import make_engine, make_session_factory
from bot.flows import IncidentFlows
from bot.front_door import FrontDoor, ReplayGuard
from bot.incidents import IncidentService
from bot.outbox import Deliverer, Outbox
from bot.platforms import Platforms
from bot.remediation import RemediationFlows
from bot.reminders import Pager, Planner, ReminderHandlers
from bot.runtime import Tars
from bot.scheduler import Scheduler
from bot.server import TarsWsgi
from integrations.github import GitHubClient
from integrations.pagerduty import PagerDutyEvents

log = logging.getLogger(__name__)


def make_slack_client(config: Config) -> WebClient:
    return WebClient(
        token=config.slack_bot_token,
        base_url=config.slack_api_url,
        timeout=10,
        # A 429 means Slack did not act on the call, so retrying it cannot double-post.
        retry_handlers=[ConnectionErrorRetryHandler(), RateLimitErrorRetryHandler(max_retry_count=2)],
    )


def build_tars(
    config: Config,
    *,
    clock: Clock | None = None,
    engine: Engine | None = None,
    platforms: Platforms | None = None,
    github: GitHubClient | None = None,
) -> Tars:
    engine = engine or make_engine(config.database_url)
    sessions = make_session_factory(engine)
    clock = clock or SystemClock()
    client = make_slack_client(config)
    outbox = Outbox(clock)
    planner = Planner(clock, config.policy, config.services, outbox)
    pager = Pager(outbox, config.services)
    pagerduty = PagerDutyEvents(config.pagerduty.events_url, dry_run=config.dry_run)
    deliverer = Deliverer(sessions, Announcer(client), pagerduty, clock)
    service = IncidentService(clock, config.services, config.policy, planner)
    flows = IncidentFlows(
        sessions, service, outbox, pager, deliverer, incidents_channel=config.incidents_channel
    )
    scheduler = Scheduler(
        sessions, ReminderHandlers(planner, pager, outbox), deliverer, clock, tick=config.scheduler.tick
    )
    approvers = ApproverDirectory(client, config.approvers)
    remediation = RemediationFlows(
        sessions,
        clock,
        ActionService(clock, config.policy, approvers, service),
        service,
        platforms or Platforms(config),
        approvers,
        outbox,
        planner,
        deliverer,
    )
    code_fixes = CodeFixFlows(
        sessions,
        clock,
        config,
        service,
        github
        or GitHubClient(token=config.github_token, base_url=config.github.base_url, dry_run=config.dry_run),
        approvers,
        outbox,
        planner,
        deliverer,
    )
    # Phase 5: a P1's post-mortem draft is posted the moment it is resolved.
    flows.after_resolve.append(
        lambda incident, actor: (
            code_fixes.postmortem(incident.id, actor=actor) if incident.severity == 1 else None
        )
    )
    return Tars(
        config=config,
        engine=engine,
        sessions=sessions,
        clock=clock,
        client=client,
        flows=flows,
        planner=planner,
        scheduler=scheduler,
        remediation=remediation,
        code_fixes=code_fixes,
    )


@dataclass
class TarsApp:
    tars: Tars
    bolt: App
    wsgi: TarsWsgi
    listeners: ThreadPoolExecutor

    def close(self) -> None:
        """Finish work already acked (listeners, running remediation) before the process goes away."""
        self.tars.scheduler.stop()
        self.listeners.shutdown(wait=True)
        self.tars.remediation.shutdown()


def create_app(
    config: Config,
    *,
    clock: Clock | None = None,
    engine: Engine | None = None,
    platforms: Platforms | None = None,
    github: GitHubClient | None = None,
) -> TarsApp:
    import handlers

    if not config.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set (run `tars sandbox` to try TARS without Slack)")
    if not config.socket_mode and not config.slack_signing_secret:
        raise ConfigError("SLACK_SIGNING_SECRET is required unless SLACK_APP_TOKEN selects Socket Mode")
    tars = build_tars(config, clock=clock, engine=engine, platforms=platforms, github=github)
    listeners = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tars-listener")
    bolt = App(
        client=tars.client,
        listener_executor=listeners,
        signing_secret=config.slack_signing_secret or "",
        # Socket Mode requests are not signed; HTTP ones always are.
        request_verification_enabled=not config.socket_mode,
        process_before_response=False,
    )
    handlers.register_all(bolt, tars)
    front_door = (
        None
        if config.socket_mode
        else FrontDoor(
            SlackRequestHandler(bolt),
            signing_secret=config.slack_signing_secret or "",
            replays=ReplayGuard(tars.engine),
        )
    )
    wsgi = TarsWsgi(tars.engine, front_door)
    return TarsApp(tars=tars, bolt=bolt, wsgi=wsgi, listeners=listeners)
