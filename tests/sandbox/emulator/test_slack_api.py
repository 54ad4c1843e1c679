"""Tests for the Slack Web API emulator and the signed client, driven through the real slack_sdk."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_handlers
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from sandbox.emulator import Message, RecordedCall, SignedSlackClient, SlackEmulator
from tests.sandbox.emulator.conftest import CHANNEL

SECRET = "test-signing-secret"

ACTION_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "block_id": "summary", "text": {"type": "mrkdwn", "text": "*INC-1* database down"}},
    {
        "type": "actions",
        "block_id": "incident_actions",
        "elements": [
            {
                "type": "button",
                "action_id": "ack",
                "text": {"type": "plain_text", "text": "Acknowledge"},
                "value": "INC-1",
                "style": "primary",
            },
            {
                "type": "button",
                "action_id": "severity",
                "text": {"type": "plain_text", "text": "P1"},
                "value": "P1",
            },
            {
                "type": "button",
                "action_id": "severity",
                "text": {"type": "plain_text", "text": "P2"},
                "value": "P2",
            },
            {
                "type": "static_select",
                "action_id": "assign_role",
                "placeholder": {"type": "plain_text", "text": "Role"},
                "options": [
                    {"text": {"type": "plain_text", "text": "Commander"}, "value": "commander"},
                    {"text": {"type": "plain_text", "text": "Scribe"}, "value": "scribe"},
                ],
            },
        ],
    },
]

MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "declare_incident",
    "private_metadata": '{"channel": "C0INCIDENT"}',
    "title": {"type": "plain_text", "text": "Declare incident"},
    "submit": {"type": "plain_text", "text": "Declare"},
    "blocks": [
        {
            "type": "input",
            "block_id": "title",
            "label": {"type": "plain_text", "text": "Title"},
            "element": {"type": "plain_text_input", "action_id": "value"},
        },
        {
            "type": "input",
            "block_id": "severity",
            "label": {"type": "plain_text", "text": "Severity"},
            "element": {
                "type": "static_select",
                "action_id": "value",
                "options": [
                    {"text": {"type": "plain_text", "text": "P1"}, "value": "P1"},
                    {"text": {"type": "plain_text", "text": "P2"}, "value": "P2"},
                ],
            },
        },
        {
            "type": "input",
            "block_id": "impact",
            "optional": True,
            "label": {"type": "plain_text", "text": "Customers affected"},
            "element": {"type": "number_input", "action_id": "value", "is_decimal_allowed": False},
        },
        {
            "type": "input",
            "block_id": "notes",
            "optional": True,
            "label": {"type": "plain_text", "text": "Notes"},
            "element": {"type": "plain_text_input", "action_id": "value", "initial_value": "none yet"},
        },
    ],
}


@dataclass
class CapturedRequest:
    headers: dict[str, str]
    body: bytes
    signature_valid: bool

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    def payload(self) -> dict[str, Any]:
        return json.loads(self.form()["payload"])


@dataclass
class FakeApp:
    """A minimal stand-in for the Bolt app: verifies Slack's signature and records what arrived."""

    url: str
    requests: list[CapturedRequest] = field(default_factory=list)
    reply_status: int = 200
    reply_body: bytes = b""

    @property
    def last(self) -> CapturedRequest:
        return self.requests[-1]


@pytest.fixture
def fake_app() -> Iterator[FakeApp]:
    verifier = SignatureVerifier(SECRET)
    app = FakeApp(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            valid = verifier.is_valid(
                body, self.headers.get("X-Slack-Request-Timestamp"), self.headers.get("X-Slack-Signature")
            )
            app.requests.append(CapturedRequest(dict(self.headers.items()), body, valid))
            status, reply = (app.reply_status, app.reply_body) if valid else (401, b"invalid signature")
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if reply.startswith(b"{") else "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    app.url = f"http://127.0.0.1:{server.server_address[1]}/slack/events"
    try:
        yield app
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def signed(emulator: SlackEmulator, fake_app: FakeApp) -> SignedSlackClient:
    return SignedSlackClient(fake_app.url, SECRET, emulator)


def post_incident_message(client: WebClient) -> str:
    return client.chat_postMessage(channel=CHANNEL, text="INC-1 declared", blocks=ACTION_BLOCKS)["ts"]


def open_modal(emulator: SlackEmulator, client: WebClient, user: str = "U1") -> str:
    return client.views_open(trigger_id=emulator.new_trigger_id(user), view=MODAL)["view"]["id"]


# ---------------------------------------------------------------------- Web API


def test_urls_and_auth_test(emulator: SlackEmulator, client: WebClient) -> None:
    assert emulator.base_url == f"{emulator.root_url}/api/"
    resp = client.auth_test()
    assert resp["user_id"] == "UTARSBOT"
    assert resp["team_id"] == "T0TARS"
    assert resp["bot_id"] == "B0TARS"
    assert emulator.calls[0].token == "xoxb-test"


def test_post_message_returns_ts_and_records_decoded_blocks(
    emulator: SlackEmulator, client: WebClient
) -> None:
    resp = client.chat_postMessage(channel=CHANNEL, text="hello", blocks=ACTION_BLOCKS)
    assert resp["channel"] == CHANNEL
    assert resp["message"]["text"] == "hello"
    assert resp["message"]["user"] == "UTARSBOT"
    call = emulator.wait_for("chat.postMessage")
    assert call.args["blocks"] == ACTION_BLOCKS
    assert call.response["ts"] == resp["ts"]
    assert call.http_status == 200
    [msg] = emulator.channel_messages(CHANNEL)
    assert (msg.ts, msg.text, msg.blocks, msg.user, msg.edits) == (
        resp["ts"],
        "hello",
        ACTION_BLOCKS,
        "UTARSBOT",
        0,
    )

    # Form-encoded calls carry blocks as a JSON string; the recording must decode them the same way.
    client.api_call("chat.postMessage", params={"channel": CHANNEL, "blocks": json.dumps(ACTION_BLOCKS[:1])})
    assert emulator.calls_to("chat.postMessage")[1].args["blocks"] == ACTION_BLOCKS[:1]


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
def test_post_message_validation(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as no_text:
        client.chat_postMessage(channel=CHANNEL)
    assert no_text.value.response["error"] == "no_text"
    with pytest.raises(SlackApiError) as no_channel:
        client.chat_postMessage(channel="", text="x")
    assert no_channel.value.response["error"] == "channel_not_found"


def test_timestamps_unique_and_increasing_under_concurrency(client: WebClient) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def post() -> None:
        ts = client.chat_postMessage(channel=CHANNEL, text="x")["ts"]
        with lock:
            results.append(ts)

    threads = [threading.Thread(target=post) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 20
    assert all(len(ts.split(".")[1]) == 6 for ts in results)
    ordered = sorted(results, key=float)
    assert len({float(ts) for ts in ordered}) == 20


def test_chat_update_and_delete_change_stored_message(emulator: SlackEmulator, client: WebClient) -> None:
    ts = post_incident_message(client)
    resp = client.chat_update(channel=CHANNEL, ts=ts, text="INC-1 resolved")
    assert resp["text"] == "INC-1 resolved"
    msg = emulator.message(CHANNEL, ts)
    assert msg.text == "INC-1 resolved"
    assert msg.blocks == ACTION_BLOCKS  # blocks untouched when not given
    assert msg.edits == 1
    client.chat_update(channel=CHANNEL, ts=ts, text="done", blocks=[])
    assert emulator.message(CHANNEL, ts).blocks == []

    with pytest.raises(SlackApiError) as missing:
        client.chat_update(channel=CHANNEL, ts="1.000000", text="nope")
    assert missing.value.response["error"] == "message_not_found"

    link = client.chat_getPermalink(channel=CHANNEL, message_ts=ts)["permalink"]
    assert link == f"https://tars-sandbox.slack.com/archives/{CHANNEL}/p{ts.replace('.', '')}"

    client.chat_delete(channel=CHANNEL, ts=ts)
    assert emulator.channel_messages(CHANNEL) == []
    assert emulator.message(CHANNEL, ts).deleted
    with pytest.raises(KeyError):
        emulator.message(CHANNEL, "9.999999")


def test_thread_replies(emulator: SlackEmulator, client: WebClient) -> None:
    parent = client.chat_postMessage(channel=CHANNEL, text="parent")["ts"]
    reply = client.chat_postMessage(channel=CHANNEL, text="reply", thread_ts=parent)
    assert reply["message"]["thread_ts"] == parent
    # Replying to a reply joins the same thread, as in Slack.
    client.chat_postMessage(channel=CHANNEL, text="nested", thread_ts=reply["ts"])
    assert [m.text for m in emulator.thread_replies(CHANNEL, parent)] == ["reply", "nested"]
    assert [m.text for m in emulator.channel_messages(CHANNEL)] == ["parent"]
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=CHANNEL, text="x", thread_ts="123.456")
    assert err.value.response["error"] == "thread_not_found"


def test_post_ephemeral(emulator: SlackEmulator, client: WebClient) -> None:
    resp = client.chat_postEphemeral(channel=CHANNEL, user="U1", text="only you")
    assert resp["message_ts"]
    client.chat_postEphemeral(channel="C0OTHER", user="U2", text="other")
    assert [c.args["text"] for c in emulator.ephemerals(CHANNEL)] == ["only you"]
    assert [c.args["text"] for c in emulator.ephemerals(user="U2")] == ["other"]
    assert emulator.channel_messages(CHANNEL) == []
    with pytest.raises(SlackApiError) as err:
        client.api_call("chat.postEphemeral", json={"channel": CHANNEL, "text": "x"})
    assert err.value.response["error"] == "user_not_in_channel"


def test_conversations_open_is_deterministic_and_dm_posts_land_there(
    emulator: SlackEmulator, client: WebClient
) -> None:
    first = client.conversations_open(users="U1,U2")["channel"]["id"]
    again = client.conversations_open(users=["U2", "U1"])["channel"]["id"]
    solo = client.conversations_open(users="U1")["channel"]["id"]
    assert first == again
    assert first.startswith("D") and solo.startswith("D") and solo != first

    resp = client.chat_postMessage(channel="U1", text="psst")
    assert resp["channel"] == solo
    assert [m.text for m in emulator.channel_messages(solo)] == ["psst"]
    info = client.conversations_info(channel=solo)["channel"]
    assert info["is_im"] is True
    assert info["user"] == "U1"
    assert client.conversations_join(channel=CHANNEL)["ok"]


def test_users_info_known_and_unknown(client: WebClient) -> None:
    user = client.users_info(user="U1")["user"]
    assert (user["name"], user["real_name"], user["tz"]) == ("alice", "Alice Liddell", "Europe/London")
    with pytest.raises(SlackApiError) as err:
        client.users_info(user="U404")
    assert err.value.response["error"] == "user_not_found"
    names = {m["id"] for m in client.users_list()["members"]}
    assert {"U1", "U2", "UTARSBOT"} <= names


def test_usergroups_users_list(emulator: SlackEmulator, client: WebClient) -> None:
    emulator.add_usergroup("S0ONCALL", "oncall", ["U1", "U2"])
    assert client.usergroups_users_list(usergroup="S0ONCALL")["users"] == ["U1", "U2"]
    with pytest.raises(SlackApiError) as err:
        client.usergroups_users_list(usergroup="S0NOPE")
    assert err.value.response["error"] == "no_such_subteam"


def test_views_open_needs_fresh_trigger_id(emulator: SlackEmulator, client: WebClient) -> None:
    trigger = emulator.new_trigger_id("U1")
    view = client.views_open(trigger_id=trigger, view=MODAL)["view"]
    assert view["id"] and view["hash"]
    assert view["callback_id"] == "declare_incident"
    assert emulator.calls_to("views.open")[0].args["view"] == MODAL
    [stored] = emulator.views("U1")
    assert (stored.id, stored.view, stored.closed) == (view["id"], MODAL, False)
    assert emulator.views("U2") == []

    with pytest.raises(SlackApiError) as reused:
        client.views_open(trigger_id=trigger, view=MODAL)
    assert reused.value.response["error"] == "invalid_trigger_id"
    with pytest.raises(SlackApiError) as invented:
        client.views_open(trigger_id="123.456.abc", view=MODAL)
    assert invented.value.response["error"] == "invalid_trigger_id"

    updated = client.views_update(view_id=view["id"], hash=view["hash"], view={**MODAL, "callback_id": "x"})
    assert updated["view"]["hash"] != view["hash"]
    assert emulator.views()[0].view["callback_id"] == "x"
    with pytest.raises(SlackApiError) as stale:
        client.views_update(view_id=view["id"], hash=view["hash"], view=MODAL)
    assert stale.value.response["error"] == "hash_conflict"


def test_auth_errors(emulator: SlackEmulator) -> None:
    with SlackEmulator(bot_token="xoxb-right") as strict:
        with pytest.raises(SlackApiError) as wrong:
            WebClient(token="xoxb-wrong", base_url=strict.base_url).auth_test()
        assert wrong.value.response["error"] == "invalid_auth"
        assert WebClient(token="xoxb-right", base_url=strict.base_url).auth_test()["ok"]
    with pytest.raises(SlackApiError) as missing:
        WebClient(base_url=emulator.base_url).auth_test()
    assert missing.value.response["error"] == "not_authed"
    assert emulator.calls[-1].token is None


def test_unknown_method(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.api_call("chat.doesNotExist", json={"x": 1})
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "unknown_method"


def test_rate_limit_is_retried_by_webclient(
    emulator: SlackEmulator, client: WebClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    # The real handler sleeps Retry-After + jitter; record the wait instead so the test stays fast.
    monkeypatch.setattr(builtin_handlers, "time", SimpleNamespace(sleep=slept.append))
    emulator.fail("chat.postMessage", status=429, retry_after=1)
    retrying = WebClient(
        token="xoxb-test",
        base_url=emulator.base_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    assert retrying.chat_postMessage(channel=CHANNEL, text="eventually")["ok"]
    assert len(slept) == 1 and slept[0] >= 1
    assert [c.http_status for c in emulator.calls_to("chat.postMessage")] == [429, 200]
    assert emulator.calls_to("chat.postMessage")[0].response == {"ok": False, "error": "ratelimited"}
    assert len(emulator.channel_messages(CHANNEL)) == 1

    emulator.fail("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=CHANNEL, text="no retry")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert len(emulator.channel_messages(CHANNEL)) == 1  # failed calls leave state alone


def test_injected_server_and_api_errors(emulator: SlackEmulator, client: WebClient) -> None:
    emulator.fail("chat.postMessage", status=500)
    with pytest.raises(SlackApiError) as server_error:
        client.chat_postMessage(channel=CHANNEL, text="x")
    assert server_error.value.response.status_code == 500

    emulator.fail("chat.update", status=200, error="channel_not_found", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as api_error:
            client.chat_update(channel=CHANNEL, ts="1.0", text="x")
        assert api_error.value.response.status_code == 200
        assert api_error.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as real_error:
        client.chat_update(channel=CHANNEL, ts="1.0", text="x")
    assert real_error.value.response["error"] == "message_not_found"
    assert emulator.channel_messages(CHANNEL) == []
    assert [c.http_status for c in emulator.calls] == [500, 200, 200, 200]


def test_a_delayed_call_is_seen_arriving_before_it_is_answered(
    emulator: SlackEmulator, client: WebClient
) -> None:
    emulator.delay("chat.postMessage", seconds=2)
    answered: list[str] = []
    sender = threading.Thread(
        target=lambda: answered.append(client.chat_postMessage(channel=CHANNEL, text="slow")["ts"])
    )
    sender.start()
    try:
        arrival = emulator.wait_for_arrival("chat.postMessage", lambda a: a.args["text"] == "slow")
        assert arrival.args == {"channel": CHANNEL, "text": "slow"}
        assert "token" not in arrival.args
        assert emulator.calls_to("chat.postMessage") == []  # still held by the delay: in flight
    finally:
        sender.join(timeout=10)
    assert len(answered) == 1
    assert [a.method for a in emulator.arrivals("chat.postMessage")] == ["chat.postMessage"]
    assert len(emulator.calls_to("chat.postMessage")) == 1
    with pytest.raises(AssertionError, match="1 arrived"):
        emulator.wait_for_arrival("chat.postMessage", lambda a: a.args["text"] == "other", timeout=0.1)
    emulator.reset()
    assert emulator.arrivals("chat.postMessage") == []


def test_response_url_via_webhook_client(emulator: SlackEmulator) -> None:
    url = emulator.new_response_url(CHANNEL, "U1")
    assert url.startswith(f"{emulator.root_url}/response/")
    hook = WebhookClient(url)

    resp = hook.send(text="working on it")
    assert (resp.status_code, resp.body) == (200, "ok")
    call = emulator.wait_for("response_url")
    assert call.args == {"text": "working on it", "channel": CHANNEL, "user": "U1"}
    assert call.response == {"ok": True}
    assert emulator.ephemerals(CHANNEL, "U1") == [call]
    assert emulator.channel_messages(CHANNEL) == []

    assert hook.send(text="INC-1 declared", response_type="in_channel").status_code == 200
    assert [m.text for m in emulator.channel_messages(CHANNEL)] == ["INC-1 declared"]
    assert len(emulator.ephemerals()) == 1

    assert WebhookClient(f"{emulator.root_url}/response/nope").send(text="x").status_code == 404


def test_wait_for_waits_and_timeout_lists_calls(emulator: SlackEmulator, client: WebClient) -> None:
    client.chat_postMessage(channel=CHANNEL, text="first")

    def later() -> None:
        time.sleep(0.05)
        client.chat_postMessage(channel="C0LATER", text="second")

    worker = threading.Thread(target=later)
    worker.start()
    call = emulator.wait_for("chat.postMessage", lambda c: c.args["channel"] == "C0LATER", timeout=2)
    worker.join()
    assert call.args["text"] == "second"
    assert len(emulator.wait_for_count("chat.postMessage", 2)) == 2

    with pytest.raises(AssertionError) as err:
        emulator.wait_for("chat.postMessage", lambda c: c.args["text"] == "never", timeout=0.05)
    message = str(err.value)
    assert "chat.postMessage" in message and '"first"' in message and '"second"' in message
    with pytest.raises(AssertionError, match=r"methods called so far: chat\.postMessage"):
        emulator.wait_for("chat.update", timeout=0.01)


def test_subscribe_and_reset(emulator: SlackEmulator, client: WebClient) -> None:
    seen: list[RecordedCall] = []
    emulator.subscribe(seen.append)
    client.chat_postMessage(channel=CHANNEL, text="x")
    assert [c.method for c in seen] == ["chat.postMessage"]
    emulator.fail("chat.postMessage", status=500)
    open_modal(emulator, client)
    emulator.reset()
    assert emulator.calls == [] and emulator.channel_messages(CHANNEL) == [] and emulator.views() == []
    assert client.chat_postMessage(channel=CHANNEL, text="after reset")["ok"]  # pending failure forgotten
    assert client.users_info(user="U1")["ok"]  # users survive reset


# ---------------------------------------------------------------------- SignedSlackClient


def test_sign_matches_slack_verifier(signed: SignedSlackClient) -> None:
    headers = signed.sign(b"a=b", timestamp=int(time.time()))
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid(b"a=b", headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert signed.sign(b"a=b", 1700000000)["X-Slack-Request-Timestamp"] == "1700000000"


def test_slash_command_form_fields(
    emulator: SlackEmulator, signed: SignedSlackClient, fake_app: FakeApp
) -> None:
    fake_app.reply_body = b'{"text": "ack"}'
    resp = signed.slash_command("declare db down", user_id="U1", channel_id=CHANNEL)
    assert resp.status == 200 and resp.json() == {"text": "ack"}
    request = fake_app.last
    assert request.signature_valid
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = request.form()
    assert list(form) == [
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    ]
    assert form["command"] == "/incident" and form["text"] == "declare db down"
    assert (form["user_id"], form["user_name"], form["channel_id"]) == ("U1", "alice", CHANNEL)
    assert (form["team_id"], form["team_domain"], form["api_app_id"]) == ("T0TARS", "tars-sandbox", "A0TARS")
    assert form["token"] == "legacy-verification-token"
    assert form["is_enterprise_install"] == "false"

    # The issued response_url and trigger_id are live in the emulator.
    assert WebhookClient(form["response_url"]).send(text="done").status_code == 200
    # The command's own answer is shown first, as Slack shows it, then the response_url message.
    assert [c.args["text"] for c in emulator.ephemerals(CHANNEL, "U1")] == ["ack", "done"]
    client = WebClient(token="xoxb-test", base_url=emulator.base_url)
    assert client.views_open(trigger_id=form["trigger_id"], view=MODAL)["ok"]
    assert emulator.views()[0].user_id == "U1"


def test_bad_signature_and_error_status_are_returned(signed: SignedSlackClient, fake_app: FakeApp) -> None:
    resp = signed.post(b"x=1", "application/x-www-form-urlencoded", signature="v0=deadbeef")
    assert resp.status == 401 and resp.body == "invalid signature"
    assert not fake_app.last.signature_valid
    stale = signed.slash_command("x", user_id="U1", channel_id=CHANNEL, timestamp=int(time.time()) - 3600)
    assert stale.status == 401
    fake_app.reply_status, fake_app.reply_body = 500, b""
    failed = signed.slash_command("x", user_id="U1", channel_id=CHANNEL)
    assert failed.status == 500 and failed.json() is None


def test_click_button_payload(
    emulator: SlackEmulator, client: WebClient, signed: SignedSlackClient, fake_app: FakeApp
) -> None:
    ts = post_incident_message(client)
    assert [(a["type"], a["action_id"], a["value"]) for a in signed.message_actions(CHANNEL, ts)] == [
        ("button", "ack", "INC-1"),
        ("button", "severity", "P1"),
        ("button", "severity", "P2"),
        ("static_select", "assign_role", None),
    ]
    assert signed.click_button(user_id="U2", channel_id=CHANNEL, message_ts=ts, action_id="ack").status == 200
    request = fake_app.last
    assert request.signature_valid and list(request.form()) == ["payload"]
    payload = request.payload()
    assert payload["type"] == "block_actions"
    assert payload["user"] == {"id": "U2", "username": "bob", "name": "bob", "team_id": "T0TARS"}
    assert payload["api_app_id"] == "A0TARS" and payload["token"] == "legacy-verification-token"
    assert payload["container"] == {
        "type": "message",
        "message_ts": ts,
        "channel_id": CHANNEL,
        "is_ephemeral": False,
    }
    assert payload["team"] == {"id": "T0TARS", "domain": "tars-sandbox"}
    assert payload["channel"]["id"] == CHANNEL
    assert payload["message"]["ts"] == ts and payload["message"]["text"] == "INC-1 declared"
    assert payload["message"]["user"] == "UTARSBOT"
    assert payload["message"]["blocks"] == ACTION_BLOCKS
    assert payload["state"] == {"values": {}}
    assert payload["trigger_id"] and payload["response_url"].startswith(emulator.root_url)
    [action] = payload["actions"]
    assert {k: v for k, v in action.items() if k != "action_ts"} == {
        "type": "button",
        "action_id": "ack",
        "block_id": "incident_actions",
        "text": {"type": "plain_text", "text": "Acknowledge"},
        "value": "INC-1",
        "style": "primary",
    }
    assert float(action["action_ts"]) > 0

    signed.click_button(user_id="U2", channel_id=CHANNEL, message_ts=ts, action_id="severity", value="P2")
    assert fake_app.last.payload()["actions"][0]["value"] == "P2"

    # The interaction's response_url is bound to the message, so replace_original rewrites it.
    WebhookClient(payload["response_url"]).send(text="acknowledged by bob", replace_original=True)
    msg: Message = emulator.message(CHANNEL, ts)
    assert (msg.text, msg.blocks, msg.edits) == ("acknowledged by bob", [], 1)
    assert emulator.ephemerals() == []


def test_click_button_lookup_errors(client: WebClient, signed: SignedSlackClient) -> None:
    ts = post_incident_message(client)
    with pytest.raises(LookupError, match=r"available buttons: ack='INC-1', severity='P1'"):
        signed.click_button(user_id="U1", channel_id=CHANNEL, message_ts=ts, action_id="nope")
    with pytest.raises(LookupError, match="pass value="):
        signed.click_button(user_id="U1", channel_id=CHANNEL, message_ts=ts, action_id="severity")
    with pytest.raises(LookupError):
        signed.click_button(user_id="U1", channel_id=CHANNEL, message_ts=ts, action_id="severity", value="P9")
    with pytest.raises(LookupError):
        signed.click_button(user_id="U1", channel_id=CHANNEL, message_ts="1.000001", action_id="ack")


def test_click_button_uses_current_message(client: WebClient, signed: SignedSlackClient) -> None:
    ts = post_incident_message(client)
    client.chat_update(channel=CHANNEL, ts=ts, text="resolved", blocks=ACTION_BLOCKS[:1])
    with pytest.raises(LookupError):
        signed.click_button(user_id="U1", channel_id=CHANNEL, message_ts=ts, action_id="ack")


def test_select_option_payload(client: WebClient, signed: SignedSlackClient, fake_app: FakeApp) -> None:
    ts = post_incident_message(client)
    signed.select_option(
        user_id="U1", channel_id=CHANNEL, message_ts=ts, action_id="assign_role", option_value="scribe"
    )
    payload = fake_app.last.payload()
    assert payload["type"] == "block_actions"
    [action] = payload["actions"]
    assert action["type"] == "static_select"
    assert action["action_id"] == "assign_role" and action["block_id"] == "incident_actions"
    assert action["selected_option"] == {"text": {"type": "plain_text", "text": "Scribe"}, "value": "scribe"}
    assert action["placeholder"] == {"type": "plain_text", "text": "Role"}
    with pytest.raises(LookupError, match="commander"):
        signed.select_option(
            user_id="U1", channel_id=CHANNEL, message_ts=ts, action_id="assign_role", option_value="boss"
        )
    with pytest.raises(LookupError):
        signed.select_option(
            user_id="U1", channel_id=CHANNEL, message_ts=ts, action_id="nope", option_value="x"
        )


def test_view_input_fields(emulator: SlackEmulator, client: WebClient, signed: SignedSlackClient) -> None:
    view_id = open_modal(emulator, client)
    fields = signed.view_input_fields(view_id)
    assert [(f["block_id"], f["action_id"], f["type"], f["optional"]) for f in fields] == [
        ("title", "value", "plain_text_input", False),
        ("severity", "value", "static_select", False),
        ("impact", "value", "number_input", True),
        ("notes", "value", "plain_text_input", True),
    ]
    assert fields[0]["label"] == "Title"
    assert fields[1]["options"] == [{"text": "P1", "value": "P1"}, {"text": "P2", "value": "P2"}]
    assert fields[3]["initial_value"] == "none yet" and "initial_value" not in fields[0]
    with pytest.raises(KeyError):
        signed.view_input_fields("V404")


def test_submit_view_state_values(
    emulator: SlackEmulator, client: WebClient, signed: SignedSlackClient, fake_app: FakeApp
) -> None:
    view_id = open_modal(emulator, client)
    resp = signed.submit_view(
        user_id="U1",
        view_id=view_id,
        values={"title": {"value": "DB down"}, "severity": {"value": "P1"}, "impact": {"value": "42"}},
    )
    assert resp.status == 200
    request = fake_app.last
    assert request.signature_valid and list(request.form()) == ["payload"]
    payload = request.payload()
    assert payload["type"] == "view_submission"
    assert payload["team"] == {"id": "T0TARS", "domain": "tars-sandbox"}
    assert payload["user"]["id"] == "U1" and payload["api_app_id"] == "A0TARS"
    assert payload["response_urls"] == [] and payload["trigger_id"]
    view = payload["view"]
    assert view["id"] == view_id and view["type"] == "modal" and view["team_id"] == "T0TARS"
    assert view["callback_id"] == "declare_incident"
    assert view["private_metadata"] == MODAL["private_metadata"]
    assert view["title"] == MODAL["title"] and view["blocks"] == MODAL["blocks"]
    assert view["hash"] == emulator.views(open_only=False)[0].hash
    assert view["state"]["values"] == {
        "title": {"value": {"type": "plain_text_input", "value": "DB down"}},
        "severity": {
            "value": {
                "type": "static_select",
                "selected_option": {"text": {"type": "plain_text", "text": "P1"}, "value": "P1"},
            }
        },
        "impact": {"value": {"type": "number_input", "value": "42"}},
        "notes": {"value": {"type": "plain_text_input", "value": "none yet"}},
    }
    # An empty 200 ack closes the modal, as Slack does.
    assert emulator.views() == [] and emulator.views(open_only=False)[0].closed
    with pytest.raises(KeyError, match="closed"):
        signed.submit_view(user_id="U1", view_id=view_id, values={})


def test_submit_view_missing_inputs_and_response_actions(
    emulator: SlackEmulator, client: WebClient, signed: SignedSlackClient, fake_app: FakeApp
) -> None:
    view_id = open_modal(emulator, client)
    fake_app.reply_body = b'{"response_action": "errors", "errors": {"title": "required"}}'
    signed.submit_view(user_id="U1", view_id=view_id, values={"notes": {"value": None}})
    values = fake_app.last.payload()["view"]["state"]["values"]
    assert values["title"]["value"] == {"type": "plain_text_input", "value": None}
    assert values["severity"]["value"] == {"type": "static_select", "selected_option": None}
    assert values["notes"]["value"]["value"] is None
    assert [v.id for v in emulator.views()] == [view_id]  # errors keep the modal open

    fake_app.reply_body = json.dumps(
        {"response_action": "update", "view": {**MODAL, "callback_id": "step2"}}
    ).encode()
    signed.submit_view(user_id="U1", view_id=view_id, values={"title": {"value": "x"}})
    assert emulator.views()[0].view["callback_id"] == "step2"

    with pytest.raises(KeyError, match="V404"):
        signed.submit_view(user_id="U1", view_id="V404", values={})
    with pytest.raises(KeyError, match="no inputs"):
        signed.submit_view(user_id="U1", view_id=view_id, values={"titel": {"value": "typo"}})
    with pytest.raises(LookupError, match="P1"):
        signed.submit_view(user_id="U1", view_id=view_id, values={"severity": {"value": "P9"}})


def test_get_query_args_multipart_and_unknown_paths(emulator: SlackEmulator, client: WebClient) -> None:
    with urllib.request.urlopen(f"{emulator.base_url}users.info?user=U2&token=xoxb-q", timeout=5) as resp:
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        assert json.loads(resp.read())["user"]["name"] == "bob"
    call = emulator.calls[-1]
    assert (call.args, call.token) == ({"user": "U2"}, "xoxb-q")

    # A files= argument makes slack_sdk send multipart/form-data.
    ts = client.chat_postMessage(channel=CHANNEL, text="x")["ts"]
    client.api_call("pins.add", data={"channel": CHANNEL, "timestamp": ts}, files={"file": b"bytes"})
    assert emulator.calls[-1].args == {"channel": CHANNEL, "timestamp": ts, "file": b"bytes"}

    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{emulator.root_url}/nope", timeout=5)
    assert missing.value.code == 404


def test_response_url_failure_injection(emulator: SlackEmulator) -> None:
    hook = WebhookClient(emulator.new_response_url(CHANNEL, "U1"))
    emulator.fail("response_url", status=429, retry_after=3)
    limited = hook.send(text="x")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert hook.send(text="y").status_code == 200
    assert [c.http_status for c in emulator.calls_to("response_url")] == [429, 200]
    assert [c.args["text"] for c in emulator.ephemerals()] == ["y"]


def test_channel_lifecycle_methods(emulator: SlackEmulator, client: WebClient) -> None:
    created = client.conversations_create(name="inc-42-db-down")["channel"]
    with pytest.raises(SlackApiError, match="name_taken"):
        client.conversations_create(name="inc-42-db-down")
    client.conversations_invite(channel=created["id"], users="U1,U2")
    client.conversations_setTopic(channel=created["id"], topic="SEV1: db down")
    info = client.conversations_info(channel=created["id"])["channel"]
    assert (info["name"], info["topic"]["value"], info["is_im"]) == ("inc-42-db-down", "SEV1: db down", False)
    assert set(client.conversations_members(channel=created["id"])["members"]) == {"U1", "U2", "UTARSBOT"}

    parent = client.chat_postMessage(channel=created["id"], text="timeline")["ts"]
    client.chat_postMessage(channel=created["id"], text="14:02 paged", thread_ts=parent)
    replies = client.conversations_replies(channel=created["id"], ts=parent)["messages"]
    assert [m["text"] for m in replies] == ["timeline", "14:02 paged"]
    assert [m["text"] for m in client.conversations_history(channel=created["id"])["messages"]] == [
        "timeline"
    ]
    client.reactions_add(channel=created["id"], timestamp=parent, name="eyes")

    client.conversations_archive(channel=created["id"])
    with pytest.raises(SlackApiError, match="is_archived"):
        client.chat_postMessage(channel=created["id"], text="too late")


def test_views_push_stacks_on_open_modal(emulator: SlackEmulator, client: WebClient) -> None:
    root = open_modal(emulator, client)
    pushed = client.views_push(
        trigger_id=emulator.new_trigger_id("U1"), view={**MODAL, "callback_id": "details"}
    )
    assert pushed["view"]["previous_view_id"] == root and pushed["view"]["root_view_id"] == root
    assert [v.view["callback_id"] for v in emulator.views("U1")] == ["declare_incident", "details"]
    home = {"type": "home", "blocks": []}
    assert client.views_publish(user_id="U1", view=home)["view"]["type"] == "home"
    assert emulator.calls_to("views.publish")[0].args["view"] == home
