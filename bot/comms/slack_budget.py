"""Slack's published rate limits, kept on our side so that TARS paces itself instead of provoking 429s.

chat.postMessage allows about one message per second per channel ("short bursts are allowed"); the other Web API
methods are limited per workspace by tier (Tier 3: 50+ per minute, Tier 4: 100+ per minute). One budget is shared
by all delivery workers of a replica. A 429 that happens anyway (another app, another replica) closes the bucket
for its Retry-After.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

POST = "chat.postMessage"


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: float


# Below Slack's figures on purpose: a little headroom costs seconds, a 429 costs a Retry-After.
POST_PER_CHANNEL = Rate(per_second=1.0, burst=2.0)
TIER_3 = Rate(per_second=45 / 60, burst=8.0)
TIER_4 = Rate(per_second=90 / 60, burst=15.0)
METHOD_RATES = {
    "chat.update": TIER_3,
    "chat.delete": TIER_3,
    "conversations.open": TIER_3,
    "conversations.history": TIER_3,
    "conversations.replies": TIER_3,
    "chat.postEphemeral": TIER_4,
    "files.getUploadURLExternal": TIER_4,
    "files.completeUploadExternal": TIER_4,
}


@dataclass
class _Bucket:
    rate: Rate
    tokens: float
    stamp: float
    closed_until: float = 0.0

    def refill(self, now: float) -> None:
        self.tokens = min(self.rate.burst, self.tokens + (now - self.stamp) * self.rate.per_second)
        self.stamp = now

    def wait_for_one(self, now: float) -> float:
        """Seconds until a token is free (0 when one is)."""
        if now < self.closed_until:
            return self.closed_until - now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate.per_second


Key = tuple[str, str]  # (method, channel or "" for the workspace-wide tier)


def post_key(channel: str) -> Key:
    return (POST, channel)


def method_key(method: str) -> Key:
    return (method, "")


class SlackBudget:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic, *, enforce: bool = True) -> None:
        # enforce=False measures TARS's own cost with Slack's pacing taken out (benchmarks only).
        self.enforce = enforce
        self._monotonic = monotonic
        self._buckets: dict[Key, _Bucket] = {}
        self._lock = threading.Lock()

    def try_take(self, keys: Iterable[Key]) -> float:
        """Take one token from every bucket named, all or nothing. Returns 0 on success, else the seconds until
        the scarcest of them has one."""
        keys = list(keys)
        if not self.enforce:
            return 0.0
        now = self._monotonic()
        with self._lock:
            buckets = [self._bucket(key, now) for key in keys]
            wait = max((bucket.wait_for_one(now) for bucket in buckets), default=0.0)
            if wait > 0:
                return wait
            for bucket in buckets:
                bucket.tokens -= 1
            return 0.0

    def give_back(self, keys: Iterable[Key]) -> None:
        """Return tokens taken for work that did not go out after all (another replica leased it first)."""
        now = self._monotonic()
        with self._lock:
            for key in keys:
                bucket = self._bucket(key, now)
                bucket.tokens = min(bucket.rate.burst, bucket.tokens + 1)

    def close_for(self, key: Key, seconds: float) -> None:
        """Slack said 429 with Retry-After: nothing more on this bucket until then."""
        now = self._monotonic()
        with self._lock:
            bucket = self._bucket(key, now)
            bucket.closed_until = max(bucket.closed_until, now + seconds)
            bucket.tokens = 0.0

    def _bucket(self, key: Key, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            rate = POST_PER_CHANNEL if key[0] == POST else METHOD_RATES.get(key[0], TIER_4)
            bucket = self._buckets[key] = _Bucket(rate, rate.burst, now)
        bucket.refill(now)
        return bucket
