"""What each source sends, read into one shape. Only shape is checked here; who sent it is the ingress's job."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.signals.signal_records import SignalState

# The stored copy of a payload is for people reading it later, not for replaying it.
RAW_PAYLOAD_LIMIT = 8_000
TEXT_LIMIT = 500
FINGERPRINT_LIMIT = 255
SEVERITY_LIMIT = 32
MAX_ALERTS = 1_000  # Alertmanager's own max_alerts default is 0 (all); a group this big is a storm
_NANOSECONDS = re.compile(r"(\.[0-9]{6})[0-9]+")


class BadSignal(ValueError):
    """The payload is not what the source sends; the message says what is wrong, for a 400."""


@dataclass(frozen=True)
class IncomingSignal:
    source: str
    fingerprint: str
    state: SignalState
    title: str
    summary: str
    service_hint: str | None
    severity_hint: str | None
    labels: dict[str, str]
    since: datetime
    raw: str


def from_alertmanager(body: bytes, *, service_label: str, now: datetime) -> list[IncomingSignal]:
    """Alertmanager's webhook, payload version 4: one signal per alert in the group."""
    payload = _json_object(body)
    if str(payload.get("version")) != "4":
        raise BadSignal("expected an Alertmanager webhook payload with version 4")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise BadSignal("'alerts' must be a non-empty list")
    if len(alerts) > MAX_ALERTS:
        raise BadSignal(f"at most {MAX_ALERTS} alerts per request")
    raw = _raw(body)
    signals = []
    for index, alert in enumerate(alerts):
        where = f"alerts[{index}]"
        if not isinstance(alert, dict):
            raise BadSignal(f"{where} must be an object")
        labels = _strings(alert.get("labels"), f"{where}.labels")
        annotations = _strings(alert.get("annotations") or {}, f"{where}.annotations")
        name = labels.get("alertname")
        if not name:
            raise BadSignal(f"{where}.labels.alertname is missing")
        signals.append(
            IncomingSignal(
                source="alertmanager",
                fingerprint=_fingerprint(alert.get("fingerprint"), f"{where}.fingerprint"),
                state=_state(alert.get("status"), f"{where}.status"),
                title=_cut(name),
                summary=_cut(annotations.get("summary") or annotations.get("description") or ""),
                service_hint=labels.get(service_label),
                severity_hint=_hint(labels.get("severity")),
                labels=labels,
                since=_time(alert.get("startsAt"), f"{where}.startsAt") or now,
                raw=raw,
            )
        )
    return signals


@dataclass(frozen=True)
class CustomerReport:
    service: str
    text: str
    reporter: str


def from_webhook(body: bytes, *, now: datetime) -> IncomingSignal | CustomerReport:
    """TARS's generic signal: {service, title, severity, details, dedup_key, status}; or, with
    `"kind": "customer_report"`, a customer's words: {service, details, reporter}."""
    payload = _json_object(body)
    kind = payload.get("kind", "alert")
    if kind == "customer_report":
        return _customer_report(payload)
    if kind != "alert":
        raise BadSignal("'kind' must be 'alert' (the default) or 'customer_report'")
    title = payload.get("title")
    if not isinstance(title, str) or not title.strip():
        raise BadSignal("'title' is required: a short name for what fired")
    dedup_key = payload.get("dedup_key")
    service = payload.get("service")
    if service is not None and not isinstance(service, str):
        raise BadSignal("'service' must be a string")
    severity = payload.get("severity")
    if severity is not None and not isinstance(severity, str):
        raise BadSignal("'severity' must be a string")
    details = payload.get("details", "")
    if not isinstance(details, str):
        raise BadSignal("'details' must be a string")
    return IncomingSignal(
        source="webhook",
        fingerprint=_fingerprint(dedup_key if dedup_key is not None else title.strip(), "dedup_key"),
        state=_state(payload.get("status", "firing"), "status"),
        title=_cut(title.strip()),
        summary=_cut(details),
        service_hint=service,
        severity_hint=_hint(severity),
        labels={key: value for key, value in (("service", service), ("severity", severity)) if value},
        since=now,
        raw=_raw(body),
    )


# CloudWatch alarm states; INSUFFICIENT_DATA says nothing either way and is not a signal.
_ALARM_STATES = {"ALARM": SignalState.FIRING, "OK": SignalState.RESOLVED}


def from_cloudwatch_alarm(
    message: str, *, dimension: str, prefixes: dict[str, str], raw: str, now: datetime
) -> IncomingSignal | None:
    """A CloudWatch alarm's state change, as SNS carries it (the notification's Message, itself JSON)."""
    alarm = _json_object(message.encode())
    name = alarm.get("AlarmName")
    if not isinstance(name, str) or not name:
        raise BadSignal("the SNS message is not a CloudWatch alarm: AlarmName is missing")
    state = _ALARM_STATES.get(str(alarm.get("NewStateValue")))
    if state is None:
        return None
    found = alarm.get("Trigger")
    trigger: dict[str, Any] = found if isinstance(found, dict) else {}
    dimensions = {
        str(d.get("name"))[:100]: _cut(str(d.get("value")))
        for d in (trigger.get("Dimensions") or [])
        if isinstance(d, dict) and d.get("name")
    }
    labels = {**dimensions}
    for key in ("MetricName", "Namespace"):
        if isinstance(trigger.get(key), str):
            labels[key] = _cut(trigger[key])
    service = dimensions.get(dimension) or next(
        (service for prefix, service in prefixes.items() if name.startswith(prefix)), None
    )
    reason = alarm.get("NewStateReason")
    arn = alarm.get("AlarmArn")
    return IncomingSignal(
        source="cloudwatch",
        fingerprint=_fingerprint(arn if isinstance(arn, str) and arn else name, "AlarmArn"),
        state=state,
        title=_cut(name),
        summary=_cut(reason if isinstance(reason, str) else ""),
        service_hint=service,
        severity_hint=None,
        labels=labels,
        since=_time(_iso_offset(alarm.get("StateChangeTime")), "StateChangeTime") or now,
        raw=raw[:RAW_PAYLOAD_LIMIT],
    )


def _iso_offset(value: Any) -> Any:
    """CloudWatch writes +0000; Python wants +00:00."""
    if isinstance(value, str) and re.search(r"[+-][0-9]{4}$", value):
        return value[:-2] + ":" + value[-2:]
    return value


def _customer_report(payload: dict[str, Any]) -> CustomerReport:
    service, details, reporter = (
        payload.get("service"),
        payload.get("details"),
        payload.get("reporter", "webhook"),
    )
    if not isinstance(service, str) or not service.strip():
        raise BadSignal("a customer report needs 'service'")
    if not isinstance(details, str) or not details.strip():
        raise BadSignal("a customer report needs 'details': what the customer says")
    if not isinstance(reporter, str) or not reporter.strip():
        raise BadSignal("'reporter' must be a non-empty string")
    return CustomerReport(service.strip().lower(), _cut(details.strip()), reporter.strip()[:64])


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadSignal("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadSignal("the body must be a JSON object")
    return payload


def _strings(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadSignal(f"{where} must be an object of strings")
    return {key[:100]: _cut(item) for key, item in list(value.items())[:50]}


def _fingerprint(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadSignal(f"{where} is missing")
    if len(value) > FINGERPRINT_LIMIT:
        raise BadSignal(f"{where} is longer than {FINGERPRINT_LIMIT} characters")
    return value.strip()


def _state(value: Any, where: str) -> SignalState:
    try:
        return SignalState(value)
    except ValueError:
        raise BadSignal(f"{where} must be 'firing' or 'resolved'") from None


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadSignal(f"{where} must be an RFC 3339 time")
    # Go (Alertmanager) writes nanoseconds; Python reads at most microseconds.
    value = _NANOSECONDS.sub(r"\1", value.replace("Z", "+00:00"))
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadSignal(f"{where} must be an RFC 3339 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _hint(severity: str | None) -> str | None:
    """A severity label as stored (signals.severity_hint holds 32 characters)."""
    return severity[:SEVERITY_LIMIT] if severity else None


def _cut(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def _raw(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    return text if len(text) <= RAW_PAYLOAD_LIMIT else text[:RAW_PAYLOAD_LIMIT]
