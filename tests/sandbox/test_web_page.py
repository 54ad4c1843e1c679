"""The sandbox's Slack-like page, used in a real headless Chromium as a newcomer would use it.

TARS runs behind its real signed endpoint against the Slack emulator; the page sends every command, click and
form through SignedSlackClient, and shows what the emulator holds. Screenshots of each step go to
$TARS_SCREENSHOTS (or the test's tmp_path) for anyone who wants to see what the page looks like.
"""

from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.core.clock import FrozenClock
from sandbox.emulator import SignedSlackClient, SlackEmulator
from sandbox.personas import Persona
from sandbox.web import SandboxPage
from tests.sandbox.browser import SUBMIT, Browser, message_xpath, xpath_literal
from tests.support import CHANNEL, SIGNING_SECRET, RunningTars, start_tars

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

YOU = "U0YOU"
ONCALL = "U0PAYONCALL"  # the on-call for payments in tests.support.SERVICES
PERSONAS = [
    Persona(YOU, "you", "You", "declares incidents"),
    Persona(ONCALL, "pat.payments", "Pat Payments", "on-call for payments"),
    Persona("U0APPROVER1", "approver.one", "Approver One", "approver"),
    Persona("U0APPROVER2", "approver.two", "Approver Two", "approver"),
]
BOT_TOKEN = "xoxb-test-token"  # the token the `slack` fixture's emulator accepts
# Generous: two CPU burners beside the browser make a step take seconds instead of the usual tenth.


# --- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture
def tars(slack: SlackEmulator, engine: Engine, clock: FrozenClock) -> Iterator[RunningTars]:
    slack.add_user(YOU, "you", "You")
    slack.add_user("U0APPROVER1", "approver1", "Approver One")
    slack.add_user("U0APPROVER2", "approver2", "Approver Two")
    with start_tars(slack, engine, clock) as running:
        yield running


@pytest.fixture
def page(slack: SlackEmulator, tars: RunningTars) -> Iterator[SandboxPage]:
    client = SignedSlackClient(tars.url + "/slack/events", SIGNING_SECRET, slack)
    with SandboxPage(slack, client, PERSONAS, CHANNEL, settle=tars.app.settle) as sandbox_page:
        yield sandbox_page


# --- in the browser -------------------------------------------------------------------------------------------------


def test_a_newcomer_declares_acknowledges_and_resolves_an_incident_in_the_page(
    page: SandboxPage, browser: Browser
) -> None:
    browser.open(page.url)
    browser.shot("empty-channel")

    # The composer completes /incident sub-commands and shows how they are used.
    browser.type("/incident dec")
    browser.wait(
        lambda d: d.find_element(
            By.CSS_SELECTOR, "#completions .completion[data-name='declare']"
        ).is_displayed(),
        "the composer did not offer `declare`",
    )
    browser.shot("completion")
    browser.type(Keys.TAB)
    browser.wait(
        lambda d: d.find_element(By.ID, "composer").get_attribute("value") == "/incident declare ",
        "Tab did not complete `declare`",
    )
    browser.wait(
        lambda d: "<service>" in d.find_element(By.ID, "usage-hint").text, "no usage hint for declare"
    )
    browser.command("payments P1 Card payments failing")

    card = browser.message_text("Incident declared: Card payments failing")
    assert "🚨" in card
    assert "@Pat Payments" in card  # <@U0PAYONCALL>, shown by name
    assert "Not yet" in card
    assert browser.present(
        message_xpath("Card payments failing") + "//b[contains(., '[P1] Incident declared')]"
    )
    assert "Only visible to you" in browser.ephemeral_text("Declared INC-1")
    browser.shot("declared")

    # The on-call was paged in a DM; they acknowledge on the card.
    browser.act_as(ONCALL)
    assert not browser.present("//div[@id='messages']/div[contains(@class, 'ephemeral')]")  # not theirs
    browser.click("//ul[@id='dms']//button[contains(., 'TARS')]", "the DM with TARS")
    browser.message_text("You are on call for")
    browser.shot("oncall-dm")
    browser.click("//ul[@id='channels']//button[contains(., 'incidents')]", "#incidents")
    browser.press("Incident declared: Card payments failing", "Acknowledge")
    acknowledged = browser.until_message(
        "Incident declared: Card payments failing",
        lambda text: "@Pat Payments at" in text,
        "the card never showed the acknowledgement",
    )
    assert "Not yet" not in acknowledged
    assert not browser.present(
        message_xpath("Card payments failing") + "//button[normalize-space() = 'Acknowledge']"
    )
    browser.shot("acknowledged")

    # Resolve opens a form; TARS's validation errors show under their field and the form stays open.
    browser.press("Incident declared: Card payments failing", "Resolve")
    assert "Resolve INC-1" in browser.modal_text()
    browser.shot("resolve-form")
    browser.click(SUBMIT, "Resolve")
    error = browser.wait(
        lambda d: d.find_element(By.CSS_SELECTOR, browser.field("root_cause", ".input-error")).text,
        "no validation error under the root cause",
    )
    assert "The root cause is required" in error
    assert "Resolve INC-1" in browser.modal_text()
    browser.shot("resolve-error")

    browser.fill("root_cause", "Bad deploy of payments v2.3")
    browser.fill("users_affected", "1200")
    # Not 10 minutes in Monitoring yet: only the override lets it resolve now.
    browser.click("//div[@data-block-id='force']//input[@type='checkbox']", "the monitoring override")
    browser.click(SUBMIT, "Resolve")
    browser.modal_closed()

    resolved = browser.message_text("Resolved: Card payments failing")
    assert "✅" in resolved
    assert "Bad deploy of payments v2.3" in resolved
    assert not browser.present(
        message_xpath("Resolved: Card payments failing") + "//*[@data-action-id]"
    )  # no controls
    assert "Users affected: 1,200" in browser.message_text("INCIDENT RESOLVED")
    browser.shot("resolved")


def test_what_people_type_is_shown_as_text_and_never_run(
    page: SandboxPage, browser: Browser, slack: SlackEmulator, tars: RunningTars
) -> None:
    browser.open(page.url)

    # Through the command line: Slack escapes it, TARS escapes what it echoes; the page must not undo either.
    browser.command("/incident declare payments P2 <script>window.__pwned=1</script> <!here> & co")
    assert "<script>window.__pwned=1</script> <!here> & co" in browser.message_text("window.__pwned=1")
    assert not browser.present(
        message_xpath("window.__pwned=1") + "//*[contains(@class, 'broadcast')]"
    )  # no @here
    assert browser.injected() == []

    # Through a form, whose values reach TARS as typed.
    browser.command("/incident declare")
    assert "Declare an incident" in browser.modal_text()
    browser.choose("service", "payments")
    browser.choose("severity", "P3")
    browser.fill("description", '<img src=x onerror="window.__pwned=2"> <b>not bold</b>')
    browser.click(SUBMIT, "Declare")
    browser.modal_closed()
    assert '<img src=x onerror="window.__pwned=2"> <b>not bold</b>' in browser.message_text("onerror=")
    assert browser.injected() == []
    browser.shot("typed-text-shown-as-text")

    # A message posted from elsewhere appears with no action in the page (Server-Sent Events), and its button's
    # `confirm` asks first. TARS refuses card buttons clicked anywhere but on their card, privately: that
    # refusal is how the test sees the click arrive, once, and only after "Yes".
    incident_id = browser.attribute(
        message_xpath("window.__pwned=1") + "//button[normalize-space() = 'Acknowledge']", "data-value"
    )
    WebClient(token=BOT_TOKEN, base_url=slack.base_url).chat_postMessage(
        channel=CHANNEL,
        text="Acknowledge from here?",
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": "Acknowledge *from here*?"}},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "incident_ack",
                        "value": incident_id,
                        "text": {"type": "plain_text", "text": "Ack with care"},
                        "style": "primary",
                        "confirm": {
                            "title": {"type": "plain_text", "text": "Acknowledge it?"},
                            "text": {"type": "mrkdwn", "text": "You will be *on the hook*."},
                            "confirm": {"type": "plain_text", "text": "Yes, acknowledge"},
                            "deny": {"type": "plain_text", "text": "Not yet"},
                        },
                    }
                ],
            },
        ],
    )
    private_before = len(slack.ephemerals(user=YOU))
    browser.press("Acknowledge from here?", "Ack with care")
    dialog = browser.text("//div[contains(@class, 'confirm-dialog')]", "no confirm dialog")
    assert "Acknowledge it?" in dialog and "on the hook" in dialog
    browser.shot("confirm-dialog")
    browser.click(
        "//div[contains(@class, 'confirm-dialog')]//button[normalize-space() = 'Not yet']", "Not yet"
    )
    browser.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, ".confirm-dialog"), "the dialog stayed open")
    browser.press("Acknowledge from here?", "Ack with care")
    browser.click(
        "//div[contains(@class, 'confirm-dialog')]//button[normalize-space() = 'Yes, acknowledge']", "Yes"
    )
    refusal = browser.ephemeral_text("belongs to another card")
    assert "Only visible to you" in refusal
    assert tars.app.settle()
    assert len(slack.ephemerals(user=YOU)) == private_before + 1  # the cancelled click was never sent
    assert "Not yet" in browser.message_text("window.__pwned=1")  # and the card was not acknowledged
    browser.shot("refused-off-card")


def test_a_chart_posted_in_a_thread_shows_inline_in_the_thread_pane(
    page: SandboxPage, browser: Browser, slack: SlackEmulator
) -> None:
    browser.open(page.url)
    browser.command("/incident declare payments P2 Checkout latency up")
    browser.message_text("Checkout latency up")
    card_ts = slack.channel_messages(CHANNEL)[-1].ts
    # As TARS posts a metrics chart: files.getUploadURLExternal, the upload, files.completeUploadExternal.
    WebClient(token=BOT_TOKEN, base_url=slack.base_url).files_upload_v2(
        channel=CHANNEL,
        thread_ts=card_ts,
        filename="error-rate.png",
        title="Error rate",
        content=_png(24, 12),
    )
    browser.click(
        message_xpath("Checkout latency up") + "//button[contains(@class, 'replies-link')]", "the replies"
    )
    loaded = (
        "const img = document.querySelector('#thread-messages img.file-img'); return img && img.naturalWidth"
    )
    browser.wait(lambda d: d.execute_script(loaded) == 24, "the chart did not show in the thread")
    assert "Error rate" in browser.message_text("Error rate", where="thread-messages")
    browser.shot("chart-in-thread")


def test_block_kit_and_mrkdwn_look_as_in_slack(
    page: SandboxPage, browser: Browser, slack: SlackEmulator
) -> None:
    browser.open(page.url)
    mrkdwn = (
        "*bold* _italic_ ~gone~ `code` <https://example.com/runbook|the runbook> <javascript:alert(1)|no link> "
        "<@U0PAYONCALL> <#C0INCIDENTS> <!here> &lt;b&gt;escaped&lt;/b&gt; &amp; more\n```line 1\n<not a tag>```"
    )
    WebClient(token=BOT_TOKEN, base_url=slack.base_url).chat_postMessage(
        channel=CHANNEL,
        text="Weekly review",
        blocks=[
            {"type": "header", "text": {"type": "plain_text", "text": "Weekly review :tada:"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}},
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "Posted by _TARS_"}]},
            {
                "type": "image",
                "image_url": "https://example.invalid/chart.png",
                "alt_text": "error rate chart",
            },
        ],
    )
    review = message_xpath("Weekly review")
    assert "Weekly review 🎉" in browser.text(review + "//div[contains(@class, 'block-header')]", "no header")
    for tag, text in [
        ("b", "bold"),
        ("i", "italic"),
        ("s", "gone"),
        ("code", "code"),
        ("pre", "<not a tag>"),
    ]:
        assert browser.present(f"{review}//{tag}[contains(., {xpath_literal(text)})]"), (tag, text)
    assert browser.attribute(f"{review}//a[. = 'the runbook']", "href") == "https://example.com/runbook"
    assert not browser.present(f"{review}//a[contains(., 'no link')]")  # javascript: never becomes a link
    assert browser.present(f"{review}//span[contains(@class, 'mention')][. = '@Pat Payments']")
    assert browser.present(f"{review}//span[contains(@class, 'channel-link')][. = '#incidents']")
    assert browser.present(
        f"{review}//span[contains(@class, 'broadcast')][. = '@here']"
    )  # TARS's own <!here>
    assert "<b>escaped</b> & more" in browser.message_text("Weekly review")
    assert not browser.present(f"{review}//b[contains(., 'escaped')]")
    assert browser.present(f"{review}//hr")
    assert "Posted by TARS" in browser.text(review + "//div[contains(@class, 'block-context')]", "no context")
    assert browser.attribute(f"{review}//img", "alt") == "error rate chart"
    browser.shot("block-kit")


# --- the JSON API, without a browser ----------------------------------------------------------------------------------


def _call(page: SandboxPage, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    sent = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(
        page.url.rstrip("/") + path, data=data, headers={**sent, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def test_the_api_refuses_bad_input_with_a_clear_message(page: SandboxPage) -> None:
    def refused(path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
        status, answer_headers, raw = _call(page, path, body, headers)
        assert answer_headers["Content-Type"].startswith("application/json")
        return status, json.loads(raw)["error"]

    status, message = refused("/api/command", {"user": "U0NOBODY", "text": "/incident help"})
    assert status == 400 and "personas" in message
    assert refused("/api/command", {"user": YOU}) == (400, "missing 'text'")
    status, message = refused("/api/command", {"user": YOU, "text": "/deploy now"})
    assert status == 400 and "/incident only" in message
    status, message = refused(
        "/api/action", {"user": YOU, "channel": CHANNEL, "message_ts": "1.2", "action_id": "x"}
    )
    assert status == 409 and "no message" in message
    assert refused("/api/view", {"user": YOU, "view_id": "V0NOPE", "values": {}})[0] == 409
    assert refused("/api/view", {"user": YOU, "view_id": "V0NOPE", "values": {"b": {"a": 3}}})[0] == 400
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert refused("/api/command", b"user=U0YOU", form)[0] == 415
    assert refused("/api/command", b"[1]")[0] == 400
    elsewhere = {"Origin": "http://evil.example"}
    assert refused("/api/command", {"user": YOU, "text": "/incident help"}, elsewhere)[0] == 403
    assert refused("/api/state", headers={"Host": "rebound.example:80"})[0] == 403  # DNS rebinding
    assert refused(f"/api/state?user={YOU}&conversation=C0OTHER")[0] == 404
    assert refused(f"/api/thread?user={YOU}&channel={CHANNEL}")[0] == 400
    assert refused("/static/../page_server.py")[0] == 404


def test_the_api_lists_personas_and_commands_and_serves_files(
    page: SandboxPage, slack: SlackEmulator
) -> None:
    status, _, raw = _call(page, "/api/personas")
    assert status == 200
    assert [p["user_id"] for p in json.loads(raw)["personas"]] == [p.slack_id for p in PERSONAS]

    commands = json.loads(_call(page, "/api/commands")[2])
    names = [c["name"] for c in commands["subcommands"]]
    assert names[0] == "declare" and {"ack", "resolve", "help", "acknowledge", "ls"} <= set(names)
    declare = next(c for c in commands["subcommands"] if c["name"] == "declare")
    assert declare["usage"].startswith("/incident declare <service> <P1|P2|P3|P4>")

    png = _png(4, 4)
    WebClient(token=BOT_TOKEN, base_url=slack.base_url).files_upload_v2(
        channel=CHANNEL, filename="chart.png", title="Chart", content=png
    )
    upload = slack.uploaded_files()[-1]
    status, headers, body = _call(page, f"/files/{upload.id}")
    assert (status, headers["Content-Type"], body) == (200, "image/png", png)
    state = json.loads(_call(page, f"/api/state?user={YOU}")[2])
    assert state["messages"][-1]["files"][0]["url"] == f"/files/{upload.id}"


def _png(width: int, height: int) -> bytes:
    """A small valid PNG (a red-to-blue ramp), enough to tell that the browser drew a real image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"".join(bytes((255 * x // width, 0, 255 - 255 * x // width)) for x in range(width))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )
