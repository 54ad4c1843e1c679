"""HTTP: `/slack/events` for Bolt (behind `bot.ingress.front_door`), `/healthz` for the orchestrator; waitress."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine

from bot.core.database import database_reachable

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


SLACK_PATH = "/slack/events"
# waitress refuses (413) larger bodies itself, before buffering them; the front door's own cap is lower.
MAX_REQUEST_BODY_BYTES = 4 * 1024 * 1024


class TarsWsgi:
    """Routes requests; `slack_handler` is the front door wrapping Bolt (None in Socket Mode)."""

    def __init__(self, engine: Engine, slack_handler: WsgiApp | None) -> None:
        self.engine = engine
        self.slack_handler = slack_handler

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            healthy = database_reachable(self.engine)
            body = json.dumps({"status": "ok" if healthy else "unavailable", "database": healthy}).encode()
            status = "200 OK" if healthy else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if path == SLACK_PATH and self.slack_handler is not None:
            if environ.get("REQUEST_METHOD") != "POST":
                start_response(
                    "405 Method Not Allowed",
                    [("Allow", "POST"), ("Content-Type", "text/plain"), ("Content-Length", "18")],
                )
                return [b"Method Not Allowed"]
            return self.slack_handler(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return [b"Not Found"]


class HttpServer:
    """waitress in a background thread, so tests and the sandbox can start and stop it."""

    def __init__(self, app: WsgiApp, *, host: str = "0.0.0.0", port: int = 3000, threads: int = 8) -> None:
        from waitress.server import create_server

        self._server = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="tars",
            max_request_body_size=MAX_REQUEST_BODY_BYTES,
        )
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def port(self) -> int:
        return int(self._server.effective_port)  # type: ignore[union-attr]

    def serve_forever(self) -> None:
        self._server.run()

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self._run_until_stopped, name="tars-http", daemon=True)
        self._thread.start()
        return self

    def _run_until_stopped(self) -> None:
        try:
            self._server.run()
        except OSError:
            # Closing the sockets from stop() can interrupt the loop's select(); that is the stop, not a crash.
            if not self._stopping:
                raise

    def stop(self) -> None:
        self._stopping = True
        self._server.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
