"""One moto server for the AWS integration tests; every test that asks for `endpoint` starts from empty state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integrations.aws_fixtures import moto_server, reset_moto


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def endpoint(moto_url: str) -> str:
    reset_moto(moto_url)
    return moto_url
