"""The floor for bench/ack_latency.py: a bare Bolt app that only acks, set up and served exactly as TARS is.

Same slack_bolt App settings as bot.app.create_app (a WebClient on SLACK_API_URL, the signing secret,
request verification, process_before_response=False, an 8-thread listener executor) and the same server
(bot.ingress.http_server.HttpServer: waitress, 8 threads). `/incident` and every block_actions click are acked with a short
ephemeral text and nothing else, so whatever TARS costs on top of this is TARS's own. `POST /signals/...` (for
bench/alert_storm.py) reads and parses the JSON body and answers 200.

Run by ack_latency.py in its own process: PORT, SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from bot.core.logs import quiet_server_queue
from bot.ingress.http_server import HttpServer


def build_wsgi() -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    client = WebClient(
        token=os.environ["SLACK_BOT_TOKEN"],
        base_url=os.environ["SLACK_API_URL"].rstrip("/") + "/",
        timeout=10,
    )
    listeners = ThreadPoolExecutor(max_workers=8, thread_name_prefix="floor-listener")
    bolt = App(
        client=client,
        listener_executor=listeners,
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        request_verification_enabled=True,
        process_before_response=False,
    )

    @bolt.command("/incident")
    def command(ack: Ack) -> None:
        ack(text="Got it.", response_type="ephemeral")

    @bolt.action(re.compile(".*"))
    def click(ack: Ack) -> None:
        ack(text="Got it.", response_type="ephemeral")

    slack = SlackRequestHandler(bolt)

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/signals/"):
            # The floor for bench/alert_storm.py: read and parse the alert, answer 200, keep nothing.
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            answer = json.dumps({"alerts": len(json.loads(body).get("alerts", []))}).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
            )
            return [answer]
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "15")])
            return [b'{"status":"ok"}']
        return slack(environ, start_response)

    return wsgi


def main() -> None:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_server_queue()  # as TARS's logging set-up does
    HttpServer(build_wsgi(), port=int(os.environ["PORT"])).serve_forever()


if __name__ == "__main__":
    main()
