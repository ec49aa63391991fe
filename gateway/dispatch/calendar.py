"""Business days and cut-offs (营业日与截止时间).

China's working-day calendar — public holidays and the make-up working days (调休) that
move weekends — comes from the maintained ``chinese-calendar`` package. It only knows the
years whose official schedule the State Council has published; for a year it does not know
the gateway refuses to guess: ``UnknownYearError`` is raised and the batch waits, with an
operator case, until operators load that year's official schedule from a TOML file::

    # GATEWAY_CALENDAR_FILE, e.g. deploy/calendar.toml
    [years.2027]
    holidays = ["2027-01-01", "2027-02-05", "2027-02-06", ...]   # days off on weekdays too
    workdays = ["2027-02-14"]                                      # make-up working days

A year in the file overrides the package (so a corrected schedule can be loaded too).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import chinese_calendar

from gateway.kit.clock import CHINA


class UnknownYearError(LookupError):
    """The calendar does not know this year: load its official schedule, never guess."""

    def __init__(self, year: int) -> None:
        super().__init__(
            f"the working-day calendar has no official schedule for {year}; load it from the "
            f"calendar file (GATEWAY_CALENDAR_FILE) before batches for {year} can be dispatched"
        )
        self.year = year


@dataclass(frozen=True)
class YearSchedule:
    holidays: frozenset[dt.date]
    workdays: frozenset[dt.date]


@dataclass(frozen=True)
class WorkingCalendar:
    """Working days of mainland China, with operator-loaded years."""

    loaded: dict[int, YearSchedule] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path | None) -> WorkingCalendar:
        if path is None or not path.exists():
            return cls()
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        years: dict[int, YearSchedule] = {}
        for year, table in (data.get("years") or {}).items():
            y = int(year)
            holidays = frozenset(dt.date.fromisoformat(d) for d in table.get("holidays", []))
            workdays = frozenset(dt.date.fromisoformat(d) for d in table.get("workdays", []))
            for d in holidays | workdays:
                if d.year != y:
                    raise ValueError(f"calendar file: {d} is listed under year {y}")
            if holidays & workdays:
                raise ValueError(f"calendar file: {sorted(holidays & workdays)} both off and on")
            years[y] = YearSchedule(holidays, workdays)
        return cls(years)

    def is_working_day(self, day: dt.date) -> bool:
        schedule = self.loaded.get(day.year)
        if schedule is not None:
            if day in schedule.workdays:
                return True
            if day in schedule.holidays:
                return False
            return day.weekday() < 5
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            raise UnknownYearError(day.year) from None

    def knows(self, year: int) -> bool:
        if year in self.loaded:
            return True
        try:
            chinese_calendar.is_workday(dt.date(year, 1, 1))
        except NotImplementedError:
            return False
        return True


@dataclass(frozen=True)
class BankHours:
    """A bank's cut-off (截止时间; None: the bank takes files at any hour) and whether it
    works every day of the year."""

    cutoff: dt.time | None = dt.time(16, 0)
    every_day: bool = False

    @classmethod
    def parse(cls, cutoff: str | None, every_day: bool) -> BankHours:
        if cutoff in (None, "", "none"):
            return cls(None, every_day)
        return cls(dt.time.fromisoformat(str(cutoff)), every_day)


def dispatch_day(
    received_at: dt.datetime, hours: BankHours, calendar: WorkingCalendar, *, max_days: int = 60
) -> dt.date:
    """The business day a batch received at ``received_at`` (aware, or naive UTC) is sent on:
    the same day if it is a business day and before the cut-off, else the next business day.
    Raises UnknownYearError when a day to be decided falls in a year nobody knows."""
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=dt.UTC)
    local = received_at.astimezone(CHINA)
    day = local.date()
    if hours.cutoff is not None and local.time() >= hours.cutoff:
        day += dt.timedelta(days=1)
    for _ in range(max_days):
        if hours.every_day or calendar.is_working_day(day):
            return day
        day += dt.timedelta(days=1)
    raise RuntimeError(f"no business day within {max_days} days of {local.date()}")


def moved_past_cutoff(
    day: dt.date, now: dt.datetime, hours: BankHours, calendar: WorkingCalendar
) -> dt.date | None:
    """The business day that work meant for ``day`` and still unsent at ``now`` (aware, or
    naive UTC) now goes out on, or None while ``day``'s cut-off has not passed. A bank
    without a cut-off keeps a day until it ends. Raises UnknownYearError like
    ``dispatch_day``."""
    later = dispatch_day(now, hours, calendar)
    return later if later > day else None


def day_opens(day: dt.date) -> dt.datetime:
    """When ``day`` begins in China, as naive UTC (how the database stores times)."""
    start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=CHINA)
    return start.astimezone(dt.UTC).replace(tzinfo=None)
