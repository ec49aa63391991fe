"""Fixtures for the results-upstream tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from gateway.api.app import create_app
from gateway.context import Context
from tests.gateway.upstream.support import (
    CLIENTS,
    Api,
    Receiver,
    configure,
    endpoint,
    running_receiver,
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()


@pytest.fixture
def uctx(ctx: Context, receiver: Receiver) -> Context:
    """The test context with a webhook endpoint for county-finance (none for other-county)
    and both as API clients; quick retry timings."""
    return configure(
        ctx,
        webhooks={"county-finance": endpoint(receiver.url)},
        api_clients={k: SecretStr(v) for k, v in CLIENTS.items()},
    )


@pytest.fixture
def api(uctx: Context) -> Iterator[Api]:
    with TestClient(create_app(uctx)) as client:
        yield Api(client)
