"""The ISO 20022 bank (pain.001 out, pain.002 and camt.054 back) end to end against the
mock bank's own ISO 20022 implementation, ECDSA-signed, over SFTP."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.batches.models import PaymentItem
from gateway.context import Context
from gateway.feedback.models import AccountEntryRecord, InboundFile
from gateway.payments.states import ItemState
from gateway.worker import run_cycle
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, states, submit
from tests.waits import wait_until

PEOPLE = persons(8, seed=11)


@pytest.fixture
def accounts() -> list[dict[str, str]]:
    out = []
    for i, p in enumerate(PEOPLE):
        if i == 1:
            continue  # unknown account: AC01
        out.append(
            {
                "account_no": p.account_no,
                "name": p.name + "某" if i == 3 else p.name,  # BE01
                "id_number": p.id_number,
                "status": "closed" if i == 5 else "active",  # AC04
            }
        )
    return out


def iso_payload(no: str, ps: list[Any]) -> dict[str, Any]:
    body = payload(no, ps)
    body["header"]["bank_profile"] = "psbc"
    return body


def test_iso20022_round_trip_with_account_notice(ctx: Context, iso_bank: Any) -> None:
    submit(ctx, iso_payload("ISO-1", PEOPLE))
    assert drive(ctx) == {"paid": 5, "failed": 3}

    # the camt.054 follows the pain.002: worker cycles until it has been taken too
    def notice_taken() -> bool:
        with ctx.sessions() as s:
            if s.scalar(select(func.count()).select_from(AccountEntryRecord)):
                return True
        run_cycle(ctx, "t")
        return False

    wait_until(notice_taken, what="the camt.054 to be taken")
    with ctx.sessions() as s:
        reasons = dict(
            s.execute(
                select(PaymentItem.seq, PaymentItem.reason_code).where(
                    PaymentItem.state == ItemState.FAILED
                )
            ).all()
        )
        paid_total = s.scalar(
            select(func.sum(PaymentItem.amount_fen)).where(PaymentItem.state == ItemState.PAID)
        )
        entries = s.scalars(select(AccountEntryRecord)).all()
        kinds = sorted(s.scalars(select(InboundFile.kind)).all())
    assert reasons == {2: "account_not_found", 4: "name_mismatch", 6: "account_closed"}
    # the camt.054 debit of the payer account is recorded and equals what was paid
    assert [(e.direction, e.amount_fen) for e in entries] == [("debit", paid_total)]
    assert len(entries[0].details or []) == 5
    assert kinds == ["account_notice", "result"]
    summary = iso_bank.ledger.summary()
    assert summary["double_credits"] == 0 and summary["amount_credited_fen"] == paid_total


class TestReturnAfterPayment:
    @pytest.fixture
    def bank_extra(self) -> str:
        return (
            "\n[faults]\nseed = 7\nbounce_after_seconds = 0.2\n"
            '[[faults.rules]]\nkind = "bounce_after_paid"\nnth = [1]\n'
        )

    def test_bounce_after_paid_is_recorded_as_bounced(self, ctx: Context, iso_bank: Any) -> None:
        """退票: the bank reports a credit back for a paid item; the item becomes bounced."""
        submit(ctx, iso_payload("ISO-2", PEOPLE[:1]))
        drive(ctx)

        def bounced() -> bool:
            if states(ctx) == {"bounced": 1}:
                return True
            run_cycle(ctx, "t")
            return False

        wait_until(bounced, what=lambda: f"the item to be bounced (items now: {states(ctx)})")
        assert states(ctx) == {"bounced": 1}
        with ctx.sessions() as s:
            directions = sorted(s.scalars(select(AccountEntryRecord.direction)).all())
        assert directions == ["credit", "debit"]
        assert iso_bank.ledger.summary()["returned"] == 1
