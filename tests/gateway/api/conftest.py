"""Fixtures of the API transport tests: a gateway with every demo bank profile and an SMS
provider on a real database (``support.transport_context``), the app in-process (httpx
``TestClient``); over real HTTP it is ``gateway_http`` of ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.context import Context
from tests.gateway.api.support import Signed, signed_app, transport_context


@pytest.fixture
def ctx(db_url: str, tmp_path: Path, dev_keys: Path) -> Iterator[Context]:
    yield from transport_context(db_url, tmp_path, dev_keys)


@pytest.fixture
def api(ctx: Context) -> Iterator[Signed]:
    yield from signed_app(ctx)
