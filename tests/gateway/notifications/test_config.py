"""Quiet hours (免打扰时段), sign names and template configuration."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gateway.kit.clock import CHINA
from gateway.notifications.config import SmsConfig, in_quiet_hours, quiet_until

NIGHT = (dt.time(21, 0), dt.time(8, 0))


def test_quiet_hours_wrap_midnight() -> None:
    assert in_quiet_hours(dt.time(21, 0), *NIGHT)
    assert in_quiet_hours(dt.time(23, 59), *NIGHT)
    assert in_quiet_hours(dt.time(0, 0), *NIGHT)
    assert in_quiet_hours(dt.time(7, 59), *NIGHT)
    assert not in_quiet_hours(dt.time(8, 0), *NIGHT)
    assert not in_quiet_hours(dt.time(20, 59), *NIGHT)
    assert in_quiet_hours(dt.time(13, 0), dt.time(12, 0), dt.time(14, 0))
    assert not in_quiet_hours(dt.time(15, 0), dt.time(12, 0), dt.time(14, 0))


def test_quiet_until_is_the_next_morning() -> None:
    late = dt.datetime(2026, 11, 28, 22, 30, tzinfo=CHINA)
    assert quiet_until(late, *NIGHT) == dt.datetime(2026, 11, 29, 8, 0, tzinfo=CHINA)
    early = dt.datetime(2026, 11, 29, 6, 0, tzinfo=CHINA)
    assert quiet_until(early, *NIGHT) == dt.datetime(2026, 11, 29, 8, 0, tzinfo=CHINA)
    assert quiet_until(dt.datetime(2026, 11, 29, 9, 0, tzinfo=CHINA), *NIGHT) is None


@given(st.times())
def test_quiet_or_not_matches_the_interval(t: dt.time) -> None:
    assert in_quiet_hours(t, *NIGHT) == (t >= NIGHT[0] or t < NIGHT[1])


def test_load_config_and_longest_prefix_sign_name(tmp_path: Path) -> None:
    path = tmp_path / "sms.toml"
    path.write_text(
        """[sms]
enabled = true
default_sign_name = "湖南省财政厅"
[sms.sign_names]
"4306" = "岳阳市财政局"
"430621" = "岳阳县财政局"
[sms.templates.paid]
template_id = "SMS_1"
text = "您的{subsidy}{amount}元已发放"
""",
        encoding="utf-8",
    )
    cfg = SmsConfig.load(path)
    assert cfg.enabled and cfg.templates["paid"].template_id == "SMS_1"
    assert cfg.sign_name_for("430621101") == "岳阳县财政局"
    assert cfg.sign_name_for("430602001") == "岳阳市财政局"
    assert cfg.sign_name_for("430100000") == "湖南省财政厅"
    assert SmsConfig.load(None).enabled is False
