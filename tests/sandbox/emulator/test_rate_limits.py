"""Opt-in Slack rate limits: what a client sees through slack_sdk, and the bucket arithmetic behind it."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from sandbox.emulator import SlackEmulator
from sandbox.emulator.rate_limits import RateLimiter, TokenBucket
from tests.sandbox.emulator.conftest import CHANNEL


def post_until_limited(client: WebClient, channel: str, attempts: int = 10) -> tuple[int, SlackApiError]:
    """Post into ``channel`` until Slack refuses; the number of accepted posts and the refusal."""
    for accepted in range(attempts):
        try:
            client.chat_postMessage(channel=channel, text=f"update {accepted}")
        except SlackApiError as err:
            return accepted, err
    raise AssertionError(f"{attempts} posts in a row were all accepted")


def test_rate_limits_are_off_unless_asked_for(emulator: SlackEmulator, bare_client: WebClient) -> None:
    for n in range(10):
        bare_client.chat_postMessage(channel=CHANNEL, text=f"update {n}")
    assert len(emulator.channel_messages(CHANNEL)) == 10
    assert emulator.rate_limited_calls() == []


def test_post_message_bursts_then_429_per_channel(emulator: SlackEmulator, bare_client: WebClient) -> None:
    emulator.enforce_rate_limits()
    accepted, refused = post_until_limited(bare_client, CHANNEL)

    assert accepted >= 3  # the burst allowance
    assert refused.response.status_code == 429
    assert refused.response["error"] == "ratelimited"
    assert refused.response.headers["Retry-After"] == "1"
    assert len(emulator.channel_messages(CHANNEL)) == accepted  # the refused post left nothing behind
    [limited] = emulator.rate_limited_calls()
    assert (limited.method, limited.http_status, limited.args["channel"]) == (
        "chat.postMessage",
        429,
        CHANNEL,
    )
    assert limited.response == {"ok": False, "error": "ratelimited"}

    # The limit is per channel: another channel still takes a post at once.
    assert bare_client.chat_postMessage(channel="C0OTHER", text="elsewhere")["ok"]


def test_retry_after_is_honoured_by_slack_sdk(emulator: SlackEmulator) -> None:
    emulator.enforce_rate_limits()
    retrying = WebClient(
        token="xoxb-test",
        base_url=emulator.base_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    for n in range(5):
        retrying.chat_postMessage(channel=CHANNEL, text=f"update {n}")
    assert [m.text for m in emulator.channel_messages(CHANNEL)] == [f"update {n}" for n in range(5)]
    assert emulator.rate_limited_calls()  # the client did wait its turn


def test_tier_limits_count_per_method(emulator: SlackEmulator, bare_client: WebClient) -> None:
    emulator.add_usergroup("S0ONCALL", "oncall", ["U1"])
    emulator.enforce_rate_limits()
    # Tier 2: 20 a minute, all of them available as a burst.
    accepted = 0
    with pytest.raises(SlackApiError) as refused:
        for accepted in range(40):  # noqa: B007 - the count of accepted calls is the assertion
            bare_client.usergroups_users_list(usergroup="S0ONCALL")
    assert accepted >= 20
    assert refused.value.response.status_code == 429
    assert 1 <= int(refused.value.response.headers["Retry-After"]) <= 3  # one token every 3 s

    # Each method has its own bucket: users.info (Tier 4) is untouched by the usergroups calls.
    assert bare_client.users_info(user="U1")["ok"]
    assert {c.method for c in emulator.rate_limited_calls()} == {"usergroups.users.list"}


def test_refused_update_changes_nothing(emulator: SlackEmulator, bare_client: WebClient) -> None:
    ts = bare_client.chat_postMessage(channel=CHANNEL, text="v0")["ts"]
    emulator.enforce_rate_limits()
    edits = 0
    with pytest.raises(SlackApiError) as refused:
        for edits in range(1, 120):
            bare_client.chat_update(channel=CHANNEL, ts=ts, text=f"v{edits}")
    assert refused.value.response.status_code == 429
    assert edits > 50  # Tier 3 allows a minute's 50 at once
    assert emulator.message(CHANNEL, ts).text == f"v{edits - 1}"


def test_response_url_is_not_rate_limited(emulator: SlackEmulator) -> None:
    emulator.enforce_rate_limits()
    hook = WebhookClient(emulator.new_response_url(CHANNEL, "U1"))
    for n in range(10):
        assert hook.send(text=f"step {n}", response_type="in_channel").status_code == 200
    assert len(emulator.channel_messages(CHANNEL)) == 10
    assert emulator.rate_limited_calls() == []


def test_enforce_rate_limits_can_be_switched_off() -> None:
    with SlackEmulator(rate_limits=True) as limited:
        strict = WebClient(token="xoxb-test", base_url=limited.base_url, retry_handlers=[])
        post_until_limited(strict, CHANNEL)
        limited.enforce_rate_limits(False)
        assert strict.chat_postMessage(channel=CHANNEL, text="unthrottled")["ok"]


# ---------------------------------------------------------------------- bucket arithmetic


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_refills_continuously() -> None:
    bucket = TokenBucket(capacity=3, per_second=1.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(1.0)
    assert bucket.take(0.25) == pytest.approx(0.75)
    assert bucket.take(1.0) == 0.0
    # Idle time refills no further than the capacity.
    assert [bucket.take(100.0) for _ in range(4)][-1] == pytest.approx(1.0)


def test_rate_limiter_retry_after_rounds_up_to_whole_seconds() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    assert [limiter.retry_after("chat.postMessage", "C1") for _ in range(3)] == [None, None, None]
    assert limiter.retry_after("chat.postMessage", "C1") == 1
    assert limiter.retry_after("chat.postMessage", "C2") is None
    clock.now += 1.0
    assert limiter.retry_after("chat.postMessage", "C1") is None

    assert all(limiter.retry_after("usergroups.list") is None for _ in range(20))
    assert limiter.retry_after("usergroups.list") == 3
    clock.now += 2.5
    assert limiter.retry_after("usergroups.list") == 1  # half a second left, reported as a whole one
    clock.now += 0.5
    assert limiter.retry_after("usergroups.list") is None

    assert all(limiter.retry_after("auth.test") is None for _ in range(500))  # no published tier, no limit
