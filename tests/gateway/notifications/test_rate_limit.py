"""The per-provider token bucket (pure timing logic, driven with a controlled clock)."""

from __future__ import annotations

import pytest

from gateway.notifications import service
from gateway.notifications.service import RateLimiter


def test_bucket_allows_the_rate_and_refills(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(service.time, "monotonic", lambda: now[0])
    limiter = RateLimiter(5)
    assert [limiter.take() for _ in range(7)] == [True] * 5 + [False] * 2
    now[0] += 0.2  # one token back
    assert limiter.take() is True
    assert limiter.take() is False
    now[0] += 10  # never more than one second's worth
    assert sum(limiter.take() for _ in range(20)) == 5
