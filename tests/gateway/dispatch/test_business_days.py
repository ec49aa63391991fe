"""The planner sends a batch on its business day; a year the calendar does not know holds
batches with an operator case until its schedule is loaded."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from sqlalchemy import select, update

from gateway.batches.models import Batch
from gateway.context import Context
from gateway.dispatch.calendar import BankHours, WorkingCalendar
from gateway.dispatch.service import plan_one, settle_dispatch_days
from gateway.feedback.models import OperatorCase
from gateway.kit.clock import china_today
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import submit


def _office_hours(ctx: Context) -> None:
    profile = ctx.profiles["hnrcu"]
    ctx.profiles["hnrcu"] = dataclasses.replace(profile, hours=BankHours(dt.time(16, 0)))


def test_batch_waits_for_its_business_day(ctx: Context) -> None:
    submit(ctx, payload("BD-1", persons(2)))
    tomorrow = china_today() + dt.timedelta(days=1)
    with ctx.sessions() as s:
        s.execute(update(Batch).values(dispatch_on=tomorrow))
        s.commit()
    assert not plan_one(ctx, "t")
    with ctx.sessions() as s:
        s.execute(update(Batch).values(dispatch_on=china_today()))
        s.commit()
    assert plan_one(ctx, "t")


def test_unknown_year_opens_one_case_then_settles_when_loaded(ctx: Context, tmp_path: Path) -> None:
    _office_hours(ctx)
    submit(ctx, payload("BD-2", persons(2)))
    new_year_eve = dt.datetime(2026, 12, 31, 9, 30)  # 17:30 in China: after the cut-off
    with ctx.sessions() as s:
        s.execute(update(Batch).values(received_at=new_year_eve, dispatch_on=None))
        s.commit()
    assert settle_dispatch_days(ctx) == 0
    assert settle_dispatch_days(ctx) == 0  # still one case, not two
    with ctx.sessions() as s:
        cases = s.scalars(select(OperatorCase)).all()
    assert [c.kind for c in cases] == ["calendar_unknown_year"]
    assert "2027" in cases[0].summary
    assert not plan_one(ctx, "t")

    path = tmp_path / "calendar.toml"
    path.write_text('[years.2027]\nholidays = ["2027-01-01"]\nworkdays = []\n')
    ctx.calendar = WorkingCalendar.from_file(path)
    assert settle_dispatch_days(ctx) == 1
    with ctx.sessions() as s:
        assert s.scalar(select(Batch.dispatch_on)) == dt.date(2027, 1, 4)


def test_intake_sets_the_dispatch_day(ctx: Context) -> None:
    submit(ctx, payload("BD-3", persons(1)))
    with ctx.sessions() as s:
        assert s.scalar(select(Batch.dispatch_on)) == china_today()
