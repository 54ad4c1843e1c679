"""Every domain's tables, imported together so that `Base.metadata` knows the whole schema (Alembic needs it)."""

from bot.comms import comms_records
from bot.incidents import incident_records
from bot.ingress import seen_requests
from bot.remediation import action_records
from bot.signals import signal_records

__all__ = ["action_records", "comms_records", "incident_records", "seen_requests", "signal_records"]
