"""The one place the gateway reads the time (tests and the demo may replace it)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")


def utcnow() -> dt.datetime:
    """Naive UTC: stored that way in the database (SQLite has no time zones)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def china_today() -> dt.date:
    return dt.datetime.now(CHINA).date()
