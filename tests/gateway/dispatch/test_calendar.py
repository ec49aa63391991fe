"""Cut-offs and business days with dates from the calendar package (2026) and an
operator-loaded schedule (2027)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gateway.dispatch.calendar import (
    BankHours,
    UnknownYearError,
    WorkingCalendar,
    day_opens,
    dispatch_day,
    moved_past_cutoff,
)
from gateway.kit.clock import CHINA

CAL = WorkingCalendar()
HOURS = BankHours(cutoff=dt.time(16, 0))


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=CHINA)


def test_before_cutoff_on_a_working_day_goes_today() -> None:
    assert dispatch_day(at(2026, 11, 27, 15, 59), HOURS, CAL) == dt.date(2026, 11, 27)


def test_after_cutoff_goes_next_business_day() -> None:
    # Friday after 16:00 → Monday
    assert dispatch_day(at(2026, 11, 27, 16, 0), HOURS, CAL) == dt.date(2026, 11, 30)


def test_national_day_holiday_and_make_up_working_day() -> None:
    # 2026-09-30 after cut-off: 1–7 October are holidays, 8 October is the next working day
    assert dispatch_day(at(2026, 9, 30, 17), HOURS, CAL) == dt.date(2026, 10, 8)
    # Saturday 10 October 2026 is a make-up working day (调休)
    assert dispatch_day(at(2026, 10, 10, 9), HOURS, CAL) == dt.date(2026, 10, 10)


def test_naive_utc_is_converted_to_china_time() -> None:
    # 07:30 UTC is 15:30 in China: before the cut-off
    assert dispatch_day(dt.datetime(2026, 11, 27, 7, 30), HOURS, CAL) == dt.date(2026, 11, 27)
    assert dispatch_day(dt.datetime(2026, 11, 27, 8, 30), HOURS, CAL) == dt.date(2026, 11, 30)


def test_banks_that_work_every_day() -> None:
    every = BankHours(cutoff=dt.time(20, 0), every_day=True)
    assert dispatch_day(at(2026, 10, 1, 9), every, CAL) == dt.date(2026, 10, 1)


def test_late_december_batch_for_an_unknown_year_is_flagged_not_guessed() -> None:
    with pytest.raises(UnknownYearError, match="2027"):
        dispatch_day(at(2026, 12, 31, 17), HOURS, CAL)
    assert not CAL.knows(2027)


def test_operators_load_the_next_years_schedule(tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text('[years.2027]\nholidays = ["2027-01-01"]\nworkdays = ["2027-01-09"]\n')
    cal = WorkingCalendar.from_file(path)
    assert cal.knows(2027)
    # 31 Dec 2026 after cut-off → 1 Jan 2027 is a holiday → 2, 3 Jan weekend → Monday 4th
    assert dispatch_day(at(2026, 12, 31, 17), HOURS, cal) == dt.date(2027, 1, 4)
    # a make-up Saturday is a working day
    assert cal.is_working_day(dt.date(2027, 1, 9))


def test_bad_calendar_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text('[years.2027]\nholidays = ["2028-01-01"]\n')
    with pytest.raises(ValueError, match="listed under year 2027"):
        WorkingCalendar.from_file(path)


# --- never-sent work past the cut-off (issue 12) ----------------------------------------------


def test_work_still_unsent_moves_only_once_its_days_cutoff_passed() -> None:
    friday = dt.date(2026, 11, 27)
    assert moved_past_cutoff(friday, at(2026, 11, 27, 15, 59), HOURS, CAL) is None
    assert moved_past_cutoff(friday, at(2026, 11, 27, 16, 0), HOURS, CAL) == dt.date(2026, 11, 30)
    # past the holiday week to the first working day after it
    assert moved_past_cutoff(dt.date(2026, 9, 30), at(2026, 10, 3, 9), HOURS, CAL) == dt.date(
        2026, 10, 8
    )
    # naive UTC as stored: 08:30 UTC is 16:30 in China
    later = moved_past_cutoff(friday, dt.datetime(2026, 11, 27, 8, 30), HOURS, CAL)
    assert later == dt.date(2026, 11, 30)


def test_a_bank_without_a_cutoff_keeps_its_day_until_the_day_ends() -> None:
    anytime = BankHours(cutoff=None, every_day=True)
    day = dt.date(2026, 10, 1)
    assert moved_past_cutoff(day, at(2026, 10, 1, 23, 59), anytime, CAL) is None
    assert moved_past_cutoff(day, at(2026, 10, 2, 0, 0), anytime, CAL) == dt.date(2026, 10, 2)


def test_a_day_opens_at_midnight_in_china_stored_as_naive_utc() -> None:
    assert day_opens(dt.date(2026, 10, 8)) == dt.datetime(2026, 10, 7, 16, 0)
