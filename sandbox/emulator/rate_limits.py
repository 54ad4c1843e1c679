"""Slack's published Web API rate limits as token buckets, for the emulator's opt-in rate limiting.

Slack applies limits "per API method per app per workspace" (https://api.slack.com/docs/rate-limits):
Tier 2 "20+ per minute ... occasional bursts", Tier 3 "50+ per minute ... sporadic bursts are welcome",
Tier 4 "100+ per minute ... generous burst behavior". The emulator serves one app in one workspace, so a
bucket per method models that: it holds the per-minute figure and refills continuously, which allows a
full minute's quota as a burst and then the published average.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

TIER_PER_MINUTE: dict[int, int] = {2: 20, 3: 50, 4: 100}

# Methods the emulator serves whose tier Slack publishes in the method reference. Methods missing here are
# not limited, rather than limited by a guessed tier.
METHOD_TIERS: dict[str, int] = {
    "chat.update": 3,
    "chat.delete": 3,
    "conversations.history": 3,
    "conversations.replies": 3,
    "conversations.open": 3,
    "chat.postEphemeral": 4,
    "views.open": 4,
    "views.update": 4,
    "views.push": 4,
    "views.publish": 4,
    "users.info": 4,
    "usergroups.list": 2,
    "usergroups.users.list": 2,
    "files.getUploadURLExternal": 4,
    "files.completeUploadExternal": 4,
}

# chat.postMessage is Slack's "special tier": "Posting messages: 1 per second. Short bursts >1 allowed. If you
# attempt bursts, there is no guarantee that messages will be posted" and "generally allows posting one
# message per second per channel, while also maintaining a workspace-wide limit". The burst size is not
# published; 3 lets a card plus a couple of thread notes through at once while a loop posting into one
# channel faster than 1/s is refused within seconds. The workspace-wide figure is unpublished, so it is not
# modelled.
POST_MESSAGE_BURST = 3
POST_MESSAGE_PER_SECOND = 1.0


class TokenBucket:
    """``capacity`` tokens refilling continuously at ``per_second``; each allowed call takes one."""

    def __init__(self, capacity: float, per_second: float, now: float) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self._tokens = capacity
        self._updated = now

    def take(self, now: float) -> float:
        """Take a token and return 0.0, or take nothing and return the seconds until one is free."""
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.per_second)
        self._updated = now
        # The tolerance keeps float refill steps (e.g. 2.5 s + 0.5 s at 1/3 per second) from falling a hair short.
        if self._tokens >= 1 - 1e-9:
            self._tokens = max(0.0, self._tokens - 1)
            return 0.0
        return (1 - self._tokens) / self.per_second


class RateLimiter:
    """Decides whether a Web API call fits Slack's limits; not thread-safe (the emulator's lock guards it)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def retry_after(self, method: str, channel: str | None = None) -> int | None:
        """None when the call may proceed (its token is spent), else Slack's Retry-After in whole seconds."""
        if method == "chat.postMessage" and channel:
            key, capacity, per_second = (method, channel), POST_MESSAGE_BURST, POST_MESSAGE_PER_SECOND
        elif method in METHOD_TIERS:
            per_minute = TIER_PER_MINUTE[METHOD_TIERS[method]]
            key, capacity, per_second = (method, ""), per_minute, per_minute / 60
        else:
            return None
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(capacity, per_second, now)
        wait = bucket.take(now)
        if wait <= 0:
            return None
        # Retry-After is whole seconds; rounding down would send the client back before a token is free.
        return max(1, math.ceil(wait))

    def reset(self) -> None:
        self._buckets.clear()
