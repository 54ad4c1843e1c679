"""The runbook's rollback rule: roll back when a deployment happened in the last 2 hours and the incident
started within 30 minutes of it.

"Started" is the error rate's onset when TARS has read the service's metrics, else the declaration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

RECENT = timedelta(hours=2)
CLOSE = timedelta(minutes=30)


@dataclass(frozen=True)
class RollbackRule:
    deployed_at: datetime
    declared_at: datetime  # when the incident started: the metrics' onset, or else the declaration
    now: datetime
    from_metrics: bool = False

    @property
    def recent(self) -> bool:
        return self.now - self.deployed_at <= RECENT

    @property
    def close(self) -> bool:
        return timedelta(0) <= self.declared_at - self.deployed_at <= CLOSE

    @property
    def holds(self) -> bool:
        return self.recent and self.close


def rollback_rule(
    last_deployed_at: object, declared_at: datetime, now: object, *, onset: datetime | None = None
) -> RollbackRule | None:
    """The rule's facts for an incident, or None when the last deployment's time is unknown."""
    if not isinstance(last_deployed_at, datetime) or not isinstance(now, datetime):
        return None
    return RollbackRule(
        deployed_at=last_deployed_at,
        declared_at=onset or declared_at,
        now=now,
        from_metrics=onset is not None,
    )
