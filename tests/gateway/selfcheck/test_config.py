"""The self-check configuration: defaults, the shipped example file, age arithmetic."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gateway.selfcheck.config import AgeRule, SelfCheckConfig, age_on, birth_date, period_end

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "selfcheck.example.toml"


def test_defaults_and_the_example_file() -> None:
    default = SelfCheckConfig.load(None)
    assert default == SelfCheckConfig()
    assert [r.label for r in default.rules_for("X", "高龄津贴")] == ["高龄津贴"]
    assert default.rules_for("GLJT", "其他") == []
    example = SelfCheckConfig.load(EXAMPLE)
    assert example.name_mismatch_min == 2 and example.account_change_window_days == 180
    assert [r.label for r in example.rules_for("GLJT", "老年补助")] == ["高龄津贴"]
    assert [r.min_age for r in example.rules_for("YL", "城乡居民基础养老金")] == [60]


def test_a_file_overrides_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "selfcheck.toml"
    path.write_text(
        '[selfcheck]\nname_mismatch_min = 3\n[[selfcheck.age_rules]]\nlabel = "残疾儿童"\n'
        'subsidy_codes = ["CJET"]\nmax_age = 17\n',
        encoding="utf-8",
    )
    config = SelfCheckConfig.load(path)
    assert config.name_mismatch_min == 3 and config.shared_account_min_people == 2
    assert config.age_rules == (AgeRule(label="残疾儿童", subsidy_codes=("CJET",), max_age=17),)
    assert config.age_rules[0].describe_zh() == "残疾儿童：不得超过17周岁"
    path.write_text('[[selfcheck.age_rules]]\nlabel = "x"\nmin_age = 1\n', encoding="utf-8")
    with pytest.raises(ValueError, match="names no subsidy"):
        SelfCheckConfig.load(path)
    with pytest.raises(ValueError):
        SelfCheckConfig(shared_account_min_people=1)


def test_ages_are_taken_on_the_last_day_of_the_period() -> None:
    assert period_end("2026", 2026) == dt.date(2026, 12, 31)
    assert period_end("202602", 2026) == dt.date(2026, 2, 28)
    assert period_end("2028Q1", 2028) == dt.date(2028, 3, 31)
    assert period_end("2026H1", 2026) == dt.date(2026, 6, 30)
    assert period_end("odd", 2025) == dt.date(2025, 12, 31)
    born = dt.date(1946, 11, 30)
    assert age_on(born, period_end("202611", 2026)) == 80
    assert age_on(born, period_end("202610", 2026)) == 79
    assert age_on(dt.date(2030, 1, 1), dt.date(2026, 12, 31)) == -4
    assert birth_date("430621194611300013") == born
    assert birth_date("430621194602300013") is None
