from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adapters.sms.fake_provider import FakeProvider


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server
