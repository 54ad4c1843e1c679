"""The assembled parts of a running TARS, handed to listeners."""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.comms.delivery import DeliveryEngine
from bot.comms.reminders import Planner
from bot.comms.scheduler import Scheduler
from bot.core.clock import Clock
from bot.core.settings import Config
from bot.incidents.command_jobs import CommandJobs
from bot.incidents.incident_flows import IncidentFlows
from bot.ingress.button_binding import ButtonBinding
from bot.observability.observability_flows import ObservabilityFlows
from bot.remediation.code_fixes import CodeFixFlows
from bot.remediation.execution import RemediationRuns
from bot.remediation.remediation_flows import RemediationFlows
from bot.signals.signal_flows import SignalFlows


@dataclass
class Tars:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Clock
    client: WebClient
    flows: IncidentFlows
    planner: Planner
    scheduler: Scheduler
    delivery: DeliveryEngine
    remediation: RemediationFlows
    remediation_runs: RemediationRuns
    code_fixes: CodeFixFlows
    jobs: CommandJobs
    buttons: ButtonBinding
    signals: SignalFlows
    observability: ObservabilityFlows
