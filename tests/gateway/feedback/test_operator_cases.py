"""What people do about operator cases (``gateway.feedback.cases``): close with a reason,
record the bank's manual confirmation (maker-checker; only the approval moves the item and
stages what a bank result would: SMS, batch completion, the upstream feed), re-inquire."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import select, update

from gateway.batches.models import Batch, ItemEventRecord, PaymentItem
from gateway.context import Context
from gateway.feedback.cases import (
    MANUAL_FAILURE_CODES,
    CaseError,
    approve_confirmation,
    close_case,
    propose_confirmation,
    reinquire_case,
    reject_confirmation,
)
from gateway.feedback.models import ManualConfirmation, OperatorCase
from gateway.notifications.models import SmsNotice
from gateway.payments.states import BatchEvent, ItemEvent
from gateway.payments.transitions import move_batch, move_items
from gateway.rework.errors import MakerCheckerError, ReasonRequiredError
from gateway.rework.models import AuditRecord
from gateway.upstream.feed import stage_changes
from gateway.upstream.models import UpstreamChange
from tests.gateway.helpers import persons
from tests.gateway.rework.support import batch, item, item_state

PEOPLE = persons(6, seed=53)
NOTE = "电话向代发银行核实，经办人张某"


def one_item_in_a_case(ctx: Context, no: str = "K-1") -> tuple[int, int]:
    """A sent batch of one item whose outcome became an operator case: (case id, item id)."""
    batch(ctx, no, PEOPLE[:1])
    it = item(ctx, no, 1)
    with ctx.sessions.begin() as s:
        b = s.get(Batch, it.batch_id)
        assert b is not None
        move_batch(s, b, BatchEvent.PLAN, "test")
        move_batch(s, b, BatchEvent.ALL_DELIVERED, "test")
        for event in (ItemEvent.PLAN, ItemEvent.DELIVER, ItemEvent.ESCALATE):
            move_items(s, PaymentItem.id == it.id, event, "test")
        case = OperatorCase(kind="conflicting_result", item_id=it.id, batch_id=b.id, summary="s")
        s.add(case)
        s.flush()
        return case.id, it.id


def test_close_case_needs_a_reason_and_happens_once(ctx: Context) -> None:
    case_id, _ = one_item_in_a_case(ctx)
    with pytest.raises(ReasonRequiredError):
        close_case(ctx, case_id, "sup", " ")
    close_case(ctx, case_id, "sup", "银行已书面确认")
    with ctx.sessions() as s:
        case = s.get(OperatorCase, case_id)
        row = s.scalar(select(AuditRecord).where(AuditRecord.action == "case.close"))
    assert case is not None and (case.state, case.closed_by) == ("closed", "sup")
    assert case.close_reason == "银行已书面确认" and case.closed_at is not None
    assert row is not None and row.actor == "sup" and row.reason == "银行已书面确认"
    with pytest.raises(CaseError) as again:
        close_case(ctx, case_id, "sup", "again")
    assert again.value.code == "case_closed"
    with pytest.raises(CaseError):
        close_case(ctx, 999_999, "sup", "x")


def test_an_approved_paid_confirmation_acts_like_a_bank_result(ctx: Context) -> None:
    case_id, item_id = one_item_in_a_case(ctx)
    cid = propose_confirmation(
        ctx, item_id=item_id, proposer="op", outcome="paid", note=NOTE, bank_ref="BK-7",
        case_id=case_id,
    )  # fmt: skip
    assert item_state(ctx, "K-1", 1) == "operator_case"
    decision = approve_confirmation(ctx, cid, "sup", note="ok")
    assert (decision.state, decision.item_state) == ("approved", "paid")
    it = item(ctx, "K-1", 1)
    assert it.state == "paid" and it.bank_ref == "BK-7" and it.paid_at is not None
    with ctx.sessions() as s:
        last = s.scalar(
            select(ItemEventRecord)
            .where(ItemEventRecord.item_id == item_id)
            .order_by(ItemEventRecord.id.desc())
        )
        notice = s.scalar(select(SmsNotice).where(SmsNotice.item_id == item_id))
        b = s.get(Batch, it.batch_id)
        mc = s.get(ManualConfirmation, cid)
    assert last is not None and (last.event, last.actor) == ("operator_paid", "operator:sup")
    assert last.detail is not None and last.detail["manual_confirmation_id"] == cid
    assert notice is not None and notice.notice_type == "paid"
    assert b is not None and b.state == "completed"  # nothing else awaited the bank
    assert mc is not None and mc.active_item_id == item_id and mc.decided_by == "sup"
    # upstream hears of it through the item events, as of any outcome
    stage_changes(ctx)
    with ctx.sessions() as s:
        types = set(s.scalars(select(UpstreamChange.type)))
    assert {"item.paid", "batch.completed"} <= types


def test_the_recorder_never_approves_their_own_confirmation(ctx: Context) -> None:
    _, item_id = one_item_in_a_case(ctx)
    cid = propose_confirmation(
        ctx, item_id=item_id, proposer="sup", outcome="failed", note=NOTE,
        reason_code="account_frozen",
    )  # fmt: skip
    with pytest.raises(MakerCheckerError):
        approve_confirmation(ctx, cid, " SUP ")
    with pytest.raises(MakerCheckerError):
        reject_confirmation(ctx, cid, "sup", "x")
    assert item_state(ctx, "K-1", 1) == "operator_case"
    decision = approve_confirmation(ctx, cid, "sup2")
    assert decision.item_state == "failed"
    assert item(ctx, "K-1", 1).reason_code == "account_frozen"


def test_what_a_confirmation_must_say(ctx: Context) -> None:
    _, item_id = one_item_in_a_case(ctx)
    with pytest.raises(CaseError) as no_ref:
        propose_confirmation(ctx, item_id=item_id, proposer="op", outcome="paid", note=NOTE)
    assert no_ref.value.code == "bank_ref_required"
    with pytest.raises(CaseError) as no_code:
        propose_confirmation(ctx, item_id=item_id, proposer="op", outcome="failed", note=NOTE)
    assert no_code.value.code == "reason_code_required"
    with pytest.raises(CaseError) as not_ours:
        propose_confirmation(
            ctx, item_id=item_id, proposer="op", outcome="failed", note=NOTE,
            reason_code="file_rejected",
        )  # fmt: skip
    assert not_ours.value.code == "reason_code_required"
    with pytest.raises(ReasonRequiredError):
        propose_confirmation(
            ctx, item_id=item_id, proposer="op", outcome="paid", note="", bank_ref="B"
        )
    with pytest.raises(CaseError) as bad:
        propose_confirmation(ctx, item_id=item_id, proposer="op", outcome="maybe", note=NOTE)
    assert bad.value.code == "outcome_invalid"
    # one standing confirmation per item; a rejected one frees it
    cid = propose_confirmation(
        ctx, item_id=item_id, proposer="op", outcome="paid", note=NOTE, bank_ref="B"
    )
    with pytest.raises(CaseError) as twice:
        propose_confirmation(
            ctx, item_id=item_id, proposer="op2", outcome="paid", note=NOTE, bank_ref="B"
        )
    assert twice.value.code == "confirmation_exists"
    with pytest.raises(ReasonRequiredError):
        reject_confirmation(ctx, cid, "sup", "")
    rejected = reject_confirmation(ctx, cid, "sup", "流水号与银行回单不符")
    assert rejected.state == "rejected" and rejected.item_state == "operator_case"
    with pytest.raises(CaseError):
        approve_confirmation(ctx, cid, "sup")
    assert (
        propose_confirmation(
            ctx, item_id=item_id, proposer="op", outcome="paid", note=NOTE, bank_ref="B2"
        )
        != cid
    )


def test_an_item_that_moved_on_is_not_confirmed(ctx: Context) -> None:
    _, item_id = one_item_in_a_case(ctx)
    cid = propose_confirmation(
        ctx, item_id=item_id, proposer="op", outcome="failed", note=NOTE,
        reason_code="account_closed",
    )  # fmt: skip
    with ctx.sessions.begin() as s:  # the bank's own result arrived meanwhile
        move_items(s, PaymentItem.id == item_id, ItemEvent.RESULT_PAID, "feedback")
    with pytest.raises(CaseError) as changed:
        approve_confirmation(ctx, cid, "sup")
    assert changed.value.code == "item_changed"
    assert item_state(ctx, "K-1", 1) == "paid"
    with pytest.raises(CaseError) as settled:
        propose_confirmation(
            ctx, item_id=item_id, proposer="op", outcome="paid", note=NOTE, bank_ref="B"
        )
    assert settled.value.code in {"item_not_confirmable", "confirmation_exists"}


def test_reinquire_needs_an_open_case_about_a_file(ctx: Context) -> None:
    case_id, _ = one_item_in_a_case(ctx)
    with pytest.raises(CaseError) as no_file:
        reinquire_case(ctx, case_id, "op")
    assert no_file.value.code == "not_inquirable"
    close_case(ctx, case_id, "sup", "done")
    with pytest.raises(CaseError) as closed:
        reinquire_case(ctx, case_id, "op")
    assert closed.value.code == "case_closed"


def test_no_confirmation_is_approved_while_the_file_is_still_in_inquiry(ctx: Context) -> None:
    """An unknown upload may still be re-sent by the worker after an inquiry that does not
    find it: confirming its items now could pay one we record as failed, or pay it twice."""
    from gateway.dispatch.models import OutboundFile
    from gateway.payments.states import FileState

    _, item_id = one_item_in_a_case(ctx, "K-9")
    with ctx.sessions.begin() as s:
        it = s.get(PaymentItem, item_id)
        assert it is not None
        f = OutboundFile(
            bank_profile="hnrcu", batch_id=it.batch_id, file_no=1, file_name="PAY_K9_01.txt",
            signature_name="PAY_K9_01.txt.sig", content_enc=b"x", signature=b"x",
            sha256="0" * 64, size=1, item_count=1, total_fen=it.amount_fen,
            state=FileState.UNKNOWN.value,
        )  # fmt: skip
        s.add(f)
        s.flush()
        it.outbound_file_id = f.id
        file_id = f.id
    cid = propose_confirmation(
        ctx, item_id=item_id, proposer="op", outcome="failed", note=NOTE,
        reason_code="account_frozen",
    )  # fmt: skip
    with pytest.raises(CaseError) as refused:
        approve_confirmation(ctx, cid, "sup")
    assert refused.value.code == "file_in_inquiry"
    assert item_state(ctx, "K-9", 1) == "operator_case"
    # once the inquiries have ended (the file escalated to a person), it may be approved
    with ctx.sessions.begin() as s:
        f2 = s.get(OutboundFile, file_id)
        assert f2 is not None
        f2.state = FileState.ESCALATED.value
    assert approve_confirmation(ctx, cid, "sup").item_state == "failed"


# --- cases the worker opens when a bank file cannot be made or delivered (issue 11) ---------


def _types_by_item(ctx: Context) -> dict[int | None, list[str]]:
    stage_changes(ctx)
    out: dict[int | None, list[str]] = {}
    with ctx.sessions() as s:
        for item_id, kind in s.execute(
            select(UpstreamChange.item_id, UpstreamChange.type).order_by(UpstreamChange.id)
        ):
            out.setdefault(item_id, []).append(kind)
    return out


def test_a_hold_is_reported_upstream_then_its_outcome(ctx: Context) -> None:
    _, item_id = one_item_in_a_case(ctx)
    assert _types_by_item(ctx) == {item_id: ["item.operator_case"]}
    cid = propose_confirmation(
        ctx, item_id=item_id, proposer="op", outcome="paid", note=NOTE, bank_ref="BK-8"
    )
    approve_confirmation(ctx, cid, "sup")
    assert _types_by_item(ctx)[item_id] == ["item.operator_case", "item.paid"]


def test_a_hold_already_resolved_when_staged_is_not_reported(ctx: Context) -> None:
    _, item_id = one_item_in_a_case(ctx)
    cid = propose_confirmation(
        ctx, item_id=item_id, proposer="op", outcome="paid", note=NOTE, bank_ref="BK-9"
    )
    approve_confirmation(ctx, cid, "sup")
    assert _types_by_item(ctx)[item_id] == ["item.paid"]


def test_an_unsendable_batch_case_is_closed_its_items_are_not_confirmed(ctx: Context) -> None:
    from gateway.worker import run_cycle

    batch(ctx, "K-U", PEOPLE[:2])
    with ctx.sessions.begin() as s:
        s.execute(update(Batch).where(Batch.batch_no == "K-U").values(subsidy_name="耕地\x1b补贴"))
    assert run_cycle(ctx, "w1").failed_steps == []
    with ctx.sessions() as s:
        case = s.scalar(select(OperatorCase))
    assert case is not None and case.kind == "request_unrenderable"
    # nothing to inquire about: no file was ever made
    with pytest.raises(CaseError) as refused:
        reinquire_case(ctx, case.id, "op")
    assert refused.value.code == "not_inquirable"
    # the items failed by the gateway itself: not for a bank's manual confirmation
    with pytest.raises(CaseError) as not_confirmable:
        propose_confirmation(
            ctx, item_id=item(ctx, "K-U", 1).id, proposer="op", outcome="paid", note=NOTE,
            bank_ref="BK-1",
        )  # fmt: skip
    assert not_confirmable.value.code == "item_not_confirmable"
    assert not {"request_unrenderable", "dispatch_config_error"} & set(MANUAL_FAILURE_CODES)
    close_case(ctx, case.id, "sup", "已通知乡镇更正补贴项目名称后重新发放")
    with ctx.sessions() as s:
        assert s.get(OperatorCase, case.id).state == "closed"  # type: ignore[union-attr]


def test_a_file_the_bank_could_not_be_reached_for_is_paid_once_when_it_is_back(
    ctx: Context, bank: Any
) -> None:
    """Issue 12: a bank unreachable past the retry budget opens a ``never_sent`` case that
    only tells the operator — nothing left, so the items are not held and the worker goes on
    trying. A re-inquiry asks for the next attempt now (the far side is looked at first);
    the file is paid once and the case closes by itself."""
    from gateway.dispatch.models import OutboundFile
    from gateway.payments.states import FileState
    from gateway.worker import run_cycle
    from tests.gateway.pipeline import drive
    from tests.waits import wait_until

    real = ctx.profiles["hnrcu"]
    ctx.profiles["hnrcu"] = dataclasses.replace(
        real,
        transport_config={**real.transport_config, "port": 9},  # nobody listens
    )
    ctx.settings.delivery_max_attempts = 2
    batch(ctx, "K-R", PEOPLE[:3])

    def told() -> OperatorCase | None:
        run_cycle(ctx, "w1")
        with ctx.sessions() as s:
            return s.scalar(select(OperatorCase))

    case = wait_until(told, timeout=120, what="the delivery budget spent")
    with ctx.sessions() as s:
        waiting = set(s.scalars(select(PaymentItem.state)))
        file_state = s.scalar(select(OutboundFile.state))
    assert case.kind == "never_sent" and case.state == "open"
    assert waiting == {"queued"} and file_state == FileState.PLANNED
    assert _types_by_item(ctx) == {}  # no hold reported upstream: there is none
    # the bank is reachable again: a re-inquiry makes the next attempt due now
    ctx.profiles["hnrcu"] = real
    done = reinquire_case(ctx, case.id, "op")
    assert (done.mode, done.from_state, done.to_state) == ("delivery", "planned", "planned")
    assert drive(ctx) == {"paid": 3}
    summary = bank.ledger.summary()
    assert summary["credits"] == 3 and summary["double_credits"] == 0
    items = {k: v for k, v in _types_by_item(ctx).items() if k is not None}
    assert sorted(items.values()) == [["item.paid"]] * 3
    with ctx.sessions() as s:
        closed = s.get(OperatorCase, case.id)
    assert closed is not None and closed.state == "closed" and closed.closed_by == "system"
