"""CloudWatch alarms by SNS: messages signed exactly as SNS signs them, with a key pair the test makes and its
certificate served on loopback, as SNS serves its own."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine

from bot.core.clock import FrozenClock
from bot.core.settings import SignalsConfig
from sandbox.emulator import SlackEmulator
from tests.signals.signal_helpers import post, signal_count, triage_cards
from tests.support import Workspace, start_tars

TOPIC = "arn:aws:sns:us-east-1:123456789012:tars-alarms"


def key_and_certificate() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.us-east-1.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


class FakeSnsHost:
    """Serves the signing certificate and records SubscribeURL visits, like sns.<region>.amazonaws.com."""

    def __init__(self, certificate: bytes) -> None:
        self.visits: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.visits.append(self.path)
                body = certificate if self.path.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sns_host() -> Iterator[tuple[FakeSnsHost, rsa.RSAPrivateKey]]:
    key, certificate = key_and_certificate()
    host = FakeSnsHost(certificate)
    yield host, key
    host.close()


@pytest.fixture
def team(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock, sns_host: tuple[FakeSnsHost, rsa.RSAPrivateKey]
) -> Iterator[Workspace]:
    host, _key = sns_host
    signals = SignalsConfig(
        sns_topics=[TOPIC],
        sns_url_pattern=rf"^{host.url.replace('.', '[.]')}/",
        alarm_prefixes={"checkout-": "checkout"},
    )
    with start_tars(slack, engine, clock, signals=signals) as running:
        yield Workspace(running, slack, engine, clock)


def alarm(name: str = "payments-high-5xx", state: str = "ALARM", service: str | None = "payments") -> str:
    dimensions = [{"name": "Service", "value": service}] if service else [{"name": "ApiName", "value": "web"}]
    return json.dumps(
        {
            "AlarmName": name,
            "AlarmArn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}",
            "NewStateValue": state,
            "NewStateReason": "Threshold Crossed: 1 datapoint [12.0] was greater than the threshold (5.0).",
            "StateChangeTime": "2026-11-01T08:58:00.000+0000",
            "OldStateValue": "OK" if state == "ALARM" else "ALARM",
            "Trigger": {"MetricName": "5XXError", "Namespace": "AWS/ApiGateway", "Dimensions": dimensions},
        }
    )


def signed(
    key: rsa.RSAPrivateKey,
    host: FakeSnsHost,
    kind: str = "Notification",
    *,
    version: str = "1",
    **fields: str,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "Type": kind,
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Message": alarm(),
        "Timestamp": "2026-11-22T08:59:00.000Z",  # a minute before the tests' frozen clock
        "SignatureVersion": version,
        "SigningCertURL": f"{host.url}/SimpleNotificationService-test.pem",
        **fields,
    }
    if kind == "Notification":
        message.setdefault("Subject", 'ALARM: "payments-high-5xx" in US East (N. Virginia)')
        names = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
    else:
        message.setdefault("Token", "2336412f37fb687f5d51e6e2425c464de12884")
        message.setdefault("SubscribeURL", f"{host.url}/?Action=ConfirmSubscription&Token=2336412f")
        names = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
    canonical = "".join(f"{name}\n{message[name]}\n" for name in names if name in message).encode()
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    message["Signature"] = base64.b64encode(key.sign(canonical, padding.PKCS1v15(), digest)).decode()
    return message


def deliver(team: Workspace, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    # SNS posts its JSON as text/plain.
    return post(
        team, "/signals/sns", json.dumps(message).encode(), {"Content-Type": "text/plain; charset=UTF-8"}
    )


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_alarm_is_triaged_and_its_ok_resolves_the_card(
    team: Workspace, sns_host: tuple[FakeSnsHost, rsa.RSAPrivateKey], version: str
) -> None:
    host, key = sns_host
    status, answer = deliver(team, signed(key, host, version=version))
    assert (status, answer["new"]) == (200, 1)
    [card] = triage_cards(team)
    assert card.text == (
        "🔔 [firing] payments: payments-high-5xx — Threshold Crossed: 1 datapoint [12.0] was greater than the"
        " threshold (5.0)."
    )
    shown = json.dumps(card.blocks)
    assert "cloudwatch" in shown and "MetricName=5XXError" in shown and "<@U0PAYONCALL>" in shown
    deliver(team, signed(key, host, version=version, Message=alarm(state="OK")))
    [card] = triage_cards(team)
    assert card.text.startswith("🔔 [resolved] payments: payments-high-5xx")


def test_an_alarm_without_the_dimension_is_routed_by_its_name_prefix(
    team: Workspace, sns_host: tuple[FakeSnsHost, rsa.RSAPrivateKey]
) -> None:
    host, key = sns_host
    deliver(team, signed(key, host, Message=alarm("checkout-latency-p99", service=None)))
    [card] = triage_cards(team)
    assert card.text.startswith("🔔 [firing] checkout: checkout-latency-p99")


def test_forged_foreign_or_unsigned_messages_are_refused_and_change_nothing(
    team: Workspace, sns_host: tuple[FakeSnsHost, rsa.RSAPrivateKey]
) -> None:
    host, key = sns_host
    other_key, _ = key_and_certificate()
    forged = signed(other_key, host)
    assert deliver(team, forged)[0] == 401
    tampered = signed(key, host)
    tampered["Message"] = alarm("payments-other")
    assert deliver(team, tampered)[0] == 401
    elsewhere = signed(key, host, SigningCertURL="http://attacker.invalid/cert.pem")
    status, answer = deliver(team, elsewhere)
    assert status == 401 and "certificate URL" in answer["error"]
    foreign = signed(key, host, TopicArn="arn:aws:sns:us-east-1:999999999999:someone-else")
    status, answer = deliver(team, foreign)
    assert status == 401 and "topic" in answer["error"]
    stale = signed(key, host, Timestamp="2026-11-22T06:59:00.000Z")  # a capture replayed two hours later
    status, answer = deliver(team, stale)
    assert status == 401 and "stale" in answer["error"]
    unsigned = signed(key, host)
    del unsigned["Signature"]
    assert deliver(team, unsigned)[0] == 401
    assert deliver(team, {"hello": "world"})[0] == 400
    assert signal_count(team) == 0 and team.pending_announcements() == 0
    assert all(visit.endswith(".pem") for visit in host.visits)


def test_a_subscription_is_confirmed_by_visiting_its_subscribe_url_on_an_sns_host_only(
    team: Workspace, sns_host: tuple[FakeSnsHost, rsa.RSAPrivateKey]
) -> None:
    host, key = sns_host
    status, _ = deliver(
        team, signed(key, host, "SubscriptionConfirmation", Message="You have chosen to subscribe")
    )
    assert status == 200
    assert "/?Action=ConfirmSubscription&Token=2336412f" in host.visits
    visits = len(host.visits)
    status, _ = deliver(
        team,
        signed(
            key,
            host,
            "SubscriptionConfirmation",
            Message="You have chosen to subscribe",
            SubscribeURL="http://attacker.invalid/?Action=ConfirmSubscription",
        ),
    )
    assert status == 502 and len(host.visits) == visits
    assert signal_count(team) == 0
