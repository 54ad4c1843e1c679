"""The answer to Slack leaves when the listener acks, not at Bolt's next poll."""

from __future__ import annotations

import threading

from slack_bolt.response import BoltResponse

from bot.app import PromptAck


def test_the_request_thread_gets_the_answer_the_listener_gave() -> None:
    ack = PromptAck()
    listener = threading.Thread(target=lambda: ack(text="Recorded."))
    listener.start()
    # Read on the thread that made it: waits for the ack instead of seeing "not yet" and polling again.
    answer = ack.response
    listener.join()
    assert isinstance(answer, BoltResponse)
    assert answer.body == "Recorded."


def test_other_threads_never_wait_for_the_ack() -> None:
    ack = PromptAck()
    seen: list[BoltResponse | None] = []
    reader = threading.Thread(target=lambda: seen.append(ack.response))
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert seen == [None]
    ack()
    assert ack.response is not None and ack.response.status == 200
