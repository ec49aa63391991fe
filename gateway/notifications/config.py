"""SMS configuration (a TOML file named by ``GATEWAY_SMS_FILE``): provider, templates, sign
names per county, quiet hours, rate limit, which notices are on.

    [sms]
    enabled = true
    notify_failures = true           # also tell people whose payment failed and who must act
    quiet_start = "21:00"            # Asia/Shanghai; no SMS from quiet_start to quiet_end
    quiet_end = "08:00"
    rate_per_second = 10             # per provider, per worker process
    default_sign_name = "岳阳县财政局"

    [sms.sign_names]                 # region code prefix → sign name (longest prefix wins)
    "430621" = "岳阳县财政局"

    [sms.provider]                   # passed to adapters.registry.build_sms_provider
    provider = "aliyun-style"
    base_url = "https://…"

    [sms.templates.paid]
    template_id = "SMS_PAID_001"
    text = "您的{subsidy}{amount}元已于{date}发放至尾号{last4}的一卡通账户，请注意查收。"

    [sms.templates.failed]
    template_id = "SMS_FAIL_001"
    text = "您的{subsidy}{amount}元未能发放（{reason}），请携带身份证和一卡通到乡镇财政所办理。"

The ``text`` is what the provider's approved template says (for the record and for tests);
the provider renders it from ``template_id`` and the parameters.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SmsTemplate:
    template_id: str
    text: str


@dataclass(frozen=True)
class SmsConfig:
    enabled: bool = False
    notify_failures: bool = False
    quiet_start: dt.time = dt.time(21, 0)
    quiet_end: dt.time = dt.time(8, 0)
    rate_per_second: float = 10.0
    default_sign_name: str = ""
    sign_names: dict[str, str] = field(default_factory=dict)
    provider: dict[str, Any] = field(default_factory=dict)
    templates: dict[str, SmsTemplate] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> SmsConfig:
        if path is None:
            return cls()
        data = tomllib.loads(path.read_text(encoding="utf-8")).get("sms", {})
        templates = {
            name: SmsTemplate(str(t["template_id"]), str(t.get("text", "")))
            for name, t in (data.get("templates") or {}).items()
        }
        return cls(
            enabled=bool(data.get("enabled", False)),
            notify_failures=bool(data.get("notify_failures", False)),
            quiet_start=dt.time.fromisoformat(str(data.get("quiet_start", "21:00"))),
            quiet_end=dt.time.fromisoformat(str(data.get("quiet_end", "08:00"))),
            rate_per_second=float(data.get("rate_per_second", 10.0)),
            default_sign_name=str(data.get("default_sign_name", "")),
            sign_names={str(k): str(v) for k, v in (data.get("sign_names") or {}).items()},
            provider=dict(data.get("provider") or {}),
            templates=templates,
        )

    def sign_name_for(self, region_code: str) -> str:
        best = ""
        for prefix in self.sign_names:
            if region_code.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.sign_names.get(best, self.default_sign_name)


def in_quiet_hours(local: dt.time, start: dt.time, end: dt.time) -> bool:
    """Whether ``local`` (Asia/Shanghai wall time) is inside [start, end), wrapping midnight."""
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_until(now_local: dt.datetime, start: dt.time, end: dt.time) -> dt.datetime | None:
    """When the quiet period containing ``now_local`` ends (aware), or None if not quiet."""
    if not in_quiet_hours(now_local.timetz().replace(tzinfo=None), start, end):
        return None
    candidate = now_local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if candidate <= now_local:
        candidate += dt.timedelta(days=1)
    return candidate
