"""A person's payment history through the blind index, with the whole re-issue chain:
fail → correction list → re-issue → fail → treasury refund → re-issue → paid, driven
through the real intake, worker and the mock bank over SFTP."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from gateway.commands.rework import history_lines
from gateway.context import Context
from gateway.demo.data import Person
from gateway.kit.identity import id_check_char, luhn_check_digit
from gateway.payments.states import ItemState
from gateway.rework.corrections import export_correction_list, mark_returned
from gateway.rework.errors import InvalidIdNumberError
from gateway.rework.history import payment_history
from gateway.rework.models import AuditRecord
from gateway.rework.refunds import approve_refund, propose_refund, refund_summary
from tests.gateway.helpers import persons
from tests.gateway.pipeline import drive
from tests.gateway.rework.support import batch, item

PEOPLE = persons(3, seed=31)
# the first person's card is unknown to the bank; the station later collects a new one
_partial = "621799" + "900000000001"
FIXED = dataclasses.replace(PEOPLE[0], account_no=_partial + luhn_check_digit(_partial))
YEAR_END = dt.date(2026, 12, 31)


def _account(p: Person) -> dict[str, str]:
    return {
        "account_no": p.account_no,
        "name": p.name,
        "id_number": p.id_number,
        "status": "active",
    }


@pytest.fixture
def accounts() -> list[dict[str, str]]:
    return [_account(PEOPLE[1]), _account(PEOPLE[2]), _account(FIXED)]


def test_the_whole_chain(ctx: Context, bank: Any) -> None:
    p = PEOPLE[0]
    batch(ctx, "H-1", PEOPLE[:2])
    assert drive(ctx) == {"paid": 1, "failed": 1}
    listed = export_correction_list(ctx, operator="李会计", batch_nos=["H-1"])
    assert mark_returned(ctx, listed.list_id, "王站长") == 1

    # the station "corrects" nothing useful: the re-issue fails again
    batch(ctx, "H-2", [p], reissue_of={1: ("H-1", 1)})
    assert drive(ctx) == {"paid": 1, "reissued": 1, "failed": 1}
    second = item(ctx, "H-2", 1)
    refund = propose_refund(
        ctx, proposer="张出纳", reason="当年无法更正", item_ids=[second.id], as_of=YEAR_END
    )
    approved = approve_refund(ctx, refund.id, "赵科长")

    # next year the person brings a new card: re-issued from the refund record, paid
    batch(ctx, "H-3", [FIXED], reissue_of={1: ("H-2", 1)})
    assert drive(ctx) == {"paid": 2, "reissued": 2}

    found = payment_history(ctx, p.id_number, operator="审计员")
    assert found.id_number_masked == p.id_number[:4] + "*" * 10 + p.id_number[-4:]
    assert found.item_count == 3
    (chain,) = found.chains
    assert [(e.batch_no, e.seq) for e in chain.entries] == [("H-1", 1), ("H-2", 1), ("H-3", 1)]
    assert [e.state for e in chain.entries] == [
        ItemState.REISSUED,
        ItemState.REISSUED,
        ItemState.PAID,
    ]
    first, middle, last = chain.entries
    assert middle.reissue_of_id == first.item_id and last.reissue_of_id == middle.item_id
    assert first.reissued_by_id == middle.item_id and last.reissued_by_id is None
    assert first.reason_code == "account_not_found" and first.reason_zh == "账户不存在"
    assert first.action_zh and "账号" in first.action_zh
    assert first.correction_lists == [listed.list_id]
    assert [r.treasury_ref for r in middle.refunds] == [approved.treasury_ref]
    assert middle.refunds[0].state == "approved" and middle.refunds[0].amount_fen == 10001
    assert last.reason_zh is None and last.paid_at is not None
    assert last.account_masked.endswith(FIXED.account_no[-4:])
    assert chain.paid_fen == last.amount_fen and chain.latest is last
    assert [e.event for e in first.events] == [
        "accept",
        "plan",
        "deliver",
        "result_failed",
        "return",
        "reissue",
    ]
    assert [e.event for e in middle.events][-2:] == ["refund", "reissue"]
    assert [e.to_state for e in last.events][-1] == "paid"

    # the bank paid the person once, on the new card; the refund stays reported
    credits = bank.ledger.credits()
    assert sorted(c.account_no for c in credits) == sorted([PEOPLE[1].account_no, FIXED.account_no])
    assert bank.ledger.summary()["double_credits"] == 0
    assert refund_summary(ctx) == {"count": 1, "amount_fen": 10001}

    # the other person: one chain, paid; the third: nothing
    (other,) = payment_history(ctx, PEOPLE[1].id_number).chains
    assert [e.state for e in other.entries] == [ItemState.PAID]
    assert payment_history(ctx, PEOPLE[2].id_number).chains == []

    # what an operator sees is masked; the query is audited by blind index only
    text = "\n".join(history_lines(found))
    assert "重新发放" in text and "退回国库" in text and "账户不存在" in text
    for raw in (p.id_number, p.account_no, FIXED.account_no, p.name):
        assert raw not in text
        assert raw not in str(found.as_dict())
    with ctx.sessions() as s:
        queries = s.scalars(select(AuditRecord).where(AuditRecord.action == "history.query")).all()
    assert [(q.actor, q.target_type) for q in queries] == [
        ("审计员", "person"),
        ("system", "person"),
        ("system", "person"),
    ]
    assert queries[0].target_id == ctx.pii.blind_index("id_number", p.id_number)
    assert p.id_number not in str([(q.target_id, q.detail) for q in queries])


def test_id_number_is_checked_and_normalised(ctx: Context) -> None:
    first17 = next(
        f"43062119900101{n:03d}"
        for n in range(1000)
        if id_check_char(f"43062119900101{n:03d}") == "X"
    )
    with pytest.raises(InvalidIdNumberError):
        payment_history(ctx, first17 + "1")  # wrong check digit
    batch(ctx, "N-1", [dataclasses.replace(PEOPLE[2], id_number=first17 + "X")])
    # a lower-case x and blanks around it find the same person
    found = payment_history(ctx, f" {first17}x ")
    assert [[e.batch_no for e in c.entries] for c in found.chains] == [["N-1"]]
