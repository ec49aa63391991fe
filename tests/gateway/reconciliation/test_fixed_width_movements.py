"""The fixed-width bank's account movements (``ACT_…txt``) through the real SFTP mock bank:
a 退票 bounces the item and the money still ties out; movements that differ from what the
gateway counts as paid open a discrepancy — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adapters.formats.fixed_width import FixedWidthGb18030Format
from gateway.batches.models import Batch, BatchEventRecord, ItemEventRecord, PaymentItem
from gateway.certs import DEV_KEY_FILES
from gateway.context import Context
from gateway.feedback.models import AccountEntryRecord, InboundFile
from gateway.feedback.service import take_account_notice
from gateway.kit.clock import utcnow
from gateway.payments.states import BatchState, ItemEvent
from gateway.reconciliation.matching import DiscrepancyType
from gateway.reconciliation.service import close, explain, list_discrepancies, reconcile
from gateway.worker import run_cycle
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, states, submit
from tests.waits import wait_until

PEOPLE = persons(5, seed=43)
LATER = dt.timedelta(hours=49)  # past the default 48 h debit grace


def fen(*seqs: int) -> int:
    """What the test payloads pay items ``seqs`` (10 000 fen + the sequence number)."""
    return sum(10000 + seq for seq in seqs)


def faults(rule: str) -> str:
    return f"\n[faults]\nseed = 7\nbounce_after_seconds = 0.2\n[[faults.rules]]\n{rule}\n"


def body(no: str, ps: list[Any]) -> dict[str, Any]:
    b = payload(no, ps)
    b["header"]["bank_profile"] = "hnrcu"
    return b


def batch_state(ctx: Context, no: str) -> str:
    with ctx.sessions() as s:
        return s.scalar(select(Batch.state).where(Batch.batch_no == no)) or ""


def reconcile_detail(ctx: Context) -> dict[str, Any]:
    with ctx.sessions() as s:
        detail = s.scalar(
            select(BatchEventRecord.detail).where(BatchEventRecord.event == "reconcile")
        )
    assert detail is not None
    return detail


class TestReturn:
    @pytest.fixture
    def bank_extra(self) -> str:
        return faults('kind = "bounce_after_paid"\nnth = [1]')

    def test_a_return_bounces_the_item_and_the_money_ties_out(
        self, ctx: Context, bank: Any
    ) -> None:
        submit(ctx, body("M-1", PEOPLE[:2]))
        assert drive(ctx) == {"paid": 2}

        def bounced() -> bool:
            if states(ctx) == {"paid": 1, "bounced": 1}:
                return True
            run_cycle(ctx, "t")
            return False

        wait_until(bounced, timeout=30, what=lambda: f"the 退票 to reach us ({states(ctx)})")
        with ctx.sessions() as s:
            item = s.scalar(select(PaymentItem).where(PaymentItem.state == "bounced"))
            assert item is not None
            event = s.scalar(
                select(ItemEventRecord).where(
                    ItemEventRecord.item_id == item.id, ItemEventRecord.event == ItemEvent.BOUNCE
                )
            )
            assert event is not None and event.detail is not None
            assert event.detail["source"].startswith("ACT_") and event.detail["source"].endswith(
                "_01_R1.txt"
            )
            assert item.reason_code == "bounced"
            kinds = sorted(s.scalars(select(InboundFile.kind)))
            entries = s.scalars(select(AccountEntryRecord).order_by(AccountEntryRecord.id)).all()
        assert kinds == ["account_notice", "account_notice", "result"]
        assert [(e.direction, e.amount_fen) for e in entries] == [
            ("debit", fen(1, 2)),
            ("credit", item.amount_fen),
        ]
        assert entries[1].details == [[item.serial, item.amount_fen]]

        report = reconcile(ctx, "recon")
        assert report.opened == {"bounce_after_success": 1}  # a person must see it
        assert set(report.open_by_type) == {"bounce_after_success"}  # but no money differs
        [d] = list_discrepancies(ctx)
        assert d.type == DiscrepancyType.BOUNCE_AFTER_SUCCESS and d.item_id == item.id
        explain(ctx, d.id, "operator-li", "持卡人账户已销户，银行退票")
        close(ctx, d.id, "supervisor-wang", "已通知乡镇财政所收集新账户后重新发放")
        assert reconcile(ctx, "recon").reconciled == ["M-1"]
        detail = reconcile_detail(ctx)
        assert detail == {
            "paid_fen": fen(1, 2) - item.amount_fen,
            "debited_fen": fen(1, 2),
            "credited_fen": item.amount_fen,
            "evidence": "account_notices",
        }
        # the bank's net credit is what the gateway counts as paid
        returned = {r.credit_id for r in bank.ledger.reversals()}
        net = sum(c.amount_fen for c in bank.ledger.credits() if c.id not in returned)
        assert net == detail["paid_fen"]


class TestMissingDebit:
    @pytest.fixture
    def bank_extra(self) -> str:
        return faults('kind = "movement_missing_debit"\nnth = [2]')

    def test_a_paid_item_without_a_debit_is_a_discrepancy(self, ctx: Context, bank: Any) -> None:
        submit(ctx, body("M-2", PEOPLE[:3]))
        assert drive(ctx) == {"paid": 3}
        assert bank.faults.fired("movement_missing_debit") == [("movement_missing_debit", 2)]
        early = reconcile(ctx, "recon")
        assert early.opened == {} and early.reconciled == []  # a late debit may still come
        assert batch_state(ctx, "M-2") == BatchState.COMPLETED
        report = reconcile(ctx, "recon", now=utcnow() + LATER)
        assert report.opened == {"items_without_debit": 1} and not report.ok
        [d] = list_discrepancies(ctx)
        assert d.type == DiscrepancyType.ITEMS_WITHOUT_DEBIT and d.amount_fen == fen(2)
        assert len(d.evidence["uncovered_serials"]) == 1
        assert batch_state(ctx, "M-2") == BatchState.COMPLETED


class TestDoubleDebit:
    @pytest.fixture
    def bank_extra(self) -> str:
        return faults('kind = "movement_double_debit"\nnth = [1]')

    def test_an_item_debited_twice_is_a_discrepancy_at_once(self, ctx: Context, bank: Any) -> None:
        submit(ctx, body("M-3", PEOPLE[:2]))
        assert drive(ctx) == {"paid": 2}
        report = reconcile(ctx, "recon")
        assert report.opened == {"amount_differs": 1} and report.reconciled == []
        [d] = list_discrepancies(ctx)
        assert d.type == DiscrepancyType.AMOUNT_DIFFERS and d.amount_fen == fen(1)
        assert (d.evidence["expected_fen"], d.evidence["booked_fen"]) == (fen(1), 2 * fen(1))
        assert batch_state(ctx, "M-3") == BatchState.COMPLETED


class TestNoticeVersions:
    """A bank that publishes an account movements file again under the same name (other
    bytes, signed): the bookings already recorded are not recorded twice; a booking the new
    version adds is recorded, and reconciliation sees it."""

    def _republish(self, bank: Any, name: str, dev_keys: Path, extra: bool) -> tuple[bytes, bytes]:
        from mock_bank import fileformat
        from mock_bank.signing import load_private_key, sign_file

        data = (bank.outbox / name).read_bytes()
        notice = FixedWidthGb18030Format().parse_account_notice(data)
        movements = [
            fileformat.Movement(
                direction="D" if e.direction == "debit" else "C",
                amount_fen=fen_,
                booking_date=e.booked_on,
                bank_ref=e.bank_ref,
                item_serial=serial,
                reason_code="0000" if e.direction == "debit" else e.reason_code,
                description="代发扣款",
            )
            for e in notice.entries
            for serial, fen_ in e.details
        ]
        if extra:
            movements.append(
                fileformat.Movement(
                    direction="D",
                    amount_fen=777,
                    booking_date=notice.entries[0].booked_on,
                    bank_ref="FEE0001",
                    item_serial="",
                    reason_code="D999",
                    description="手续费",
                )
            )
        entry = notice.entries[0]
        assert entry.batch_serial is not None and entry.file_no is not None
        again = fileformat.render_movements(
            notice_id=notice.message_id,
            batch_serial=entry.batch_serial,
            file_no=entry.file_no,
            payer_account=entry.account,
            created_at=dt.datetime(2030, 1, 2, 3, 4, 5),  # other bytes than the first
            movements=movements,
        )
        assert again != data
        key = load_private_key(dev_keys / DEV_KEY_FILES.bank_signing_key)
        return again, sign_file(again, key, "mockbank-dev")

    def test_a_new_version_records_only_what_it_adds(
        self, ctx: Context, bank: Any, dev_keys: Path
    ) -> None:
        submit(ctx, body("M-4", PEOPLE[:2]))
        assert drive(ctx) == {"paid": 2}
        assert reconcile(ctx, "recon").reconciled == ["M-4"]
        with ctx.sessions() as s:
            (name,) = s.scalars(
                select(InboundFile.file_name).where(InboundFile.kind == "account_notice")
            ).all()
        profile = ctx.profiles["hnrcu"]

        same, sig = self._republish(bank, name, dev_keys, extra=False)
        assert take_account_notice(ctx, profile, name, same, sig, "t") == 0
        assert take_account_notice(ctx, profile, name, same, sig, "t") is None  # seen
        report = reconcile(ctx, "recon")
        assert report.opened == {} and report.ok

        more, sig = self._republish(bank, name, dev_keys, extra=True)
        assert take_account_notice(ctx, profile, name, more, sig, "t") == 1
        with ctx.sessions() as s:
            entries = s.scalars(select(AccountEntryRecord).order_by(AccountEntryRecord.id)).all()
        assert [(e.direction, e.amount_fen) for e in entries] == [
            ("debit", fen(1, 2)),
            ("debit", 777),
        ]
        report = reconcile(ctx, "recon")
        assert report.opened == {"debit_without_items": 1}
