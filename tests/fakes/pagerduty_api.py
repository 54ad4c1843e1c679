"""A PagerDuty Events API v2 endpoint on loopback: records triggers, answers like PagerDuty."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakePagerDuty:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    failure = fake._failures.pop(0) if fake._failures else None
                    if failure is None and _valid(body):
                        fake.events.append(body)
                if failure is not None:
                    self._answer(failure, {"status": "error", "message": "injected failure"})
                elif not _valid(body):
                    self._answer(400, {"status": "invalid event", "message": "Event object is invalid"})
                else:
                    self._answer(
                        202,
                        {"status": "success", "message": "Event processed", "dedup_key": body["dedup_key"]},
                    )

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v2/enqueue"

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def __enter__(self) -> FakePagerDuty:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _valid(body: dict[str, Any]) -> bool:
    payload = body.get("payload") or {}
    return (
        bool(body.get("routing_key"))
        and body.get("event_action") in ("trigger", "acknowledge", "resolve")
        and bool(payload.get("summary"))
        and payload.get("severity") in ("critical", "error", "warning", "info")
        and bool(payload.get("source"))
    )
