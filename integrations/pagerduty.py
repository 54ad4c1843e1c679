"""PagerDuty Events API v2: trigger a page for an incident.

Plain HTTPS + JSON is PagerDuty's documented wire protocol; `events_url` is configurable so tests (and
PagerDuty EU accounts) point it elsewhere.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from integrations.plans import IntegrationError

SEVERITY_BY_PRIORITY = {1: "critical", 2: "error", 3: "warning", 4: "info"}


@dataclass(frozen=True)
class PageRequest:
    routing_key: str
    summary: str
    dedup_key: str
    severity: str
    source: str = "tars"
    custom_details: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        return {
            "routing_key": self.routing_key,
            "event_action": "trigger",
            "dedup_key": self.dedup_key,
            "payload": {
                "summary": self.summary[:1024],
                "source": self.source,
                "severity": self.severity,
                "custom_details": self.custom_details or {},
            },
        }


class PagerDutyEvents:
    def __init__(self, events_url: str, *, timeout: float = 10, dry_run: bool = False) -> None:
        self.events_url = events_url
        self.timeout = timeout
        self.dry_run = dry_run

    def trigger(self, page: PageRequest) -> dict[str, Any]:
        """Send the trigger; the dedup key makes a retried trigger update the same PagerDuty incident."""
        body = page.body()
        if self.dry_run:
            return {"status": "dry_run", "dedup_key": page.dedup_key, "would_send": _redacted(body)}
        request = urllib.request.Request(
            self.events_url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return dict(json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:300]
            raise IntegrationError(f"PagerDuty {error.code}: {detail}", status=error.code) from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise IntegrationError(f"PagerDuty unreachable: {error}") from None


def _redacted(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "routing_key": body["routing_key"][:4] + "…"}
