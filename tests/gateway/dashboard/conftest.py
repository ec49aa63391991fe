"""Fixtures of the dashboard tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.gateway.dashboard.support import DashClient, make_accounts


@pytest.fixture
def dash(ctx: Any) -> Callable[[str], DashClient]:
    """``dash("op101")``: a client logged in as one of the standard accounts."""
    make_accounts(ctx)

    def login(username: str) -> DashClient:
        client = DashClient(ctx)
        response = client.login(username)
        assert response.status_code == 303, response.text
        assert "/login" not in response.headers["location"]
        return client

    return login
