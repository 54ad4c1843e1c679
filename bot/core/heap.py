"""Garbage collection set for a long-running server rather than a script.

After start-up the heap holds hundreds of thousands of long-lived objects (SQLAlchemy's mappers and compiled
statements, Bolt, slack_sdk, pydantic models) that will never be garbage. CPython's full collections walk all of
them each time; under a P1's burst of clicks that walk landed in the middle of acks as pauses of tens of
milliseconds. Freezing moves them out of the collector's sight, and a larger youngest generation lets a
request's short-lived objects die by reference counting before a collection visits them at all.
"""

from __future__ import annotations

import gc

# Objects allocated (net) before the youngest generation is collected; CPython's default is 700, tuned for
# scripts. A request allocates a few thousand, so the default collected several times per request.
YOUNG_GENERATION_THRESHOLD = 20_000


def settle_after_startup() -> None:
    """Call once, after everything is imported and built and before serving."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)
