"""The worker's quarterly self-check: once per calendar quarter (Asia/Shanghai), over the
previous quarter, whatever the number of workers or cycles."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from gateway.context import Context
from gateway.kit.leases import JobLease
from gateway.selfcheck.service import (
    QUARTERLY_JOB,
    list_reports,
    previous_quarter,
    run_selfcheck,
    selfcheck_step,
)


def test_previous_quarter() -> None:
    assert previous_quarter(dt.date(2026, 11, 28)) == (dt.date(2026, 7, 1), dt.date(2026, 9, 30))
    assert previous_quarter(dt.date(2027, 1, 1)) == (dt.date(2026, 10, 1), dt.date(2026, 12, 31))
    assert previous_quarter(dt.date(2026, 6, 30)) == (dt.date(2026, 1, 1), dt.date(2026, 3, 31))


def test_one_quarterly_run_per_quarter(ctx: Context) -> None:
    today = dt.date(2026, 11, 28)
    # a manual run over the same quarter does not count as the quarterly one
    run_selfcheck(ctx, requested_by="审计员", since=dt.date(2026, 7, 1), until=dt.date(2026, 9, 30))
    assert selfcheck_step(ctx, "worker-1", today=today) == 1
    assert selfcheck_step(ctx, "worker-1", today=today) == 0
    assert selfcheck_step(ctx, "worker-2", today=dt.date(2026, 12, 31)) == 0
    quarterly = [r for r in list_reports(ctx) if r.trigger == "quarterly"]
    assert [(r.period_from, r.period_to, r.requested_by) for r in quarterly] == [
        (dt.date(2026, 7, 1), dt.date(2026, 9, 30), "worker-1")
    ]
    # the next quarter: once more
    assert selfcheck_step(ctx, "worker-2", today=dt.date(2027, 1, 2)) == 1
    assert selfcheck_step(ctx, "worker-1", today=dt.date(2027, 3, 31)) == 0
    assert len([r for r in list_reports(ctx) if r.trigger == "quarterly"]) == 2
    with ctx.sessions() as s:
        lease = s.scalars(select(JobLease).where(JobLease.name == QUARTERLY_JOB)).one()
    assert lease.until is None  # released after each run


def test_a_claimed_quarter_is_left_to_its_worker(ctx: Context) -> None:
    from gateway.kit.db import session_scope
    from gateway.kit.leases import claim_job

    with session_scope(ctx.sessions) as s:
        assert claim_job(s, QUARTERLY_JOB, "worker-1", 600)
    assert selfcheck_step(ctx, "worker-2", today=dt.date(2026, 11, 28)) == 0
    assert list_reports(ctx) == []
