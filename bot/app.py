"""The app factory: configuration in, a wired Bolt app and a WSGI application out."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bot.comms.announcer import Announcer, CountedWebClient, reply_privately
from bot.comms.delivery import DeliveryEngine
from bot.comms.outbox import COMMAND_KIND, OBSERVE_KIND, REMEDIATION_KIND, Outbox, wake_on_commit
from bot.comms.paging import Pager
from bot.comms.reminders import Planner, ReminderHandlers
from bot.comms.scheduler import Scheduler
from bot.comms.senders import AnnouncementSenders
from bot.comms.slack_budget import SlackBudget
from bot.core.clock import Clock, SystemClock
from bot.core.database import make_engine, make_session_factory
from bot.core.settings import Config, ConfigError
from bot.incidents.command_jobs import CommandJobs
from bot.incidents.incident_flows import IncidentFlows
from bot.incidents.incident_records import Incident
from bot.incidents.lifecycle import IncidentService
from bot.ingress.button_binding import ButtonBinding
from bot.ingress.front_door import Answer, Dispatch, FrontDoor, ReplayGuard
from bot.ingress.http_server import TarsWsgi
from bot.ingress.signal_endpoints import SignalEndpoints
from bot.observability.observability_flows import ObservabilityFlows
from bot.observability.service_readers import ServiceReaders
from bot.remediation.approvals import ActionService, ApproverDirectory
from bot.remediation.code_fixes import CodeFixFlows
from bot.remediation.execution import RemediationRuns
from bot.remediation.platforms import Platforms
from bot.remediation.remediation_flows import RemediationFlows
from bot.runtime import Tars
from bot.signals.signal_flows import SignalFlows
from integrations.pagerduty import PagerDutyEvents

if TYPE_CHECKING:
    from integrations.github_repos import GitHubClient

log = logging.getLogger(__name__)


def make_slack_client(config: Config) -> WebClient:
    # No retry handlers: the delivery engine decides about retries (a dropped connection may have posted, and a
    # 429 is waited out by the engine, not by a sleeping worker that holds a lane).
    return CountedWebClient(
        token=config.slack_bot_token, base_url=config.slack_api_url, timeout=10, retry_handlers=[]
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
    service = IncidentService(clock, config.services, config.policy, planner)
    senders = AnnouncementSenders(
        sessions,
        Announcer(client),
        PagerDutyEvents(config.pagerduty.events_url, dry_run=config.dry_run),
        config.services,
    )
    delivery = DeliveryEngine(
        sessions,
        senders.by_kind(),
        clock,
        service.record_for,
        budget=SlackBudget(enforce=config.pace_slack),
    )
    delivery.after_sent("card_post", service.card_posted)
    wake_on_commit(sessions, delivery.wake)
    flows = IncidentFlows(sessions, service, outbox, pager, incidents_channel=config.incidents_channel)
    scheduler = Scheduler(
        sessions, ReminderHandlers(planner, pager, outbox), delivery, clock, tick=config.scheduler.tick
    )
    approvers = ApproverDirectory(client, config.approvers)
    actions = ActionService(clock, config.policy, approvers, service)
    delivery.after_sent("action_card_post", actions.card_posted)
    remediation = RemediationFlows(
        sessions,
        clock,
        actions,
        service,
        platforms or Platforms(config),
        approvers,
        outbox,
        planner,
    )
    code_fixes = CodeFixFlows(
        sessions,
        clock,
        config,
        service,
        github,  # None: CodeFixFlows builds the configured client when GitHub is first used
        approvers,
        outbox,
        planner,
    )
    jobs = CommandJobs(sessions, service, outbox, config.services, remediation, code_fixes, reply_privately)
    delivery.register(COMMAND_KIND, jobs.run)
    runs = RemediationRuns(sessions, clock, actions, service, remediation.platforms, outbox, planner)
    delivery.register(REMEDIATION_KIND, runs.start)

    # Phase 5: a P1's post-mortem draft is drafted the moment it is resolved, by a worker after the answer.
    def draft_postmortem(session: Session, incident: Incident, actor: str) -> None:
        if incident.severity == 1:
            jobs.queue_in(session, incident, f"postmortem {incident.id}", actor=actor)

    flows.on_resolve.append(draft_postmortem)
    signals = SignalFlows(
        sessions,
        clock,
        service,
        outbox,
        config.services,
        incidents_channel=config.incidents_channel,
        report_threshold=config.signals.customer_reports,
        report_window=config.signals.report_window,
        digest_after=config.signals.digest_after,
        auto_declare=config.signals.auto_declare,
        declare_in=lambda session, command, actor: flows.declare_in(session, command, actor=actor),
    )
    delivery.after_sent("triage_post", signals.card_posted)
    observability = ObservabilityFlows(
        sessions,
        clock,
        service,
        outbox,
        ServiceReaders(config.services, config.aws),
        remediation.platforms.last_deployed_at,
        reply_privately,
        flows.resolve,
    )
    delivery.register(OBSERVE_KIND, observability.run)
    remediation.onset_of = observability.onset
    code_fixes.rates_around_deploy = observability.rates_around_deploy
    return Tars(
        config=config,
        engine=engine,
        sessions=sessions,
        clock=clock,
        client=client,
        flows=flows,
        planner=planner,
        scheduler=scheduler,
        delivery=delivery,
        remediation=remediation,
        remediation_runs=runs,
        code_fixes=code_fixes,
        jobs=jobs,
        buttons=ButtonBinding(sessions, service, actions),
        signals=signals,
        observability=observability,
    )


@dataclass
class TarsApp:
    tars: Tars
    bolt: App
    wsgi: TarsWsgi
    listeners: ThreadPoolExecutor

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until the work already started is done: listeners that answered and went on (a modal, a
        private reply), and the posts they queued. For tests, benchmarks and the sandbox."""
        from handlers.listener_errors import LISTENERS

        return LISTENERS.wait_idle(timeout) and self.tars.delivery.deliver_due(timeout)

    def close(self, *, wait_for_remediation: bool = True) -> None:
        """Finish work already acked (listeners, running remediation, posts in flight) before the process goes
        away; what is not finished in time is released for another replica."""
        self.tars.scheduler.stop()
        self.listeners.shutdown(wait=True)
        self.tars.delivery.stop()
        self.tars.remediation_runs.shutdown(wait=wait_for_remediation)


# Bolt gives up on a listener that has not acked after this long (its `ack_timeout`).
ACK_TIMEOUT_SECONDS = 3.0


class PromptAck(Ack):
    """An `ack` that hands its answer to the waiting request thread the moment the listener calls it.

    Bolt (process_before_response=False) runs the listener on another thread and polls `ack.response` every
    10 ms. A TARS listener acks only after its change is committed, a few milliseconds in, so the poll added up
    to 10 ms to every answer and held one of the server's threads for it. Read on the thread that made it,
    an unset response waits for the ack (up to Bolt's own limit); read anywhere else, it never waits.
    """

    def __init__(self) -> None:
        self._answered = threading.Event()
        self._requester = threading.get_ident()
        self._deadline = time.monotonic() + ACK_TIMEOUT_SECONDS
        # Ack.__init__ only sets `response`, which this class keeps itself.
        self._response: BoltResponse | None = None

    @property
    def response(self) -> BoltResponse | None:
        if self._response is None and threading.get_ident() == self._requester:
            self._answered.wait(max(0.0, self._deadline - time.monotonic()))
        return self._response

    @response.setter
    def response(self, value: BoltResponse | None) -> None:
        self._response = value
        if value is not None:
            self._answered.set()


# How many requests Bolt works on at once, each until its ack. The work before an ack is Python and database
# round trips under one GIL: more at once add only contention. Measured with bench/ack_latency.py's requests
# at 50 concurrent clients: 8 at once cost 3.6-4.0 ms of CPU per request and answered 244-268 a second;
# 2 at once (through FairGate), 2.96 ms and 313 a second.
DISPATCH_SLOTS = 2
# The slots are for speed, not safety: a request waits this long for one at most, so listeners stuck before
# their ack (a row lock, a database blip) slow the others down but never stop them.
SLOT_WAIT_SECONDS = 1.0


class FairGate:
    """A semaphore that hands a freed slot to the request that has waited longest.

    threading.Semaphore lets a newcomer take a slot before a woken waiter does, so under load some requests
    lost round after round and made the slowest answers slower still.
    """

    def __init__(self, slots: int) -> None:
        self._lock = threading.Lock()
        self._free = slots
        self._waiting: deque[threading.Event] = deque()

    def acquire(self, timeout: float) -> bool:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return True
            turn = threading.Event()
            self._waiting.append(turn)
        if turn.wait(timeout):
            return True
        with self._lock:
            if turn.is_set():  # handed the slot just as the wait ran out
                return True
            self._waiting.remove(turn)
            return False

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._free += 1


def bolt_dispatch(bolt: App, *, slots: int = DISPATCH_SLOTS) -> Dispatch:
    """Hands Bolt the body the front door has parsed and checked."""
    gate = FairGate(slots)

    def dispatch(body: dict[str, Any]) -> Answer:
        # A BoltRequest in "socket_mode" is how Bolt takes a body that is already parsed; the mode changes
        # nothing else but skipping the signature check, which the front door has done on the raw bytes.
        request = BoltRequest(body=body, mode="socket_mode")
        admitted = gate.acquire(timeout=SLOT_WAIT_SECONDS)
        try:
            # Made once admitted: Bolt's 3 s for the listener start when it can run.
            request.context["ack"] = PromptAck()
            # Returns as soon as the listener acks, freeing the slot; what the listener does after its ack
            # (a private reply, a modal) runs outside the gate.
            response = bolt.dispatch(request)
        finally:
            if admitted:
                gate.release()
        return response.status, response.headers, response.body

    return dispatch


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
        # The front door has checked the signature (HTTP); Socket Mode requests are not signed.
        request_verification_enabled=False,
        # The front door answers ssl_check itself, and TARS subscribes to no events to ignore or verify.
        ssl_check_enabled=False,
        url_verification_enabled=False,
        ignoring_self_events_enabled=False,
        process_before_response=False,
    )
    handlers.register_all(bolt, tars)
    tars.delivery.start(listen=tars.engine)
    front_door = (
        None
        if config.socket_mode
        else FrontDoor(
            bolt_dispatch(bolt),
            signing_secret=config.slack_signing_secret or "",
            replays=ReplayGuard(tars.engine),
        )
    )
    wsgi = TarsWsgi(tars.engine, front_door, signals=SignalEndpoints(config, tars.signals, tars.clock))
    return TarsApp(tars=tars, bolt=bolt, wsgi=wsgi, listeners=listeners)
