"""Operator cases (待处理事项): what a person does about them.

A case is opened by the worker (an unknown outcome after inquiries, a conflicting result,
a result for an item never sent, a broken result file…) and stays open until a person acts:

- **close** it, saying why (a supervisor);
- record the bank's **manual confirmation** of an item still awaiting its outcome
  (``unknown`` or ``operator_case``): paid, with the bank's reference, or failed, with our
  reason code. One operator records it; a *different* supervisor approves or rejects it
  (maker-checker). Only the approval moves the item, through the state machine's operator
  events (``escalate`` first for an ``unknown`` item, then ``operator_paid`` /
  ``operator_failed``), and stages what a bank result would: the beneficiary's SMS, the
  batch's completion; the upstream feed reads the item events;
- **re-inquire**: put the case's file back where the worker inquires about it
  (``gateway.dispatch.service.request_reinquiry``) — never a resend.

Every step is written to the audit log in the same transaction.

A ``result_file_invalid`` case closes by itself when the bank publishes a valid version of
the refused file and it settles the items the case held (``gateway.feedback.service``:
closed by the worker, with the reason, audited as ``case.auto_close``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.dispatch.service import Reinquiry, ReinquiryRefusedError, request_reinquiry
from gateway.feedback.models import ManualConfirmation, OperatorCase
from gateway.feedback.reasons import REASONS
from gateway.kit.clock import utcnow
from gateway.kit.db import session_scope
from gateway.kit.logging import get_logger
from gateway.notifications.service import stage_notices
from gateway.payments.states import FileState, ItemEvent, ItemState
from gateway.payments.transitions import complete_if_final, move_items
from gateway.rework import audit
from gateway.rework.errors import MakerCheckerError, ReworkError

log = get_logger(__name__)

# an item a bank's manual confirmation may settle: its outcome is not known to us
CONFIRMABLE = (ItemState.UNKNOWN, ItemState.OPERATOR_CASE)
# reason codes an operator may record for a failure the bank confirmed by hand (not the
# gateway's own: a file the bank rejected, a bounce, an unmapped code, a file never made)
_NOT_MANUAL = {
    "file_rejected",
    "bounced",
    "unmapped_bank_code",
    "request_unrenderable",
    "dispatch_config_error",
}
MANUAL_FAILURE_CODES = tuple(code for code in REASONS if code not in _NOT_MANUAL)
BANK_REF_MAX = 64


class CaseError(ReworkError):
    """A refused case action (the dashboard shows ``message_zh`` / ``message_en``)."""

    def __init__(self, code: str, message_zh: str, message_en: str) -> None:
        super().__init__(message_zh, message_en)
        self.code = code


class ConfirmationState(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"

    @property
    def label_zh(self) -> str:
        return {"proposed": "待复核", "approved": "已批准", "rejected": "已驳回"}[self.value]


@dataclass(frozen=True, slots=True)
class ConfirmationDecision:
    confirmation_id: int
    item_id: int
    state: str
    item_state: str


def _case(session: Session, case_id: int) -> OperatorCase:
    case = session.get(OperatorCase, case_id, with_for_update=True)
    if case is None:
        raise CaseError("case_not_found", f"事项 {case_id} 不存在", f"case {case_id} not found")
    return case


def close_case(ctx: Context, case_id: int, actor: str, reason: str) -> None:
    """Close an open case with the stated reason (who, when and why are kept)."""
    actor = audit.operator_name(actor)
    reason = audit.stated_reason(reason, "关闭事项", "closing a case")
    with session_scope(ctx.sessions) as session:
        case = _case(session, case_id)
        now = utcnow()
        closed = session.execute(
            update(OperatorCase)
            .where(OperatorCase.id == case_id, OperatorCase.state == "open")
            .values(state="closed", closed_at=now, closed_by=actor, close_reason=reason)
            .execution_options(synchronize_session=False)
        )
        if int(closed.rowcount) != 1:  # type: ignore[attr-defined]
            raise CaseError(
                "case_closed", f"事项 {case_id} 已关闭", f"case {case_id} is already closed"
            )
        audit.record(
            session,
            actor=actor,
            action="case.close",
            target_type="operator_case",
            target_id=case_id,
            reason=reason,
            detail={"kind": case.kind, "item_id": case.item_id, "batch_id": case.batch_id},
        )
    log.info("case.closed", case_id=case_id, actor=actor)


def reinquire_case(ctx: Context, case_id: int, actor: str) -> Reinquiry:
    """Ask the worker to inquire again about the file of an open case (recorded, audited).
    Refused while a manual confirmation of one of its items awaits a decision."""
    actor = audit.operator_name(actor)
    with session_scope(ctx.sessions) as session:
        case = _case(session, case_id)
        if case.state != "open":
            raise CaseError(
                "case_closed", f"事项 {case_id} 已关闭", f"case {case_id} is already closed"
            )
        if case.outbound_file_id is None:
            raise CaseError(
                "not_inquirable",
                "此事项不涉及发往银行的文件，无法重新查询",
                "this case concerns no file sent to the bank",
            )
        pending = session.scalar(
            select(ManualConfirmation.id)
            .join(PaymentItem, PaymentItem.id == ManualConfirmation.item_id)
            .where(
                PaymentItem.outbound_file_id == case.outbound_file_id,
                ManualConfirmation.state == ConfirmationState.PROPOSED.value,
            )
            .limit(1)
        )
        if pending is not None:
            raise CaseError(
                "confirmation_pending",
                "该文件有明细的银行人工确认正待复核，请先审核后再重新查询",
                "a manual confirmation of an item of this file awaits approval",
            )
        try:
            done = request_reinquiry(ctx, session, case.outbound_file_id, f"operator:{actor}")
        except ReinquiryRefusedError as exc:
            raise CaseError(exc.code, _REINQUIRY_ZH.get(exc.code, str(exc)), str(exc)) from None
        audit.record(
            session,
            actor=actor,
            action="case.reinquire",
            target_type="operator_case",
            target_id=case_id,
            detail={
                "outbound_file_id": done.file_id,
                "mode": done.mode,
                "from_state": done.from_state,
                "to_state": done.to_state,
            },
        )
    log.info("case.reinquiry", case_id=case_id, file_id=done.file_id, actor=actor)
    return done


_REINQUIRY_ZH = {
    "file_not_found": "文件不存在",
    "file_busy": "后台任务正在处理该文件，请稍后再试",
    "results_polled": "文件已送达银行，系统每个周期自动收取其回盘，无需重新查询",
    "items_decided": "该文件已有明细收到银行结果，说明银行已收到文件，其余结果将随回盘到达",
    "not_inquirable": "该文件当前状态不能重新查询",
}


def propose_confirmation(
    ctx: Context,
    *,
    item_id: int,
    proposer: str,
    outcome: str,
    note: str,
    bank_ref: str | None = None,
    reason_code: str | None = None,
    case_id: int | None = None,
) -> int:
    """Record the bank's manual confirmation of one item's outcome (the maker's half).
    Returns the confirmation's id; nothing moves until a different supervisor approves."""
    proposer = audit.operator_name(proposer)
    note = audit.stated_reason(note, "记录银行人工确认", "a manual confirmation")
    bank_ref = (bank_ref or "").strip() or None
    reason_code = (reason_code or "").strip() or None
    if outcome == "paid":
        if not bank_ref or len(bank_ref) > BANK_REF_MAX:
            raise CaseError(
                "bank_ref_required",
                "确认已支付须填写银行流水号（不超过64个字符）",
                "a paid confirmation needs the bank's reference (at most 64 characters)",
            )
        reason_code = None
    elif outcome == "failed":
        if reason_code not in MANUAL_FAILURE_CODES:
            raise CaseError(
                "reason_code_required",
                "确认支付失败须选择失败原因",
                "a failed confirmation needs a reason code",
            )
        if bank_ref and len(bank_ref) > BANK_REF_MAX:
            bank_ref = bank_ref[:BANK_REF_MAX]
    else:
        raise CaseError("outcome_invalid", "请选择已支付或支付失败", "choose paid or failed")
    with session_scope(ctx.sessions) as session:
        item = session.get(PaymentItem, item_id)
        if item is None:
            raise CaseError("item_not_found", "明细不存在", f"item {item_id} not found")
        if ItemState(item.state) not in CONFIRMABLE:
            raise CaseError(
                "item_not_confirmable",
                f"明细当前状态为「{ItemState(item.state).label_zh}」，不需要人工确认",
                f"the item is {item.state}: nothing to confirm",
            )
        if case_id is not None and session.get(OperatorCase, case_id) is None:
            case_id = None
        row = ManualConfirmation(
            item_id=item.id,
            case_id=case_id,
            outcome=outcome,
            bank_ref=bank_ref,
            reason_code=reason_code,
            note=note,
            state=ConfirmationState.PROPOSED.value,
            item_state=item.state,
            proposed_by=proposer,
            proposed_at=utcnow(),
            active_item_id=item.id,
        )
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            raise CaseError(
                "confirmation_exists",
                "该明细已有待复核或已批准的人工确认",
                "the item already has a standing manual confirmation",
            ) from None
        audit.record(
            session,
            actor=proposer,
            action="case.confirm_propose",
            target_type="item",
            target_id=item.id,
            reason=note,
            detail={
                "confirmation_id": row.id,
                "outcome": outcome,
                "reason_code": reason_code,
                "has_bank_ref": bank_ref is not None,
                "case_id": case_id,
            },
        )
        log.info("case.confirmation_proposed", confirmation_id=row.id, outcome=outcome)
        return row.id


def _decidable(session: Session, confirmation_id: int, checker: str) -> ManualConfirmation:
    row = session.get(ManualConfirmation, confirmation_id, with_for_update=True)
    if row is None:
        raise CaseError(
            "confirmation_not_found",
            f"人工确认 {confirmation_id} 不存在",
            f"manual confirmation {confirmation_id} not found",
        )
    if row.state != ConfirmationState.PROPOSED:
        raise CaseError(
            "confirmation_decided",
            f"人工确认 {confirmation_id} 已{ConfirmationState(row.state).label_zh}，不能再次审核",
            f"manual confirmation {confirmation_id} is already {row.state}",
        )
    if audit.same_operator(row.proposed_by, checker):
        raise MakerCheckerError(
            "记录人不能审核自己记录的银行人工确认（需另一名复核员审核）",
            "the person who recorded a manual confirmation cannot approve it (maker-checker)",
        )
    return row


def _claim(
    session: Session, row: ManualConfirmation, state: ConfirmationState, **values: object
) -> None:
    """Conditional update: only one decision ever lands, even between concurrent checkers."""
    result = session.execute(
        update(ManualConfirmation)
        .where(
            ManualConfirmation.id == row.id,
            ManualConfirmation.state == ConfirmationState.PROPOSED.value,
        )
        .values(state=state.value, **values)
        .execution_options(synchronize_session=False)
    )
    if int(result.rowcount) != 1:  # type: ignore[attr-defined]
        raise CaseError(
            "confirmation_decided",
            f"人工确认 {row.id} 刚被他人审核",
            f"manual confirmation {row.id} was just decided",
        )


def approve_confirmation(
    ctx: Context, confirmation_id: int, approver: str, *, note: str | None = None
) -> ConfirmationDecision:
    """Approve a manual confirmation (the checker's half; never its recorder): the item
    moves to ``paid`` or ``failed`` with recorded events, its SMS is staged and its batch
    completes when nothing else awaits the bank."""
    approver = audit.operator_name(approver)
    with session_scope(ctx.sessions) as session:
        row = _decidable(session, confirmation_id, approver)
        item = session.get(PaymentItem, row.item_id, with_for_update=True)
        assert item is not None  # noqa: S101 (a foreign key)
        source = ItemState(item.state)
        if source not in CONFIRMABLE:
            raise CaseError(
                "item_changed",
                f"明细状态已变为「{source.label_zh}」（如银行回盘已到），请驳回此确认",
                f"the item is now {source.value} (e.g. the bank's result arrived); reject this",
            )
        if item.outbound_file_id is not None:
            file_state = session.scalar(
                select(OutboundFile.state).where(OutboundFile.id == item.outbound_file_id)
            )
            if file_state is not None and FileState(file_state).needs_work():
                # the worker may still upload this file after an inquiry that does not find
                # it: a confirmation now could let the bank pay an item we recorded as failed
                # (and re-issue), or pay it twice
                raise CaseError(
                    "file_in_inquiry",
                    "该明细所在的银行文件仍在查询/发送中，待查询结束（转为人工处理）后再审核",
                    "the item's bank file is still being inquired about or sent; approve "
                    "after the inquiries end (operator case)",
                )
        now = utcnow()
        note = (note or "").strip() or None
        _claim(
            session,
            row,
            ConfirmationState.APPROVED,
            decided_by=approver,
            decided_at=now,
            decision_note=note,
        )
        actor = f"operator:{approver}"
        detail = {
            "manual_confirmation_id": row.id,
            "recorded_by": row.proposed_by,
            "approved_by": approver,
            "case_id": row.case_id,
        }
        where = PaymentItem.id == item.id
        if source == ItemState.UNKNOWN:
            move_items(session, where, ItemEvent.ESCALATE, actor, detail=detail, now=now)
        if row.outcome == "paid":
            values: dict[str, object] = {
                "bank_ref": row.bank_ref,
                "paid_at": now,
                "reason_code": None,
                "bank_message": "银行人工确认已支付",
            }
            event = ItemEvent.OPERATOR_PAID
        else:
            values = {
                "reason_code": row.reason_code,
                "bank_message": "银行人工确认支付失败",
                **({"bank_ref": row.bank_ref} if row.bank_ref else {}),
            }
            event = ItemEvent.OPERATOR_FAILED
        moved = move_items(session, where, event, actor, values=values, detail=detail, now=now)
        if moved != 1:
            raise CaseError(
                "item_changed", "明细状态已变化，请刷新后重试", "the item changed; try again"
            )
        target = ItemState.PAID if row.outcome == "paid" else ItemState.FAILED
        # what a bank result stages in its transaction: the beneficiary's SMS (outbox)
        stage_notices(session, [item.id], "paid" if target == ItemState.PAID else "failed")
        batch = session.get(Batch, item.batch_id, with_for_update=True)
        if batch is not None:
            complete_if_final(session, batch, actor)
        audit.record(
            session,
            actor=approver,
            action="case.confirm_approve",
            target_type="item",
            target_id=item.id,
            reason=note,
            detail={
                "confirmation_id": row.id,
                "outcome": row.outcome,
                "from_state": source.value,
                "to_state": target.value,
                "recorded_by": row.proposed_by,
            },
        )
    log.info("case.confirmation_approved", confirmation_id=row.id, outcome=row.outcome)
    return ConfirmationDecision(row.id, row.item_id, ConfirmationState.APPROVED, target.value)


def reject_confirmation(
    ctx: Context, confirmation_id: int, checker: str, reason: str
) -> ConfirmationDecision:
    """Reject a manual confirmation (never by its recorder); nothing moves, and the item
    may be confirmed again."""
    checker = audit.operator_name(checker)
    reason = audit.stated_reason(reason, "驳回银行人工确认", "rejecting a manual confirmation")
    with session_scope(ctx.sessions) as session:
        row = _decidable(session, confirmation_id, checker)
        _claim(
            session,
            row,
            ConfirmationState.REJECTED,
            decided_by=checker,
            decided_at=utcnow(),
            decision_note=reason,
            active_item_id=None,
        )
        item_state = session.scalar(select(PaymentItem.state).where(PaymentItem.id == row.item_id))
        audit.record(
            session,
            actor=checker,
            action="case.confirm_reject",
            target_type="item",
            target_id=row.item_id,
            reason=reason,
            detail={"confirmation_id": row.id, "outcome": row.outcome},
        )
    log.info("case.confirmation_rejected", confirmation_id=row.id)
    return ConfirmationDecision(
        row.id, row.item_id, ConfirmationState.REJECTED, str(item_state or "")
    )
