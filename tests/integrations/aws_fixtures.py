"""Helpers for AWS integration tests against a real moto server (server mode, no in-process mocking).

Test modules import these explicitly and wrap them in their own module-scoped fixture, so each module starts
one server and resets its state before every test.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
# moto accepts any credentials; passing them explicitly keeps tests independent of the developer's env.
_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@contextmanager
def moto_server() -> Iterator[str]:
    """Start a moto server on a free port and yield its endpoint URL."""
    # werkzeug logs every request to stderr; that drowns real failures in test output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def reset_moto(endpoint: str) -> None:
    """Wipe every backend. moto backends are process-global, so this also clears other servers' state."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, response.status


def client(endpoint: str, service: str, region: str | None = REGION) -> Any:
    """A boto3 client bound to the moto server; single attempt, as the production write clients are."""
    return boto3.client(
        service,
        region_name=region or REGION,
        endpoint_url=endpoint,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        **_CREDENTIALS,
    )


def client_factory(endpoint: str, service: str) -> Callable[[str | None], Any]:
    """The `client_factory` the integrations take: region -> client of `service` on the moto server."""
    return lambda region: client(endpoint, service, region)


class FakeClock:
    """Monotonic clock whose sleep() advances time instantly and records the requested delays."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
