"""The HTTP front door: Slack's signature check, hostile input, replays, the health endpoint, acking fast."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bot.comms.comms_records import OutboxMessage
from bot.core.clock import FrozenClock
from bot.core.database import make_engine
from bot.ingress.front_door import KEEP_SEEN, ReplayGuard
from bot.ingress.http_server import HttpServer, TarsWsgi
from bot.ingress.seen_requests import SeenRequest
from bot.slack.rendering import DATABASE_DOWN_TEXT
from sandbox.emulator import SlackEmulator
from tests.support import CHANNEL, Workspace, start_tars

FORM = "application/x-www-form-urlencoded"


def _command_body(text: str) -> bytes:
    return urlencode(
        {"command": "/incident", "text": text, "user_id": "U0EVE", "channel_id": CHANNEL, "team_id": "T0TARS"}
    ).encode()


def test_forged_signature_is_rejected(workspace: Workspace) -> None:
    body = _command_body("declare payments P1 forged")
    response = workspace.client.post(body, "application/x-www-form-urlencoded", signature="v0=" + "0" * 64)
    assert response.status == 401
    assert workspace.incident_count() == 0


def test_six_minute_old_signature_is_rejected(workspace: Workspace) -> None:
    body = _command_body("declare payments P1 replayed")
    old = int(time.time() - timedelta(minutes=6).total_seconds())
    response = workspace.client.post(body, "application/x-www-form-urlencoded", timestamp=old)
    assert response.status == 401
    assert workspace.incident_count() == 0


def test_healthz_reports_the_database(workspace: Workspace) -> None:
    with urllib.request.urlopen(workspace.running.url + "/healthz", timeout=5) as response:
        assert response.status == 200
        assert b'"database": true' in response.read()


def test_healthz_is_503_when_the_database_is_unreachable() -> None:
    dead = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    server = HttpServer(TarsWsgi(dead, None), host="127.0.0.1", port=0).start()
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        raise AssertionError("expected 503")
    except urllib.error.HTTPError as error:
        assert error.code == 503
    finally:
        server.stop()


def test_commands_are_acked_before_slack_work_finishes(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock, workspace: Workspace
) -> None:
    """The ack does not wait for Slack: even with the Web API answering slowly, the command returns at once."""
    slack.delay("chat.postMessage", seconds=2.5)
    started = time.monotonic()
    response = workspace.command("declare payments P1 Slow Slack today")
    elapsed = time.monotonic() - started
    assert response.status == 200
    assert elapsed < 1.0, f"ack took {elapsed:.2f}s"
    workspace.slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == CHANNEL, timeout=10)


def test_a_slow_slack_never_stops_tars_from_acking_a_burst_of_commands(workspace: Workspace) -> None:
    """More commands than listener threads, while every post takes seconds: each is still acked at once."""
    import threading

    incident = workspace.declare()
    workspace.slack.delay("chat.postMessage", seconds=2.0)
    workspace.slack.delay("chat.update", seconds=2.0)
    timings: list[tuple[int, float]] = []

    def update(number: int) -> None:
        started = time.monotonic()
        response = workspace.client.slash_command(
            f"update {incident.id} Finding number {number}", user_id="U0BOB", channel_id=CHANNEL
        )
        timings.append((response.status, time.monotonic() - started))

    threads = [threading.Thread(target=update, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [status for status, _ in timings] == [200] * 12
    assert max(elapsed for _, elapsed in timings) < 1.5, timings
    workspace.slack.delay("chat.postMessage", seconds=0)
    workspace.slack.delay("chat.update", seconds=0)

    # Every update is either posted or (SQLite has no row locks, so concurrent edits of one incident can
    # collide) answered with "try again"; none is lost silently.
    def accounted_for() -> int:
        retries = [
            c for c in workspace.slack.ephemerals(user="U0BOB") if "same moment" in str(c.args.get("text"))
        ]
        return len(workspace.channel_posts("📊")) + len(retries)

    workspace.wait_until(lambda: accounted_for() == 12, timeout=60)


# --- hostile input: nothing but a well-formed, signed, first-seen request reaches Bolt ----------------------


def _send(
    url: str, body: bytes, headers: dict[str, str], *, method: str = "POST", path: str = "/slack/events"
) -> tuple[int, str]:
    """A raw HTTP request, for bodies and headers no Slack client would produce."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def _signed(workspace: Workspace, body: bytes, content_type: str = FORM) -> dict[str, str]:
    return {**workspace.client.sign(body), "Content-Type": content_type}


def _click_payload(**changes: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "type": "block_actions",
        "user": {"id": "U0BOB", "username": "bob", "team_id": "T0TARS"},
        "team": {"id": "T0TARS", "domain": "tars"},
        "channel": {"id": CHANNEL, "name": "incidents"},
        "actions": [{"type": "button", "action_id": "incident_ack", "block_id": "b", "value": "1"}],
    }
    payload.update(changes)
    return payload


def _payload_body(payload: object) -> bytes:
    return b"payload=" + quote(json.dumps(payload)).encode()


def _stored_rows(workspace: Workspace) -> tuple[int, int, int]:
    with Session(workspace.engine) as session:
        outbox = int(session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)
        seen = int(session.scalar(select(func.count()).select_from(SeenRequest)) or 0)
    return workspace.incident_count(), outbox, seen


FORGED = "v0=" + "ab" * 32


def _unsigned_measured() -> dict[str, tuple[dict[str, str], bytes]]:
    now = str(int(time.time()))
    return {
        "timestamp with a decimal point": (
            {"X-Slack-Request-Timestamp": now + ".5", "X-Slack-Signature": FORGED},
            _command_body("declare payments P1 x"),
        ),
        "timestamp in words": (
            {"X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": FORGED},
            _command_body("declare payments P1 x"),
        ),
        "timestamp with a superscript digit": (
            {"X-Slack-Request-Timestamp": now + "²", "X-Slack-Signature": FORGED},
            _command_body("declare payments P1 x"),
        ),
        "non-UTF-8 body": ({}, b"payload=\xff\xfe\x00" + bytes(range(128, 256))),
        "non-UTF-8 body, forged signature": (
            {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": FORGED},
            b"command=%2Fincident&text=" + bytes(range(128, 256)),
        ),
        "payload that is a JSON list": ({}, _payload_body([1, 2, 3])),
        "payload that is a JSON string": ({}, _payload_body("block_actions")),
        "payload that is not JSON": ({}, b"payload=%7Bnot+json"),
    }


def test_unsigned_hostile_requests_get_401_and_one_log_line(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    slack_calls = len(workspace.slack.calls)
    for case, (extra, body) in _unsigned_measured().items():
        caplog.clear()
        status, text = _send(workspace.running.url, body, {"Content-Type": FORM, **extra})
        assert status == 401, (case, text)
        _assert_one_quiet_line(caplog, case)
    assert _stored_rows(workspace) == (0, 0, 0)
    assert len(workspace.slack.calls) == slack_calls


SIGNED_MALFORMED: dict[str, tuple[str, bytes, str]] = {
    "non-UTF-8 body": (FORM, b"command=%2Fincident&text=" + bytes(range(128, 256)), "not UTF-8"),
    "percent-encoded non-UTF-8": (FORM, b"command=%2Fincident&user_id=U0BOB&text=%ff%fe", "not UTF-8"),
    "JSON instead of a form": ("application/json", b'{"type": "block_actions"}', "not form-encoded"),
    "payload that is a JSON list": (FORM, _payload_body([_click_payload()]), "not a JSON object"),
    "payload that is not JSON": (FORM, b"payload=%7B%22type%22", "not JSON"),
    "payload without a type": (FORM, _payload_body(_click_payload(type=None)), "`type`"),
    "click without a user": (FORM, _payload_body(_click_payload(user=None)), "`user`"),
    "click by an empty user id": (FORM, _payload_body(_click_payload(user={"id": ""})), "user.id"),
    "click by a numeric user id": (FORM, _payload_body(_click_payload(user={"id": 42})), "user.id"),
    "click with a lower-case user id": (FORM, _payload_body(_click_payload(user={"id": "u0bob"})), "user.id"),
    "click without actions": (FORM, _payload_body(_click_payload(actions=[])), "actions"),
    "click whose action is a string": (FORM, _payload_body(_click_payload(actions=["ack"])), "action"),
    "click with a numeric action_id": (
        FORM,
        _payload_body(_click_payload(actions=[{"action_id": 7, "value": "1"}])),
        "action_id",
    ),
    "click whose channel is a number": (FORM, _payload_body(_click_payload(channel=5)), "`channel`"),
    "view submission without a view": (
        FORM,
        _payload_body(_click_payload(type="view_submission", actions=None)),
        "`view`",
    ),
    "payload whose type is an object": (FORM, _payload_body(_click_payload(type={"a": 1})), "`type`"),
    "authorizations that is a number": (
        FORM,
        _payload_body(_click_payload(authorizations=5)),
        "authorizations",
    ),
    "view submission whose view has no type": (
        FORM,
        _payload_body(
            _click_payload(
                type="view_submission", actions=None, view={"id": "V1", "callback_id": "incident_resolve"}
            )
        ),
        "view `type`",
    ),
    "command without a user_id": (FORM, b"command=%2Fincident&text=declare+payments+P1+x", "user_id"),
    "command with a user_id longer than any Slack id": (
        FORM,
        urlencode({"command": "/incident", "text": "ack 1", "user_id": "U" + "0" * 300}).encode(),
        "user_id",
    ),
    "form field given twice": (FORM, b"payload=%7B%7D&payload=%7B%7D", "repeated"),
}


def test_signed_malformed_requests_get_400_and_one_log_line(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    slack_calls = len(workspace.slack.calls)
    for case, (content_type, body, says) in SIGNED_MALFORMED.items():
        caplog.clear()
        status, text = _send(workspace.running.url, body, _signed(workspace, body, content_type))
        assert status == 400, (case, text)
        assert says in text, (case, text)
        _assert_one_quiet_line(caplog, case)
    assert _stored_rows(workspace) == (0, 0, 0)
    assert len(workspace.slack.calls) == slack_calls


def _assert_one_quiet_line(caplog: pytest.LogCaptureFixture, case: str = "") -> None:
    """The refusal wrote one line and nothing serving the request wrote more (background work may log)."""
    serving = [
        r
        for r in caplog.records
        if r.name in ("bot.ingress.front_door", "waitress") or r.name.startswith("slack_")
    ]
    assert len(serving) == 1, (case, [r.getMessage() for r in serving])
    assert serving[0].name == "bot.ingress.front_door", case
    assert "\n" not in serving[0].getMessage(), case
    assert serving[0].exc_info is None, case


def test_a_body_over_the_cap_is_refused(workspace: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    caplog.clear()
    body = b"payload=" + b"a" * (1024 * 1024)
    status, text = _send(workspace.running.url, body, _signed(workspace, body))
    assert (status, text) == (413, "the body is larger than 1048576 bytes")
    _assert_one_quiet_line(caplog)
    # A declared length far beyond that is refused from the headers alone, before any body is sent.
    host, port = workspace.running.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: tars\r\nContent-Type: "
            + FORM.encode()
            + b"\r\nContent-Length: 1073741824\r\n\r\n"
        )
        assert raw.recv(64).startswith(b"HTTP/1.1 413")
    assert _stored_rows(workspace) == (0, 0, 0)


def test_only_post_reaches_slack_events(workspace: Workspace) -> None:
    for method in ("GET", "PUT", "DELETE"):
        status, _ = _send(workspace.running.url, b"", {}, method=method)
        assert status == 405
    status, _ = _send(workspace.running.url, b"", {}, path="/slack/other")
    assert status == 404


def test_slacks_unsigned_ssl_check_is_answered_and_does_nothing(workspace: Workspace) -> None:
    slack_calls = len(workspace.slack.calls)
    status, _ = _send(workspace.running.url, b"ssl_check=1&token=legacy", {"Content-Type": FORM})
    assert status == 200
    assert _stored_rows(workspace) == (0, 0, 0)
    assert len(workspace.slack.calls) == slack_calls


def test_a_replayed_declare_is_refused_on_every_replica(
    workspace: Workspace, slack: SlackEmulator, engine: Engine, clock: FrozenClock
) -> None:
    """A captured, correctly signed declare sent again within the 5 minutes does not declare again."""
    body = urlencode(
        {
            "command": "/incident",
            "text": "declare payments P1 Card payments failing",
            "user_id": "U0ALICE",
            "channel_id": CHANNEL,
            "team_id": "T0TARS",
            "response_url": slack.new_response_url(CHANNEL, "U0ALICE"),
            "trigger_id": slack.new_trigger_id("U0ALICE"),
        }
    ).encode()
    captured = _signed(workspace, body)
    status, _ = _send(workspace.running.url, body, captured)
    assert status == 200
    workspace.wait_until(lambda: workspace.incident_count() == 1 and workspace.latest_incident().card_ts)
    workspace.settle()
    posts = len(slack.calls_to("chat.postMessage"))

    status, text = _send(workspace.running.url, body, captured)
    assert (status, text) == (409, "this signed request was already received (a replay)")
    # Slack's Events API retries carry X-Slack-Retry-Num; one reusing the signature is refused the same way.
    status, _ = _send(workspace.running.url, body, {**captured, "X-Slack-Retry-Num": "1"})
    assert status == 409
    with start_tars(slack, engine, clock) as other_replica:
        status, _ = _send(other_replica.url, body, captured)
        assert status == 409
    assert workspace.incident_count() == 1
    assert len(slack.calls_to("chat.postMessage")) == posts

    # A new request from the same person (new timestamp or new trigger) is not a replay.
    workspace.command("declare payments P2 Checkout slow")
    workspace.wait_until(lambda: workspace.incident_count() == 2)


def test_a_replica_forgets_signatures_no_replay_could_use(engine: Engine) -> None:
    """seen_requests does not grow: rows older than any replay could be are deleted as requests come in."""
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    earlier = ReplayGuard(engine, now=lambda: start)
    assert earlier.first_time("v0=" + "1" * 64)
    assert not earlier.first_time("v0=" + "1" * 64)
    later = ReplayGuard(engine, now=lambda: start + KEEP_SEEN + timedelta(seconds=1))
    assert later.first_time("v0=" + "2" * 64)
    with Session(engine) as session:
        assert list(session.scalars(select(SeenRequest.signature))) == ["v0=" + "2" * 64]


def test_without_the_database_a_signed_command_gets_a_clear_reply_and_one_log_line(
    slack: SlackEmulator, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    dead = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    with start_tars(slack, dead, clock) as running:
        caplog.set_level(logging.INFO)
        caplog.clear()
        body = _command_body("declare payments P1 Database down")
        client = Workspace(running, slack, dead, clock).client
        status, text = _send(running.url, body, {**client.sign(body), "Content-Type": FORM})
        assert status == 200
        assert json.loads(text) == {"response_type": "ephemeral", "text": DATABASE_DOWN_TEXT}
        _assert_one_quiet_line(caplog)


def test_a_database_that_never_answers_is_reported_within_three_seconds(
    slack: SlackEmulator, clock: FrozenClock
) -> None:
    """A database host that takes the connection and then says nothing: the engine's own connect timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # never accepted: the kernel completes the handshake, then nothing ever answers
        silent_engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/none")
        with start_tars(slack, silent_engine, clock) as running:
            client = Workspace(running, slack, silent_engine, clock).client
            started = time.monotonic()
            response = client.slash_command(
                "declare payments P1 Nobody home", user_id="U0ALICE", channel_id=CHANNEL
            )
            elapsed = time.monotonic() - started
            assert (response.status, response.json()["text"]) == (200, DATABASE_DOWN_TEXT)
            assert elapsed < 3, f"the reply took {elapsed:.1f} s"
            started = time.monotonic()
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(running.url + "/healthz", timeout=5)
            assert refused.value.code == 503
            assert time.monotonic() - started < 3
