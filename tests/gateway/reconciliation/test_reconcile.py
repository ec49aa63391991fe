"""Reconciliation against the mock banks, through the real services: each discrepancy
type from a real situation, idempotent detection, the explain/close lifecycle, and the
batch ``reconciled`` state — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.batches.models import Batch, BatchEventRecord, ItemEventRecord
from gateway.context import Context
from gateway.dispatch.service import deliver_one, plan_one
from gateway.feedback.models import AccountEntryRecord
from gateway.feedback.service import take_account_notice
from gateway.kit.clock import utcnow
from gateway.payments.states import BatchState, InvalidTransitionError
from gateway.reconciliation.matching import DiscrepancyType
from gateway.reconciliation.models import Discrepancy, DiscrepancyEventRecord
from gateway.reconciliation.service import (
    DiscrepancyNotFoundError,
    ReconciliationReport,
    close,
    explain,
    history,
    list_discrepancies,
    reconcile,
    summary,
)
from gateway.rework.models import AuditRecord
from gateway.worker import run_cycle
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, states, submit
from tests.gateway.reconciliation.forge import (
    camt054_debit,
    fixed_width_result,
    items_of,
    wait_for_outbox,
)
from tests.waits import wait_until

PEOPLE = persons(5, seed=41)
LATER = dt.timedelta(hours=49)  # past the default 48 h for missing results and debits


def fen(*seqs: int) -> int:
    """What the test payloads pay items ``seqs`` (10 000 fen + the sequence number)."""
    return sum(10000 + seq for seq in seqs)


PAID_FEN = fen(1, 2, 4, 5)  # a five-person batch: the third card is frozen


@pytest.fixture
def accounts() -> list[dict[str, str]]:
    # the third person's card is frozen: one failure per batch
    return [
        {
            "account_no": p.account_no,
            "name": p.name,
            "id_number": p.id_number,
            "status": "frozen" if i == 2 else "active",
        }
        for i, p in enumerate(PEOPLE)
    ]


def body(no: str, bank: str = "hnrcu", ps: list[Any] | None = None) -> dict[str, Any]:
    b = payload(no, ps or PEOPLE)
    b["header"]["bank_profile"] = bank
    return b


def batch_state(ctx: Context, no: str) -> str:
    with ctx.sessions() as s:
        return s.scalar(select(Batch.state).where(Batch.batch_no == no)) or ""


def open_of(ctx: Context, kind: DiscrepancyType) -> list[Discrepancy]:
    return [d for d in list_discrepancies(ctx) if d.type == kind]


def settle(ctx: Context, done: Any, timeout: float = 30.0) -> ReconciliationReport:
    """Worker cycles and reconciliation runs until ``done(report)`` (late bank messages)."""

    def run() -> ReconciliationReport | None:
        run_cycle(ctx, "t")
        report = reconcile(ctx, "recon")
        return report if done(report) else None

    return wait_until(run, timeout=timeout, what="a reconciliation run to be done")


def wait_for_bounce(ctx: Context, timeout: float = 30.0) -> None:
    """Worker cycles (no reconciliation) until the bank's 退票 is recorded."""

    def bounced() -> bool:
        if states(ctx) == {"paid": 1, "bounced": 1}:
            return True
        run_cycle(ctx, "t")
        return False

    wait_until(
        bounced, timeout=timeout, what=lambda: f"the 退票 to be recorded (items: {states(ctx)})"
    )


def close_all(ctx: Context) -> None:
    for d in list_discrepancies(ctx):
        explain(ctx, d.id, "operator-li", "已与银行核实")
        close(ctx, d.id, "supervisor-wang", "情况属实，已处理")


# --- a clean day -----------------------------------------------------------------------------


def test_file_bank_batch_is_reconciled_once(ctx: Context, bank: Any) -> None:
    """Fixed-width bank: its account movements files (``ACT_…``, written before the result
    file) are the money evidence; the batch ties out and is reconciled, once, with a
    recorded event."""
    submit(ctx, body("R-1"))
    assert drive(ctx) == {"paid": 4, "failed": 1}
    report = reconcile(ctx, "recon")
    assert report.reconciled == ["R-1"] and report.ok and report.opened == {}
    [day] = report.by_bank_day.values()
    assert day["sent_count"] == day["paid_count"] + day["failed_count"] + day["bounced_count"]
    assert day["paid_fen"] == day["debited_fen"] == PAID_FEN and day["difference_fen"] == 0
    assert batch_state(ctx, "R-1") == BatchState.RECONCILED
    again = reconcile(ctx, "recon")
    assert again.reconciled == [] and again.opened == {} and again.ok
    # a run costs what changed: once the streams' rows are old enough to be passed for
    # good, a quiet run checks no batch at all
    reconcile(ctx, "recon", now=utcnow() + dt.timedelta(minutes=2))
    quiet = reconcile(ctx, "recon", now=utcnow() + dt.timedelta(minutes=3))
    assert quiet.checked_batches == 0 and quiet.ok
    with ctx.sessions() as s:
        events = s.scalars(
            select(BatchEventRecord).where(BatchEventRecord.event == "reconcile")
        ).all()
    assert len(events) == 1
    assert events[0].from_state == "completed" and events[0].to_state == "reconciled"
    assert events[0].detail is not None and events[0].detail["evidence"] == "account_notices"
    assert events[0].detail["paid_fen"] == events[0].detail["debited_fen"] == PAID_FEN
    assert summary(ctx) == {
        "ok": True,
        "discrepancies": 0,
        "by_type": {},
        "by_state": {},
        "batches": {"completed_unreconciled": 0, "reconciled": 1},
    }


def test_iso_bank_batch_is_reconciled_against_its_debit_notice(ctx: Context, iso_bank: Any) -> None:
    submit(ctx, body("R-2", "psbc"))
    drive(ctx)
    report = settle(ctx, lambda r: r.reconciled)
    assert report.reconciled == ["R-2"] and report.ok
    with ctx.sessions() as s:
        detail = s.scalar(
            select(BatchEventRecord.detail).where(BatchEventRecord.event == "reconcile")
        )
    assert detail == {
        "paid_fen": PAID_FEN,
        "debited_fen": PAID_FEN,
        "credited_fen": 0,
        "evidence": "account_notices",
    }


# --- one test per discrepancy type ------------------------------------------------------------


def test_missing_result_stays_until_a_person_closes_it(ctx: Context, bank: Any) -> None:
    submit(ctx, body("R-3"))
    assert plan_one(ctx, "t") and deliver_one(ctx, "t")
    assert states(ctx) == {"sent": 5}
    assert reconcile(ctx, "recon").opened == {}  # not yet overdue
    report = reconcile(ctx, "recon", now=utcnow() + LATER)
    assert report.opened == {"missing_result": 1} and not report.ok
    [d] = open_of(ctx, DiscrepancyType.MISSING_RESULT)
    assert d.evidence["pending_count"] == 5 and d.amount_fen == fen(1, 2, 3, 4, 5)
    assert d.outbound_file_id is not None and d.bank_profile == "hnrcu"
    # the results come after all: the discrepancy is marked cleared, not deleted
    drive(ctx)
    report = reconcile(ctx, "recon")
    assert report.cleared == 1 and report.reconciled == []
    [d] = open_of(ctx, DiscrepancyType.MISSING_RESULT)
    assert d.cleared_at is not None and d.state == "open"
    assert batch_state(ctx, "R-3") == BatchState.COMPLETED  # blocked by the open discrepancy
    explain(ctx, d.id, "operator-li", "银行回盘延迟，已于次日收到")
    close(ctx, d.id, "supervisor-wang", "结果已全部收到，金额相符")
    report = reconcile(ctx, "recon")
    assert report.reconciled == ["R-3"] and report.ok
    assert [e.event for e in history(ctx, d.id)] == ["detect", "cleared", "explain", "close"]


def test_result_for_an_item_never_sent(ctx: Context, bank: Any, dev_keys: Path) -> None:
    submit(ctx, body("R-4", ps=PEOPLE[:2]))
    drive(ctx)
    batch, _items = items_of(ctx, "R-4")
    stranger = {
        "seq": 99,
        "serial": f"{batch.serial}00000099",
        "account_no": PEOPLE[0].account_no,
        "amount_fen": 12345,
    }
    taken = fixed_width_result(ctx, dev_keys, "RET_stranger.txt", batch.serial or "", [stranger])
    assert taken == 0  # recorded, nothing applied
    report = reconcile(ctx, "recon")
    assert report.opened == {"result_for_unsent": 1}
    [d] = open_of(ctx, DiscrepancyType.RESULT_FOR_UNSENT)
    assert d.item_id is None and d.item_result_id is not None and d.amount_fen == 12345
    assert d.bank_profile == "hnrcu" and d.evidence["disposition"] == "unknown_item"
    # the batch's own money ties out: it is reconciled; the stranger stays open
    assert report.reconciled == ["R-4"] and not report.ok
    assert PEOPLE[0].account_no not in str(d.evidence) + d.summary


def test_result_amount_differs(ctx: Context, bank: Any, dev_keys: Path) -> None:
    submit(ctx, body("R-5", ps=PEOPLE[:2]))
    drive(ctx)
    batch, items = items_of(ctx, "R-5")
    it = items[0]
    line = {
        "seq": it.seq,
        "serial": it.serial,
        "account_no": PEOPLE[0].account_no,
        "amount_fen": it.amount_fen + 1,
    }
    assert fixed_width_result(ctx, dev_keys, "RET_other.txt", batch.serial or "", [line]) == 0
    report = reconcile(ctx, "recon")
    assert report.opened == {"amount_differs": 1} and report.reconciled == []
    [d] = open_of(ctx, DiscrepancyType.AMOUNT_DIFFERS)
    assert d.item_id == it.id and d.batch_id == batch.id and d.amount_fen == 1
    assert d.evidence["reported_fen"] == it.amount_fen + 1
    assert batch_state(ctx, "R-5") == BatchState.COMPLETED


def test_paid_then_failed(ctx: Context, bank: Any, dev_keys: Path) -> None:
    submit(ctx, body("R-6", ps=PEOPLE[:2]))
    assert drive(ctx) == {"paid": 2}
    batch, items = items_of(ctx, "R-6")
    flipped = [
        {
            "seq": it.seq,
            "serial": it.serial,
            "account_no": p.account_no,
            "amount_fen": it.amount_fen,
            "status": "F",
            "code": "E104",
            "message": "账户已销户",
            "bank_ref": "",
        }
        for it, p in zip(items, PEOPLE, strict=False)
    ]
    assert fixed_width_result(ctx, dev_keys, "RET_late.txt", batch.serial or "", flipped) == 0
    assert states(ctx) == {"paid": 2}  # never overwritten
    report = reconcile(ctx, "recon")
    assert report.opened == {"paid_then_failed": 2} and report.reconciled == []
    assert {d.item_id for d in open_of(ctx, DiscrepancyType.PAID_THEN_FAILED)} == {
        it.id for it in items
    }


class TestBounceAfterSuccess:
    @pytest.fixture
    def bank_extra(self) -> str:
        return (
            "\n[faults]\nseed = 7\nbounce_after_seconds = 0.2\n"
            '[[faults.rules]]\nkind = "bounce_after_paid"\nnth = [1]\n'
        )

    def test_iso_bounce_is_a_discrepancy_and_the_money_still_ties(
        self, ctx: Context, iso_bank: Any
    ) -> None:
        submit(ctx, body("R-7", "psbc", PEOPLE[:2]))
        drive(ctx)
        wait_for_bounce(ctx)
        report = reconcile(ctx, "recon")
        assert report.opened == {"bounce_after_success": 1}
        [d] = open_of(ctx, DiscrepancyType.BOUNCE_AFTER_SUCCESS)
        assert d.amount_fen in {fen(1), fen(2)} and d.item_id is not None
        # both debited, one credited back, one paid: no money discrepancy
        assert set(report.open_by_type) == {"bounce_after_success"}
        assert batch_state(ctx, "R-7") == BatchState.COMPLETED
        explain(ctx, d.id, "operator-li", "持卡人账户已销户，银行退票")
        close(ctx, d.id, "supervisor-wang", "已通知乡镇财政所收集新账户后重新发放")
        assert reconcile(ctx, "recon").reconciled == ["R-7"]
        with ctx.sessions() as s:
            detail = s.scalar(
                select(BatchEventRecord.detail).where(BatchEventRecord.event == "reconcile")
            )
        assert detail is not None
        assert (detail["debited_fen"], detail["credited_fen"]) == (fen(1, 2), d.amount_fen)

    def test_api_bank_bounce_ties_out_on_its_account_movements(
        self, ctx: Context, api_bank: Any, gateway_http: str
    ) -> None:
        """The API bank's 退票 comes by callback, by inquiry and on the account (a credit
        movement): the item bounces once, and the money ties out on the account's entries
        (issue 12), not on the bank's own reports."""
        submit(ctx, body("R-8", "abc", PEOPLE[:2]))
        drive(ctx)
        wait_for_bounce(ctx)

        def credited_back() -> bool:
            run_cycle(ctx, "t")
            with ctx.sessions() as s:
                return bool(
                    s.scalar(
                        select(func.count())
                        .select_from(AccountEntryRecord)
                        .where(AccountEntryRecord.direction == "credit")
                    )
                )

        wait_until(credited_back, what="the return's credit on the account")
        with ctx.sessions() as s:
            bounces = s.scalar(
                select(func.count())
                .select_from(ItemEventRecord)
                .where(ItemEventRecord.event == "bounce")
            )
        assert bounces == 1
        assert reconcile(ctx, "recon").opened == {"bounce_after_success": 1}
        close_all(ctx)
        report = reconcile(ctx, "recon")
        assert report.reconciled == ["R-8"] and report.ok
        with ctx.sessions() as s:
            detail = s.scalar(
                select(BatchEventRecord.detail).where(BatchEventRecord.event == "reconcile")
            )
        # the account: both paid (debits), one returned (a credit back)
        assert detail is not None and detail["evidence"] == "account_notices"
        assert detail["debited_fen"] - detail["credited_fen"] == detail["paid_fen"]
        assert detail["credited_fen"] in {fen(1), fen(2)}
        del gateway_http


def _without_debit_notice(ctx: Context, iso_bank: Any, no: str) -> tuple[bytes, bytes]:
    """Send a batch to the ISO bank, take away its camt.054 debit before the gateway sees
    it, and let every result come back. Returns the notice (bytes, signature)."""
    submit(ctx, body(no, "psbc"))
    assert plan_one(ctx, "t") and deliver_one(ctx, "t")
    [notice] = wait_for_outbox(iso_bank, "C054_")
    sig = notice.with_name(notice.name + ".sig")
    saved = notice.read_bytes(), sig.read_bytes()
    notice.unlink()
    sig.unlink()
    assert drive(ctx) == {"paid": 4, "failed": 1}
    return saved


def test_items_without_debit_then_a_late_notice(ctx: Context, iso_bank: Any) -> None:
    data, sig = _without_debit_notice(ctx, iso_bank, "R-9")
    early = reconcile(ctx, "recon")
    assert early.opened == {} and early.reconciled == []  # the notice may still come
    assert early.completed_unreconciled == 1 and not early.ok
    report = reconcile(ctx, "recon", now=utcnow() + LATER)
    assert report.opened == {"items_without_debit": 1}
    [d] = open_of(ctx, DiscrepancyType.ITEMS_WITHOUT_DEBIT)
    assert d.amount_fen == PAID_FEN and len(d.evidence["uncovered_serials"]) == 4
    # the notice arrives late: the condition clears, the discrepancy waits for a person
    profile = ctx.profiles["psbc"]
    assert take_account_notice(ctx, profile, "C054_late.xml", data, sig, "t") == 1
    report = reconcile(ctx, "recon", now=utcnow() + LATER)
    assert report.cleared == 1 and report.reconciled == []
    close_all(ctx)
    assert reconcile(ctx, "recon").reconciled == ["R-9"]


def test_debit_differs_from_the_paid_sum(ctx: Context, iso_bank: Any, dev_keys: Path) -> None:
    _without_debit_notice(ctx, iso_bank, "R-10")
    batch, items = items_of(ctx, "R-10")
    paid = [(it.serial, it.amount_fen) for it in items if it.state == "paid"]
    paid[0] = (paid[0][0], paid[0][1] - 100)  # the bank debited 1 yuan less for one item
    assert camt054_debit(ctx, dev_keys, batch.serial or "", paid) == 1
    assert reconcile(ctx, "recon").opened == {}  # a shortfall waits for the grace
    report = reconcile(ctx, "recon", now=utcnow() + LATER)
    assert report.opened == {"amount_differs": 1}
    [d] = open_of(ctx, DiscrepancyType.AMOUNT_DIFFERS)
    assert d.amount_fen == -100 and d.evidence["serial"] == paid[0][0]
    assert d.evidence["expected_fen"] - d.evidence["booked_fen"] == 100


def test_debit_without_items(ctx: Context, iso_bank: Any, dev_keys: Path) -> None:
    submit(ctx, body("R-11", "psbc"))
    drive(ctx)
    settle(ctx, lambda r: r.reconciled)
    batch, items = items_of(ctx, "R-11")
    # a debit naming a batch the gateway never sent
    assert camt054_debit(ctx, dev_keys, "ZZZZZZZZZZZZZZZZ", [("ZZZZZZZZZZZZZZZZ00000001", 777)])
    # and the real batch debited a second time (a reconciled batch is checked again)
    paid = [(it.serial, it.amount_fen) for it in items if it.state == "paid"]
    assert camt054_debit(ctx, dev_keys, batch.serial or "", paid, msg="X2") == 1
    report = reconcile(ctx, "recon")
    assert report.opened == {"debit_without_items": 1, "amount_differs": 4}
    [d] = open_of(ctx, DiscrepancyType.DEBIT_WITHOUT_ITEMS)
    assert d.account_entry_id is not None and d.batch_id is None and d.amount_fen == 777
    assert d.evidence["direction"] == "debit" and d.day is not None
    doubled = open_of(ctx, DiscrepancyType.AMOUNT_DIFFERS)
    assert sorted(x.amount_fen or 0 for x in doubled) == [fen(s) for s in (1, 2, 4, 5)]
    assert all(x.batch_id == batch.id for x in doubled)
    assert batch_state(ctx, "R-11") == BatchState.RECONCILED  # as of the day it tied out


# --- idempotency and the lifecycle -------------------------------------------------------------


def test_detection_is_idempotent(ctx: Context, bank: Any, dev_keys: Path) -> None:
    submit(ctx, body("R-12", ps=PEOPLE[:2]))
    assert plan_one(ctx, "t") and deliver_one(ctx, "t")
    first = reconcile(ctx, "recon", now=utcnow() + LATER)
    assert first.opened == {"missing_result": 1}
    for _ in range(3):
        again = reconcile(ctx, "recon", now=utcnow() + LATER)
        assert again.opened == {} and again.cleared == 0
        assert again.open_by_type == {"missing_result": 1}
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Discrepancy)) == 1
        assert s.scalar(select(func.count()).select_from(DiscrepancyEventRecord)) == 1
    # a reconciliation already running elsewhere: this one does nothing, reports the state
    from gateway.kit.db import session_scope
    from gateway.kit.leases import claim_job

    with session_scope(ctx.sessions) as s:
        assert claim_job(s, "reconcile", "other-worker", 60)
    busy = reconcile(ctx, "recon", now=utcnow() + LATER)
    assert not busy.ran and busy.open_by_type == {"missing_result": 1}
    del dev_keys


def test_explain_and_close_are_recorded_and_guarded(ctx: Context, bank: Any) -> None:
    submit(ctx, body("R-13", ps=PEOPLE[:1]))
    assert plan_one(ctx, "t") and deliver_one(ctx, "t")
    reconcile(ctx, "recon", now=utcnow() + LATER)
    [d] = list_discrepancies(ctx)
    with pytest.raises(InvalidTransitionError):
        close(ctx, d.id, "supervisor-wang", "跳过说明直接关闭")
    with pytest.raises(ValueError, match="named person"):
        explain(ctx, d.id, "  ", "无名")
    with pytest.raises(ValueError, match="say what happened"):
        explain(ctx, d.id, "operator-li", " ")
    for hidden in ("operator-li\u200b", "\u202eoperator-li", "operator\x00li"):
        with pytest.raises(ValueError, match="named person"):
            explain(ctx, d.id, hidden, "看不见的字符")
    with pytest.raises(DiscrepancyNotFoundError):
        explain(ctx, 10**9, "operator-li", "不存在")
    explained = explain(ctx, d.id, "operator-li", "银行系统故障，回盘延迟")
    assert explained.state == "explained" and explained.explained_by == "operator-li"
    assert summary(ctx)["by_state"] == {"explained": 1}
    with pytest.raises(InvalidTransitionError):
        explain(ctx, d.id, "operator-zhao", "再次说明")
    closed = close(ctx, d.id, "supervisor-wang", "已电话确认")
    assert (closed.state, closed.closed_by, closed.close_reason) == (
        "closed",
        "supervisor-wang",
        "已电话确认",
    )
    assert closed.closed_at is not None
    trail = history(ctx, d.id)
    assert [(e.event, e.from_state, e.to_state, e.actor) for e in trail] == [
        ("detect", None, "open", "recon"),
        ("explain", "open", "explained", "operator-li"),
        ("close", "explained", "closed", "supervisor-wang"),
    ]
    # the audit log names who explained and who closed, with what they said
    with ctx.sessions() as s:
        audited = s.scalars(
            select(AuditRecord)
            .where(AuditRecord.target_type == "discrepancy")
            .order_by(AuditRecord.id)
        ).all()
    assert [(a.action, a.actor, a.target_id, a.reason) for a in audited] == [
        ("discrepancy.explain", "operator-li", str(d.id), "银行系统故障，回盘延迟"),
        ("discrepancy.close", "supervisor-wang", str(d.id), "已电话确认"),
    ]
    assert audited[1].detail == {"type": d.type, "from": "explained", "to": "closed"}
    # closed stays closed: the same condition detected again adds nothing
    again = reconcile(ctx, "recon", now=utcnow() + LATER)
    assert again.opened == {} and again.open_by_type == {}
    assert list_discrepancies(ctx, states=["closed"])[0].id == d.id
