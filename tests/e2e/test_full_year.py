"""A year of one subsidy item at one county, end to end through the real services and the
ISO 20022 mock bank (which notifies every debit of the payer account by camt.054):

a batch with failures → the correction list → a re-issue batch that pays some of them →
a treasury refund of the rest at year end (maker-checker) → a reconciliation that ties out
across all of it, and a daily statement whose totals agree."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import func, select

from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.demo.data import Person
from gateway.kit.clock import china_today
from gateway.kit.identity import luhn_check_digit
from gateway.payments.states import BatchState, ItemState
from gateway.reconciliation.service import reconcile
from gateway.reconciliation.service import summary as reconciliation_summary
from gateway.reconciliation.statements import build_statement, write_statement
from gateway.rework.corrections import export_correction_list, mark_returned
from gateway.rework.errors import MakerCheckerError
from gateway.rework.refunds import approve_refund, propose_refund, refund_summary
from gateway.worker import run_cycle
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, states, submit
from tests.waits import wait_until

pytestmark = pytest.mark.slow
PEOPLE = persons(8, seed=2026)
PAYER = "43001700062050500001"


def _new_card(p: Person, n: int) -> Person:
    partial = f"6217998{n:011d}"
    return dataclasses.replace(p, account_no=partial + luhn_check_digit(partial))


# people 1, 3, 5 fail in spring (unknown card, name mismatch, closed card); the station
# collects new cards for 1 and 3; person 5 never comes: refunded to the treasury at year end
FIXED = {1: _new_card(PEOPLE[1], 1), 3: _new_card(PEOPLE[3], 3)}


@pytest.fixture
def accounts() -> list[dict[str, str]]:
    out = []
    for i, p in enumerate(PEOPLE):
        if i == 1:
            continue
        out.append(
            {
                "account_no": p.account_no,
                "name": p.name + ("某" if i == 3 else ""),
                "id_number": p.id_number,
                "status": "closed" if i == 5 else "active",
            }
        )
    out += [
        {"account_no": f.account_no, "name": f.name, "id_number": f.id_number, "status": "active"}
        for f in FIXED.values()
    ]
    return out


def _iso(body: dict[str, Any]) -> dict[str, Any]:
    body["header"]["bank_profile"] = "psbc"
    body["header"]["payer_account"] = PAYER
    return body


def test_a_year_of_payments_ties_out(ctx: Context, iso_bank: Any, tmp_path: Path) -> None:
    # spring: the batch, three failures
    submit(ctx, _iso(payload("Y-SPRING", PEOPLE)))
    assert drive(ctx) == {"paid": 5, "failed": 3}

    # the correction list goes to the township station, items marked returned
    listed = export_correction_list(ctx, operator="李会计", batch_nos=["Y-SPRING"])
    assert len(listed.item_ids) == 3
    assert mark_returned(ctx, listed.list_id, "王站长") == 3

    # summer: the corrected items are re-issued; two new cards pay, the third person never
    # brought one (re-issued with the same closed card, fails again)
    reissue = _iso(payload("Y-SUMMER", [FIXED[1], FIXED[3], PEOPLE[5]]))
    for n, seq in enumerate((2, 4, 6)):
        reissue["items"][n]["reissue_of"] = {"batch_no": "Y-SPRING", "seq": seq}
    submit(ctx, reissue)
    final = drive(ctx)
    assert final == {"paid": 7, "reissued": 3, "failed": 1}

    # year end: what is still unpaid goes back to the treasury, maker-checker
    refund = propose_refund(
        ctx,
        proposer="张出纳",
        reason="年底未能发放，退回国库",
        fiscal_year=2026,
        as_of=dt.date(2026, 12, 31),
    )
    with pytest.raises(MakerCheckerError):  # the proposer cannot approve their own refund
        approve_refund(ctx, refund.id, "张出纳")
    approve_refund(ctx, refund.id, "赵科长")
    assert states(ctx) == {"paid": 7, "reissued": 3, "refunded": 1}
    assert refund_summary(ctx) == {"count": 1, "amount_fen": 10003}

    # reconciliation over the whole year (once the bank's debit notices have been taken)
    def reconciled() -> bool:
        if reconciliation_summary(ctx)["ok"]:
            return True
        run_cycle(ctx, "t")
        return False

    wait_until(
        reconciled,
        what=lambda: f"the year to be reconciled ({reconciliation_summary(ctx)})",
    )
    report = reconcile(ctx, "t")
    summary = reconciliation_summary(ctx)
    assert report.ok and summary["ok"], (report.as_dict(), summary)
    assert summary["discrepancies"] == 0
    with ctx.sessions() as s:
        batch_states = set(s.scalars(select(Batch.state)))
        paid_fen = s.scalar(
            select(func.sum(PaymentItem.amount_fen)).where(PaymentItem.state == ItemState.PAID)
        )
    assert batch_states == {BatchState.RECONCILED.value}
    # the bank's own ledger: everyone paid once, and exactly what we say we paid
    ledger = iso_bank.ledger.summary()
    assert ledger["double_credits"] == 0 and ledger["amount_credited_fen"] == paid_fen
    # the day's statement ties out: debited − credited − paid = 0, and it says so
    statement = build_statement(ctx, china_today(), "psbc", PAYER)
    total = statement.total
    assert total.paid_fen == paid_fen and total.debited_fen == paid_fen
    assert total.difference_fen == 0 and total.result == "平"
    csv_path, xlsx_path = write_statement(ctx, china_today(), "psbc", PAYER, tmp_path)
    assert csv_path.exists()
    assert "对账汇总" in openpyxl.load_workbook(xlsx_path).sheetnames
