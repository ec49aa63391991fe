"""The open-API bank reconciled against its account's movements (issue 12), through the
real HTTPS mock bank: movements that match reconcile the batch; an account that disagrees
with what the bank reported (a paid item never debited, a debit twice) opens a discrepancy;
a return seen only on the account bounces the item once — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import pytest
from sqlalchemy import func, select

from gateway.batches.models import Batch, BatchEventRecord, ItemEventRecord, PaymentItem
from gateway.context import Context
from gateway.feedback.api_movements import china_day, take_movements
from gateway.feedback.models import AccountEntryRecord, AccountMovementPoll
from gateway.kit.clock import utcnow
from gateway.payments.states import BatchState
from gateway.ports import MovementsPage
from gateway.reconciliation.matching import DiscrepancyType
from gateway.reconciliation.models import Discrepancy
from gateway.reconciliation.service import close, explain, list_discrepancies, reconcile
from gateway.worker import run_cycle
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, states, submit
from tests.waits import wait_until

PEOPLE = persons(3, seed=83)
LATER = dt.timedelta(hours=49)  # past the 48 h a debit may still be booked in


def fen(*seqs: int) -> int:
    return sum(10000 + seq for seq in seqs)


def fault(kind: str) -> str:
    return (
        "\n[faults]\nseed = 12\nbounce_after_seconds = 0.2\n"
        f'[[faults.rules]]\nkind = "{kind}"\nnth = [1]\n'
    )


def run(ctx: Context, no: str) -> Batch:
    b = payload(no, PEOPLE)
    b["header"]["bank_profile"] = "abc"
    submit(ctx, b)
    assert drive(ctx) == {"paid": 3}
    with ctx.sessions() as s:
        batch = s.scalar(select(Batch).where(Batch.batch_no == no))
    assert batch is not None
    return batch


def entries(ctx: Context, direction: str | None = None) -> list[AccountEntryRecord]:
    query = select(AccountEntryRecord).order_by(AccountEntryRecord.id)
    if direction is not None:
        query = query.where(AccountEntryRecord.direction == direction)
    with ctx.sessions() as s:
        return list(s.scalars(query))


def read_until(ctx: Context, done: Any, what: str) -> None:
    """Worker cycles (they read the movements; they do not reconcile) until ``done()``."""

    def cycle() -> bool:
        if done():
            return True
        run_cycle(ctx, "t")
        return False

    wait_until(cycle, what=what)


def open_of(ctx: Context, kind: DiscrepancyType) -> list[Discrepancy]:
    return [d for d in list_discrepancies(ctx) if d.type == kind]


def reconcile_detail(ctx: Context) -> dict[str, Any]:
    with ctx.sessions() as s:
        detail = s.scalar(
            select(BatchEventRecord.detail).where(BatchEventRecord.event == "reconcile")
        )
    assert detail is not None
    return dict(detail)


def bounces(ctx: Context) -> int:
    with ctx.sessions() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(ItemEventRecord)
                .where(ItemEventRecord.event == "bounce")
            )
            or 0
        )


def test_movements_that_match_reconcile_the_batch_once_each(
    ctx: Context, api_bank: Any, gateway_http: str
) -> None:
    batch = run(ctx, "MV-1")
    read_until(ctx, lambda: len(entries(ctx)) == 3, "the three debits on the account")
    for _ in range(3):
        run_cycle(ctx, "t")
    got = entries(ctx)
    assert len(got) == 3 and len({e.entry_id for e in got}) == 3  # each entry once
    assert {(e.direction, e.batch_serial, e.account) for e in got} == {
        ("debit", batch.serial, batch.payer_account)
    }
    report = reconcile(ctx, "recon")
    assert report.reconciled == ["MV-1"] and report.ok, report.as_dict()
    detail = reconcile_detail(ctx)
    assert detail["evidence"] == "account_notices"
    assert detail["debited_fen"] == detail["paid_fen"] == fen(1, 2, 3)
    # the same page again, or its entries in other bytes, records nothing
    profile = ctx.profiles["abc"]
    page = profile.api.movements(batch.payer_account, china_day(utcnow()))  # type: ignore[attr-defined]
    assert take_movements(ctx, profile, page, "t") == 0
    other = MovementsPage(page.account, page.day, page.entries, page.next_cursor, False, b"{}")
    assert take_movements(ctx, profile, other, "t") == 0
    assert len(entries(ctx)) == 3
    with ctx.sessions() as s:
        [poll] = s.scalars(select(AccountMovementPoll)).all()
    assert poll.cursor and poll.exhausted and poll.entries == 3
    del gateway_http


class TestTheAccountDisagrees:
    FAULTS: ClassVar[dict[str, str]] = {
        "test_a_reported_paid_item_never_debited": "movement_missing_debit",
        "test_an_item_debited_twice": "movement_double_debit",
        "test_a_return_only_on_the_account_bounces_the_item_once": "silent_return",
    }

    @pytest.fixture
    def bank_extra(self, request: pytest.FixtureRequest) -> str:
        return fault(self.FAULTS[request.node.originalname])

    def test_a_reported_paid_item_never_debited(
        self, ctx: Context, api_bank: Any, gateway_http: str
    ) -> None:
        run(ctx, "MV-2")
        read_until(ctx, lambda: len(entries(ctx)) == 2, "the two debits booked")
        for _ in range(3):
            run_cycle(ctx, "t")
        assert len(entries(ctx)) == 2
        early = reconcile(ctx, "recon")
        assert early.reconciled == [] and early.completed_unreconciled == 1  # may still come
        report = reconcile(ctx, "recon", now=utcnow() + LATER)
        assert report.opened == {"items_without_debit": 1} and not report.ok
        [d] = open_of(ctx, DiscrepancyType.ITEMS_WITHOUT_DEBIT)
        debited = {s for e in entries(ctx) for s, _ in e.details or []}
        with ctx.sessions() as s:
            missing = s.scalars(
                select(PaymentItem.serial).where(PaymentItem.serial.not_in(debited))
            ).all()
        assert d.evidence["uncovered_serials"] == list(missing) and len(missing) == 1
        assert states(ctx) == {"paid": 3}  # the bank's own report said paid
        del gateway_http

    def test_an_item_debited_twice(self, ctx: Context, api_bank: Any, gateway_http: str) -> None:
        run(ctx, "MV-3")
        read_until(ctx, lambda: len(entries(ctx)) == 4, "the four debits booked")
        report = reconcile(ctx, "recon")  # money in excess: reported at once
        assert report.opened == {"amount_differs": 1} and report.reconciled == []
        [d] = open_of(ctx, DiscrepancyType.AMOUNT_DIFFERS)
        assert d.evidence["booked_fen"] == 2 * d.evidence["expected_fen"]
        assert d.amount_fen == d.evidence["expected_fen"]
        del gateway_http

    def test_a_return_only_on_the_account_bounces_the_item_once(
        self, ctx: Context, api_bank: Any, gateway_http: str
    ) -> None:
        run(ctx, "MV-4")
        read_until(ctx, lambda: bool(entries(ctx, "credit")), "the return's credit")
        for _ in range(3):
            run_cycle(ctx, "t")
        assert states(ctx) == {"paid": 2, "bounced": 1} and bounces(ctx) == 1
        # the bank's inquiry still says paid: asking again changes nothing
        with ctx.sessions() as s:
            batch = s.scalar(select(Batch))
            assert batch is not None
            status = ctx.profiles["abc"].api.inquire(batch.serial or "", 1)
        assert status is not None and {i.status.value for i in status.items} == {"paid"}
        report = reconcile(ctx, "recon")
        assert report.opened == {"bounce_after_success": 1}
        [d] = open_of(ctx, DiscrepancyType.BOUNCE_AFTER_SUCCESS)
        explain(ctx, d.id, "operator-li", "银行账户明细显示退票")
        close(ctx, d.id, "supervisor-wang", "已核实，待重新发放")
        assert reconcile(ctx, "recon").reconciled == ["MV-4"]
        detail = reconcile_detail(ctx)
        assert detail["credited_fen"] == d.amount_fen
        assert detail["debited_fen"] - detail["credited_fen"] == detail["paid_fen"]
        assert bounces(ctx) == 1
        with ctx.sessions() as s:
            assert s.scalar(select(Batch.state)) == BatchState.RECONCILED
        assert api_bank.ledger.summary()["double_credits"] == 0
        del gateway_http
