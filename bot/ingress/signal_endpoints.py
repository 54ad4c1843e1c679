"""`POST /signals/...`: alerts from monitoring, each source with its own proof of who sent it.

- `/signals/alertmanager`: Alertmanager's webhook (payload version 4), with `Authorization: Bearer <token>`
  (Alertmanager's `http_config.authorization`). The token is TARS_ALERTMANAGER_TOKEN.
- `/signals/sns`: CloudWatch alarms delivered by an SNS HTTP(S) subscription, proven by SNS's own message
  signature (`bot.ingress.sns_verification`) and accepted only from the topics in `signals.sns_topics`.
  A SubscriptionConfirmation is confirmed by visiting its SubscribeURL.
- `/signals/webhook`: TARS's generic JSON signal, signed like Slack signs TARS's own requests: the header
  `X-TARS-Signature: v1=<hex HMAC-SHA256 of "v1:{timestamp}:{body}">` with the key TARS_SIGNAL_WEBHOOK_SECRET,
  and `X-TARS-Timestamp` within five minutes of now.

A source whose secret is not configured is off (404). Unauthenticated requests get 401, malformed ones 400 with
what is wrong; neither changes anything. Accepted signals are stored, with whatever they cause queued, before
the 200 goes back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bot.core.clock import Clock
from bot.core.metrics import SIGNAL_REQUESTS
from bot.core.settings import Config
from bot.ingress.sns_verification import SnsVerifier, UnverifiedMessage
from bot.signals.signal_flows import SignalFlows
from bot.signals.signal_sources import (
    BadSignal,
    CustomerReport,
    IncomingSignal,
    from_alertmanager,
    from_cloudwatch_alarm,
    from_webhook,
)

log = logging.getLogger(__name__)

PREFIX = "/signals/"
SOURCES = ("alertmanager", "sns", "webhook")
MAX_BODY_BYTES = 1024 * 1024
WINDOW_SECONDS = 300


class Refused(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class SignalEndpoints:
    def __init__(self, config: Config, flows: SignalFlows, clock: Clock) -> None:
        self.flows = flows
        self.clock = clock
        self.signals_config = config.signals
        self.services = config.services
        self.alertmanager_token = config.alertmanager_token
        self.webhook_secret = config.signal_webhook_secret
        self.sns = SnsVerifier(config.signals.sns_url_pattern, now=clock.now)

    def handles(self, path: str) -> bool:
        return path.startswith(PREFIX)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")[len(PREFIX) :]
        source = path if path in SOURCES else "other"

        def counted(status: str, headers: list[tuple[str, str]]) -> Any:
            SIGNAL_REQUESTS.labels(source, status.split(" ", 1)[0]).inc()
            return start_response(status, headers)

        return self._handle(environ, counted, path)

    def _handle(
        self, environ: dict[str, Any], start_response: Callable[..., Any], source: str
    ) -> Iterable[bytes]:
        try:
            if environ.get("REQUEST_METHOD") != "POST":
                raise Refused("405 Method Not Allowed", "POST only")
            signals = self._read(environ, source)
            if isinstance(signals, CustomerReport):
                return self._report(start_response, signals)
            received = self.flows.receive(signals)
        except Refused as refused:
            log.info("signal refused (%s): %s", refused.status, refused)
            return _answer(start_response, refused.status, {"error": str(refused)})
        except BadSignal as bad:
            log.info("signal refused (400): %s", bad)
            return _answer(start_response, "400 Bad Request", {"error": str(bad)})
        except SQLAlchemyError:
            log.warning("signal not stored: the database did not answer", exc_info=True)
            # 503: Alertmanager and most webhook senders retry it, and nothing was stored.
            return _answer(start_response, "503 Service Unavailable", {"error": "database unavailable"})
        return _answer(
            start_response,
            "200 OK",
            {
                "new": received.new,
                "repeated": received.repeated,
                "attached": received.attached,
                "declared": received.declared,
            },
        )

    def _report(self, start_response: Callable[..., Any], report: CustomerReport) -> Iterable[bytes]:
        if report.service not in self.services:
            raise BadSignal(
                f"unknown service {report.service[:64]!r}: the report must name a catalog service"
            )
        outcome = self.flows.report(report.service, report.text, reporter=report.reporter)
        return _answer(
            start_response,
            "200 OK",
            {
                "attached_to": outcome.attached_to,
                "reports_in_window": outcome.in_window,
                "triage_posted": outcome.triage_posted,
            },
        )

    def _read(self, environ: dict[str, Any], source: str) -> list[IncomingSignal] | CustomerReport:
        if source == "alertmanager":
            self._check_bearer(environ)
            return from_alertmanager(
                _body(environ), service_label=self.signals_config.service_label, now=self.clock.now()
            )
        if source == "sns":
            return self._from_sns(_body(environ))
        if source == "webhook":
            body = _body(environ)
            self._check_signature(environ, body)
            signal = from_webhook(body, now=self.clock.now())
            return signal if isinstance(signal, CustomerReport) else [signal]
        raise Refused("404 Not Found", f"no signal source {source[:40]!r}: alertmanager, sns or webhook")

    def _from_sns(self, body: bytes) -> list[IncomingSignal]:
        topics = self.signals_config.sns_topics
        if not topics:
            raise Refused("404 Not Found", "SNS signals are off: list the topics in signals.sns_topics")
        try:
            message = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BadSignal("the body is not an SNS message (JSON)") from None
        if not isinstance(message, dict):
            raise BadSignal("the body is not an SNS message (JSON object)")
        try:
            self.sns.verify(message)
        except UnverifiedMessage as unverified:
            if unverified.malformed:
                raise BadSignal(str(unverified)) from None
            raise Refused("401 Unauthorized", str(unverified)) from None
        if message.get("TopicArn") not in topics:
            raise Refused(
                "401 Unauthorized", "messages from this topic are not accepted (signals.sns_topics)"
            )
        kind = message["Type"]
        if kind == "SubscriptionConfirmation":
            try:
                self.sns.confirm_subscription(message)
            except (OSError, UnverifiedMessage) as error:
                raise Refused("502 Bad Gateway", f"could not confirm the subscription: {error}") from None
            log.info("confirmed the SNS subscription to %s", message.get("TopicArn"))
            return []
        if kind != "Notification":
            return []
        signal = from_cloudwatch_alarm(
            str(message.get("Message", "")),
            dimension=self.signals_config.dimension,
            prefixes=self.signals_config.alarm_prefixes,
            raw=body.decode("utf-8", errors="replace"),
            now=self.clock.now(),
        )
        return [signal] if signal is not None else []

    def _check_bearer(self, environ: dict[str, Any]) -> None:
        if not self.alertmanager_token:
            raise Refused("404 Not Found", "Alertmanager signals are off: TARS_ALERTMANAGER_TOKEN is not set")
        given = str(environ.get("HTTP_AUTHORIZATION", ""))
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self.alertmanager_token.encode()
        ):
            raise Refused("401 Unauthorized", "a valid bearer token is required")

    def _check_signature(self, environ: dict[str, Any], body: bytes) -> None:
        if not self.webhook_secret:
            raise Refused("404 Not Found", "webhook signals are off: TARS_SIGNAL_WEBHOOK_SECRET is not set")
        timestamp = str(environ.get("HTTP_X_TARS_TIMESTAMP", ""))
        signature = str(environ.get("HTTP_X_TARS_SIGNATURE", ""))
        if not timestamp.isdigit() or len(timestamp) > 12 or not signature:
            raise Refused("401 Unauthorized", "X-TARS-Timestamp and X-TARS-Signature are required")
        if abs(time.time() - int(timestamp)) > WINDOW_SECONDS:
            raise Refused("401 Unauthorized", "the timestamp is more than five minutes off")
        if not hmac.compare_digest(
            signature.encode(), sign_webhook(self.webhook_secret, timestamp, body).encode()
        ):
            raise Refused("401 Unauthorized", "the signature does not match")


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """The X-TARS-Signature a sender must put on `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), b"v1:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def _body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Refused("400 Bad Request", "Content-Length is not a number") from None
    if length > MAX_BODY_BYTES:
        raise Refused("413 Content Too Large", f"at most {MAX_BODY_BYTES} bytes")
    body: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
    if not body:
        raise Refused("400 Bad Request", "the body is empty")
    return body


def _answer(start_response: Callable[..., Any], status: str, payload: dict[str, Any]) -> Iterable[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
