"""HTTP: `/slack/events` for Bolt (behind `bot.ingress.front_door`), `/healthz` for the orchestrator; waitress."""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine

from bot.core.database import database_reachable, schema_head, schema_version
from bot.core.metrics import exposition

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SignalRoutes(Protocol):
    """The `/signals/...` endpoints (bot.ingress.signal_endpoints)."""

    def handles(self, path: str) -> bool: ...

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]: ...


SLACK_PATH = "/slack/events"
# waitress refuses (413) larger bodies itself, before buffering them; the front door's own cap is lower.
MAX_REQUEST_BODY_BYTES = 4 * 1024 * 1024


class TarsWsgi:
    """Routes requests; `slack_handler` is the front door wrapping Bolt (None in Socket Mode)."""

    def __init__(
        self, engine: Engine, slack_handler: WsgiApp | None, *, signals: SignalRoutes | None = None
    ) -> None:
        self.engine = engine
        self.slack_handler = slack_handler
        self.signals = signals
        # Set when Socket Mode is on: readiness then also needs the connection to Slack to be up.
        self.socket_mode_connected: Callable[[], bool] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in _PROBES and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            checks = self._checks(path)
            ready = all(checks.values())
            body = json.dumps({"status": "ok" if ready else "unavailable", **checks}).encode()
            status = "200 OK" if ready else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/metrics" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            body = exposition(self.engine)
            start_response(
                "200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
            )
            return [body]
        if self.signals is not None and self.signals.handles(path):
            return self.signals(environ, start_response)
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

    def _checks(self, probe: str) -> dict[str, bool]:
        if probe == "/livez":  # the process answers: nothing else is asked of it, or it would be restarted
            return {}
        if probe == "/healthz":
            return {"database": database_reachable(self.engine)}
        reachable = database_reachable(self.engine)
        checks = {
            "database": reachable,
            "migrations": reachable and schema_version(self.engine) == schema_head(),
        }
        if self.socket_mode_connected is not None:
            checks["socket_mode"] = self.socket_mode_connected()
        return checks


# /livez: alive (restart when not); /readyz: may take traffic (database, schema, Slack connection);
# /healthz: the database, as before, for the Docker HEALTHCHECK.
_PROBES = ("/livez", "/readyz", "/healthz")


class PortInUse(Exception):
    """Another process listens on the port TARS was told to use."""


def bind_listener(port: int, host: str = "0.0.0.0") -> socket.socket:
    """The listening socket, bound now: a taken port is a one-line error, not a traceback after start-up."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} is already in use (set PORT to another one)") from None
        raise
    listener.listen(1024)
    listener.setblocking(False)
    return listener


class HttpServer:
    """waitress in a background thread, so tests and the sandbox can start and stop it."""

    def __init__(
        self,
        app: WsgiApp,
        *,
        host: str = "0.0.0.0",
        port: int = 3000,
        threads: int = 8,
        listener: socket.socket | None = None,
    ) -> None:
        from waitress.server import create_server

        where: dict[str, Any] = (
            {"sockets": [listener]} if listener is not None else {"host": host, "port": port}
        )
        self._server = create_server(
            app,
            **where,
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
