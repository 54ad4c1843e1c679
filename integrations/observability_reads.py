"""What TARS reads from a service's metrics and logs backends: the shapes every reader returns.

Readers only read, so dry_run does not apply to them. Each one fails with ReadFailed, whose message is what the
incident thread is told ("Prometheus did not answer in 10 s"), never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from integrations.plans import IntegrationError


class ReadFailed(IntegrationError):
    """The backend refused, failed or did not answer in time; the message names the backend and why."""


@dataclass(frozen=True)
class Point:
    at: datetime  # UTC, tz-aware
    value: float


# Points in time order, one per step where the backend had data (gaps are simply missing points).
Series = tuple[Point, ...]


class MetricReader(Protocol):
    """One service's metrics. The error rate is a fraction (0.001 is 0.1%); latency is in seconds."""

    backend: str  # "Prometheus" or "CloudWatch", for messages

    @property
    def has_latency(self) -> bool: ...

    def error_rate(self, start: datetime, end: datetime, step: timedelta) -> Series: ...

    def latency(self, start: datetime, end: datetime, step: timedelta) -> Series: ...


@dataclass(frozen=True)
class LogLine:
    at: datetime  # UTC, tz-aware
    group: str
    stream: str
    message: str


class LogReader(Protocol):
    backend: str  # "CloudWatch Logs"

    def search(
        self, groups: Sequence[str], start: datetime, end: datetime, terms: Sequence[str], *, limit: int
    ) -> list[LogLine]:
        """Lines of `groups` between start and end containing any of `terms` (case as given), oldest first,
        at most `limit` of them (the newest are dropped first)."""
        ...
