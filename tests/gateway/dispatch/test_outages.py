"""A bank that refuses connections (issue 12), for each bank kind — fixed-width over SFTP
(``hnrcu``), ISO 20022 over SFTP (``psbc``), the HTTPS open API (``abc``) — through real
worker cycles against the mock bank with its listeners closed (every TCP connect refused),
on SQLite and PostgreSQL.

Nothing left the gateway while the bank refused, so nothing may become an unknown outcome
or be held for a person: the work is retried with backoff for as long as the bank's
cut-off allows and goes out by itself when the bank is back. An outage longer than the
quick-retry budget opens one ``never_sent`` case that tells the operator (and closes by
itself when the work goes out); the items stay queued and upstream hears of no hold. The
rule itself is ``docs/delivery-errors.md``."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select, update

from gateway.batches.models import Batch, ItemEventRecord, PaymentItem
from gateway.context import Context
from gateway.dispatch.calendar import BankHours, WorkingCalendar, YearSchedule, dispatch_day
from gateway.dispatch.models import OutboundFile
from gateway.dispatch.service import deliver_one, plan_one
from gateway.feedback.models import OperatorCase
from gateway.kit.clock import CHINA, china_today
from gateway.payments.states import FileState, ItemState
from gateway.ports import OutcomeUnknownError
from gateway.worker import run_cycle
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, states, submit
from tests.waits import wait_until

PEOPLE = persons(8, seed=1212)
BUDGET = 4  # quick attempts before the operator is told (delivery_max_attempts)
NEVER_SENT_ZH = "系统将继续自动重试"


@pytest.fixture
def accounts() -> list[dict[str, str]]:
    """Every bank pays all but one of the people (a frozen card): paid and failed both."""
    return [
        {
            "account_no": p.account_no,
            "name": p.name,
            "id_number": p.id_number,
            "status": "frozen" if i % 4 == 1 else "active",
        }
        for i, p in enumerate(PEOPLE)
    ]


@pytest.fixture(autouse=True)
def _small_budgets(ctx: Context) -> None:
    ctx.settings.delivery_max_attempts = BUDGET
    ctx.settings.inquiry_max_attempts = 2
    # short waits, yet long enough that a worker cycle makes one attempt of a file, not
    # several (the deliver step takes a file again only once it is due)
    ctx.settings.retry_initial_seconds = 0.1
    ctx.settings.retry_max_seconds = 0.2


def _body(no: str, profile: str, people: list[Any]) -> dict[str, Any]:
    body = payload(no, people)
    body["header"]["bank_profile"] = profile
    return body


def _file(ctx: Context, no: str) -> OutboundFile:
    with ctx.sessions() as s:
        f = s.scalar(
            select(OutboundFile)
            .join(Batch, Batch.id == OutboundFile.batch_id)
            .where(Batch.batch_no == no)
        )
    assert f is not None
    return f


def _cases(ctx: Context) -> list[OperatorCase]:
    with ctx.sessions() as s:
        return list(s.scalars(select(OperatorCase).order_by(OperatorCase.id)))


def _reached_states(ctx: Context, no: str) -> set[str]:
    """Every state the batch's items were ever moved to (the append-only event trail)."""
    with ctx.sessions() as s:
        return set(
            s.scalars(
                select(ItemEventRecord.to_state)
                .join(PaymentItem, PaymentItem.id == ItemEventRecord.item_id)
                .join(Batch, Batch.id == PaymentItem.batch_id)
                .where(Batch.batch_no == no)
                .distinct()
            )
        )


def _item_states(ctx: Context, no: str) -> dict[str, int]:
    with ctx.sessions() as s:
        rows = s.execute(
            select(PaymentItem.state, func.count())
            .join(Batch, Batch.id == PaymentItem.batch_id)
            .where(Batch.batch_no == no)
            .group_by(PaymentItem.state)
        ).all()
    return {st: int(n) for st, n in rows}


def _cycles_until_attempts(ctx: Context, no: str, n: int) -> None:
    def attempted() -> bool:
        run_cycle(ctx, "w1")
        return _file(ctx, no).attempts >= n

    wait_until(attempted, timeout=60, what=f"{n} delivery attempts of {no}")


def _cycles_until_a_case(ctx: Context) -> OperatorCase:
    def opened() -> OperatorCase | None:
        run_cycle(ctx, "w1")
        cases = _cases(ctx)
        return cases[0] if cases else None

    return wait_until(opened, timeout=60, what="an operator case")


def _paid_once(ctx: Context, bank: Any, paid_before: int = 0) -> None:
    now = states(ctx)
    assert set(now) <= {ItemState.PAID.value, ItemState.FAILED.value}, now
    summary = bank.ledger.summary()
    assert summary["double_credits"] == 0
    assert summary["credits"] == now.get(ItemState.PAID.value, 0) + paid_before


def _outages(ctx: Context, bank: Any, profile: str) -> None:
    """The bank down for less than the budget, back; then down for longer, back."""
    # --- shorter than the budget: retried, never unknown, nothing for a person -----------
    bank.close_listeners()
    submit(ctx, _body("OUT-S", profile, PEOPLE[:4]))
    _cycles_until_attempts(ctx, "OUT-S", 2)  # the API bank inquires before a 2nd send
    f = _file(ctx, "OUT-S")
    assert f.state == FileState.PLANNED, f.last_error
    assert _item_states(ctx, "OUT-S") == {ItemState.QUEUED.value: 4}
    assert _cases(ctx) == []
    bank.open_listeners()
    drive(ctx)
    assert _item_states(ctx, "OUT-S") == {ItemState.PAID.value: 3, ItemState.FAILED.value: 1}
    assert _reached_states(ctx, "OUT-S").isdisjoint({"unknown", "operator_case"})
    assert _cases(ctx) == []
    _paid_once(ctx, bank)

    # --- longer than the budget: one case that says it goes on, then it goes out ---------
    bank.close_listeners()
    submit(ctx, _body("OUT-L", profile, PEOPLE[4:]))
    case = _cycles_until_a_case(ctx)
    assert case.kind == "never_sent", (case.kind, case.summary)
    assert NEVER_SENT_ZH in case.summary and case.state == "open"
    f = _file(ctx, "OUT-L")
    assert case.outbound_file_id == f.id
    assert f.state == FileState.PLANNED and f.attempts >= BUDGET
    # the items are not held: they wait in the queue, and upstream hears of no hold
    assert _item_states(ctx, "OUT-L") == {ItemState.QUEUED.value: 4}
    # still retried by itself, past the budget, without a second case
    _cycles_until_attempts(ctx, "OUT-L", BUDGET + 2)
    assert [c.id for c in _cases(ctx)] == [case.id]
    assert _file(ctx, "OUT-L").state == FileState.PLANNED
    bank.open_listeners()
    drive(ctx)
    assert _item_states(ctx, "OUT-L") == {ItemState.PAID.value: 3, ItemState.FAILED.value: 1}
    assert _reached_states(ctx, "OUT-L").isdisjoint({"unknown", "operator_case"})
    [closed] = _cases(ctx)
    assert closed.state == "closed" and closed.closed_by == "system"
    assert closed.closed_at is not None and "已送达银行" in (closed.close_reason or "")
    _paid_once(ctx, bank)


def test_fixed_width_sftp_bank_outages(ctx: Context, bank: Any) -> None:
    _outages(ctx, bank, "hnrcu")


def test_iso20022_sftp_bank_outages(ctx: Context, iso_bank: Any) -> None:
    _outages(ctx, iso_bank, "psbc")


def test_https_api_bank_outages(ctx: Context, api_bank: Any) -> None:
    _outages(ctx, api_bank, "abc")


def test_an_api_bank_refusing_from_the_first_send_is_never_an_unknown_outcome(
    ctx: Context, api_bank: Any
) -> None:
    """The issue's case: the HTTPS bank refuses TCP connects at the first send and after.
    No attempt reached it, so no inquiry budget is spent and no item becomes unknown."""
    ctx.settings.delivery_max_attempts = 50
    api_bank.close_listeners()
    submit(ctx, _body("OUT-API", "abc", PEOPLE[:3]))
    _cycles_until_attempts(ctx, "OUT-API", 6)  # three times the inquiry budget
    f = _file(ctx, "OUT-API")
    assert (f.state, f.inquiries) == (FileState.PLANNED, 0), f.last_error
    assert "NeverSent" in (f.last_error or "")
    assert _cases(ctx) == []
    api_bank.open_listeners()
    drive(ctx)
    assert _reached_states(ctx, "OUT-API").isdisjoint({"unknown", "operator_case"})
    _paid_once(ctx, api_bank)


class _RenameReplyLost:
    """The real SFTP transport, except that the data file's rename reply is lost once: the
    file is on the bank's server, and the gateway does not know it."""

    def __init__(self, real: Any, budget: dict[str, int]) -> None:
        self.real = real
        self.budget = budget

    def __enter__(self) -> _RenameReplyLost:
        self.real.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.real.__exit__(*exc)

    def put_atomic(self, directory: str, name: str, data: bytes) -> None:
        self.real.put_atomic(directory, name, data)
        if not name.endswith(".sig") and self.budget["n"] > 0:
            self.budget["n"] -= 1
            raise OutcomeUnknownError("connection dropped before the rename reply")

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.real, attr)


def test_an_unknown_upload_waits_out_an_outage_without_spending_its_inquiries(
    ctx: Context, bank: Any
) -> None:
    """A file whose upload outcome is unknown, then a bank that refuses connections: an
    inquiry that never reached the bank is no inquiry. The file stays unknown (never
    re-uploaded blindly), and is settled by the far-side check once the bank is back."""
    profile = ctx.profiles["hnrcu"]
    budget = {"n": 1}
    real_open = profile.open_transport
    profile.open_transport = lambda: _RenameReplyLost(real_open(), budget)  # type: ignore[method-assign]
    submit(ctx, _body("OUT-U", "hnrcu", PEOPLE[:2]))
    plan_one(ctx, "w1")
    assert deliver_one(ctx, "w1")
    assert _file(ctx, "OUT-U").state == FileState.UNKNOWN
    bank.close_listeners()
    _cycles_until_attempts(ctx, "OUT-U", 1 + BUDGET + 1)
    f = _file(ctx, "OUT-U")
    assert (f.state, f.inquiries) == (FileState.UNKNOWN, 0), f.last_error
    [case] = _cases(ctx)
    assert case.kind == "never_sent" and case.state == "open"
    assert _item_states(ctx, "OUT-U") == {ItemState.UNKNOWN.value: 2}
    bank.open_listeners()
    drive(ctx)
    assert _file(ctx, "OUT-U").state == FileState.DELIVERED
    assert bank.ledger.summary()["files_processed"] == 1  # found there, not sent again
    _paid_once(ctx, bank)
    assert [c.state for c in _cases(ctx)] == ["closed"]


class _DownAfterUpload(_RenameReplyLost):
    """The real SFTP transport; the bank goes off the network right after our data file
    landed, before the gateway could look at it."""

    def __init__(self, real: Any, bank: Any, budget: dict[str, int]) -> None:
        super().__init__(real, budget)
        self.bank = bank

    def put_atomic(self, directory: str, name: str, data: bytes) -> None:
        self.real.put_atomic(directory, name, data)
        if not name.endswith(".sig") and self.budget["n"] > 0:
            self.budget["n"] -= 1
            self.bank.close_listeners()  # the session is cut: the next look is refused


def test_a_look_at_the_far_side_refused_after_the_upload_is_an_unknown_outcome(
    ctx: Context, bank: Any
) -> None:
    """Refused, but after the file left: that proves nothing about the file, so it is an
    unknown outcome (inquire), never a never-sent attempt."""
    profile = ctx.profiles["hnrcu"]
    budget = {"n": 1}
    real_open = profile.open_transport
    profile.open_transport = lambda: _DownAfterUpload(real_open(), bank, budget)  # type: ignore[method-assign]
    submit(ctx, _body("OUT-V", "hnrcu", PEOPLE[:2]))
    plan_one(ctx, "w1")
    assert deliver_one(ctx, "w1")
    f = _file(ctx, "OUT-V")
    assert f.state == FileState.UNKNOWN and f.never_sent_streak == 0, f.last_error
    assert _item_states(ctx, "OUT-V") == {ItemState.UNKNOWN.value: 2}
    bank.open_listeners()
    drive(ctx)
    assert _file(ctx, "OUT-V").state == FileState.DELIVERED
    assert bank.ledger.summary()["files_processed"] == 1
    _paid_once(ctx, bank)


def _next_business_day_after(ctx: Context, day: dt.date, hours: BankHours) -> dt.date:
    after_cutoff = dt.datetime.combine(day, dt.time(23, 59), tzinfo=CHINA)
    return dispatch_day(after_cutoff, hours, ctx.calendar)


def test_past_the_cutoff_the_work_moves_to_the_next_business_day(ctx: Context, bank: Any) -> None:
    """A bank with a 00:00 cut-off on China's working days: whatever the hour, today's
    cut-off has passed, so never-sent work moves to the next business day (the calendar's)
    and waits for it; the case names that day. When the day comes it goes out."""
    today = china_today()
    if not ctx.calendar.knows(today.year + 1):  # so that 31 December has a next day too
        weekdays = YearSchedule(holidays=frozenset(), workdays=frozenset())
        ctx.calendar = WorkingCalendar({**ctx.calendar.loaded, today.year + 1: weekdays})
    submit(ctx, _body("OUT-C", "hnrcu", PEOPLE[:2]))
    plan_one(ctx, "w1")
    bank.close_listeners()
    profile = ctx.profiles["hnrcu"]
    hours = BankHours(cutoff=dt.time(0, 0), every_day=False)
    ctx.profiles["hnrcu"] = dataclasses.replace(profile, hours=hours)
    assert deliver_one(ctx, "w1")
    new_day = _next_business_day_after(ctx, today, hours)
    with ctx.sessions() as s:
        batch = s.scalar(select(Batch).where(Batch.batch_no == "OUT-C"))
    assert batch is not None and batch.dispatch_on == new_day
    f = _file(ctx, "OUT-C")
    opens = dt.datetime.combine(new_day, dt.time(0, 0), tzinfo=CHINA)
    assert f.state == FileState.PLANNED
    assert f.next_attempt_at >= opens.astimezone(dt.UTC).replace(tzinfo=None)
    [case] = _cases(ctx)
    assert case.kind == "never_sent" and new_day.isoformat() in case.summary
    assert new_day.isoformat() in (case.evidence or "")
    assert not deliver_one(ctx, "w1")  # nothing is tried before that day
    # the day comes (its start moved to now) and the bank is back
    bank.open_listeners()
    ctx.profiles["hnrcu"] = profile
    with ctx.sessions.begin() as s:
        s.execute(update(OutboundFile).values(next_attempt_at=OutboundFile.created_at))
    drive(ctx)
    assert states(ctx) == {ItemState.PAID.value: 1, ItemState.FAILED.value: 1}
    assert [c.state for c in _cases(ctx)] == ["closed"]
    _paid_once(ctx, bank)


def test_a_day_that_passed_during_the_outage_moves_to_today(ctx: Context, bank: Any) -> None:
    """A bank working every day without a cut-off: a file whose dispatch day passed while
    the bank was down belongs to today's business day (reconciliation counts it there)."""
    submit(ctx, _body("OUT-D", "hnrcu", PEOPLE[:2]))
    plan_one(ctx, "w1")
    yesterday = china_today() - dt.timedelta(days=1)
    with ctx.sessions.begin() as s:
        s.execute(update(Batch).values(dispatch_on=yesterday))
    bank.close_listeners()
    assert deliver_one(ctx, "w1")
    with ctx.sessions() as s:
        assert s.scalar(select(Batch.dispatch_on)) == china_today()
    [case] = _cases(ctx)
    assert china_today().isoformat() in case.summary
    bank.open_listeners()
    drive(ctx)
    _paid_once(ctx, bank)
