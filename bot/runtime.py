"""The assembled parts of a running TARS, handed to listeners."""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.buttons import ButtonBinding
from bot.clock import Clock
from bot.code_fixes import CodeFixFlows
from bot.command_jobs import CommandJobs
from bot.config import Config
from bot.delivery import DeliveryEngine
from bot.flows import IncidentFlows
from bot.remediation import RemediationFlows
from bot.reminders import Planner
from bot.scheduler import Scheduler


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
    code_fixes: CodeFixFlows
    jobs: CommandJobs
    buttons: ButtonBinding
