"""Self-check thresholds and age rules (a TOML file named by ``GATEWAY_SELFCHECK_FILE``).

    [selfcheck]
    shared_account_min_people = 2       # one account, this many different recipients
    name_mismatch_min = 2               # one account, this many 户名不符 failures (batches)
    account_change_window_days = 180    # account differs from one received this recently
    min_age = 16                        # any subsidy: younger than this is implausible
    max_age = 120                       # any subsidy: older than this is implausible

    [[selfcheck.age_rules]]             # replaces the built-in rules when present
    label = "高龄津贴"
    name_keywords = ["高龄"]            # matched in the subsidy name …
    subsidy_codes = ["GLJT"]            # … or by subsidy code
    min_age = 80

Ages are completed years on the last day of the payment's period (``2026`` → 31 Dec 2026,
``202611`` → 30 Nov 2026, ``2026Q3`` → 30 Sep 2026, ``2026H1`` → 30 Jun 2026).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PERIOD = re.compile(r"^(\d{4})(?:(0[1-9]|1[0-2])|Q([1-4])|H([12]))?$")


@dataclass(frozen=True)
class AgeRule:
    """Who may receive a subsidy, by age: it applies to payments whose subsidy code is one
    of ``subsidy_codes`` or whose subsidy name contains one of ``name_keywords``."""

    label: str
    subsidy_codes: tuple[str, ...] = ()
    name_keywords: tuple[str, ...] = ()
    min_age: int | None = None
    max_age: int | None = None

    def applies_to(self, subsidy_code: str, subsidy_name: str) -> bool:
        return subsidy_code in self.subsidy_codes or any(
            k and k in subsidy_name for k in self.name_keywords
        )

    def describe_zh(self) -> str:
        """``高龄津贴：须年满80周岁``."""
        parts = []
        if self.min_age is not None:
            parts.append(f"须年满{self.min_age}周岁")
        if self.max_age is not None:
            parts.append(f"不得超过{self.max_age}周岁")
        return f"{self.label}：{'，'.join(parts) or '无年龄限制'}"


DEFAULT_AGE_RULES = (AgeRule(label="高龄津贴", name_keywords=("高龄",), min_age=80),)


@dataclass(frozen=True)
class SelfCheckConfig:
    shared_account_min_people: int = 2
    name_mismatch_min: int = 2
    account_change_window_days: int = 180
    min_age: int = 16
    max_age: int = 120
    age_rules: tuple[AgeRule, ...] = field(default=DEFAULT_AGE_RULES)

    def __post_init__(self) -> None:
        if self.shared_account_min_people < 2:
            raise ValueError("shared_account_min_people must be at least 2")
        if self.name_mismatch_min < 1 or self.account_change_window_days < 0:
            raise ValueError("name_mismatch_min ≥ 1 and account_change_window_days ≥ 0")
        if not 0 <= self.min_age < self.max_age:
            raise ValueError("0 ≤ min_age < max_age")

    @classmethod
    def load(cls, path: Path | None) -> SelfCheckConfig:
        """The configuration in ``path`` (built-in defaults for what it leaves out)."""
        if path is None:
            return cls()
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8")).get("selfcheck", {})
        values: dict[str, Any] = {
            key: int(data[key])
            for key in (
                "shared_account_min_people",
                "name_mismatch_min",
                "account_change_window_days",
                "min_age",
                "max_age",
            )
            if key in data
        }
        if "age_rules" in data:
            values["age_rules"] = tuple(_age_rule(r) for r in data["age_rules"])
        return cls(**values)

    def rules_for(self, subsidy_code: str, subsidy_name: str) -> list[AgeRule]:
        return [r for r in self.age_rules if r.applies_to(subsidy_code, subsidy_name)]


def _age_rule(raw: dict[str, Any]) -> AgeRule:
    def optional_int(key: str) -> int | None:
        return None if raw.get(key) is None else int(raw[key])

    rule = AgeRule(
        label=str(raw["label"]),
        subsidy_codes=tuple(str(c) for c in raw.get("subsidy_codes", ())),
        name_keywords=tuple(str(k) for k in raw.get("name_keywords", ())),
        min_age=optional_int("min_age"),
        max_age=optional_int("max_age"),
    )
    if not (rule.subsidy_codes or rule.name_keywords):
        raise ValueError(f"age rule {rule.label!r} names no subsidy code and no keyword")
    return rule


def period_end(period: str, fiscal_year: int) -> dt.date:
    """The last day of a payment period (``2026``, ``202611``, ``2026Q3``, ``2026H1``); the
    fiscal year's last day when the period is not one of those shapes."""
    match = _PERIOD.match(period)
    if match is None:
        return dt.date(fiscal_year, 12, 31)
    year = int(match.group(1))
    month = 12
    if match.group(2):
        month = int(match.group(2))
    elif match.group(3):
        month = 3 * int(match.group(3))
    elif match.group(4):
        month = 6 * int(match.group(4))
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def age_on(birth: dt.date, day: dt.date) -> int:
    """Completed years of someone born on ``birth`` on ``day`` (negative before birth)."""
    years = day.year - birth.year
    if (day.month, day.day) < (birth.month, birth.day):
        years -= 1
    return years


def birth_date(id_number: str) -> dt.date | None:
    """The birth date in an 18-character ID number (characters 7–14), None if invalid."""
    try:
        return dt.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        return None
