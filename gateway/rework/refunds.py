"""Treasury refunds (退回国库), with maker-checker.

Article 10 (十一): what cannot be corrected within the year is returned to the treasury and
tracked until it is corrected and paid. Here:

- an operator *proposes* a refund of items still unpaid — ``failed``, ``returned`` or
  ``bounced`` — whose fiscal year has reached the refund cut-off (setting
  ``refund_cutoff``, ``MM-DD``, year end by default), chosen by item ids or by batch /
  fiscal year / payer account; one refund covers one payer account and one fiscal year
  (one treasury voucher);
- a *different* operator approves it (the items move to ``refunded`` with a recorded
  event, and a treasury reference number is minted) or rejects it (its items are free to
  be proposed again). A decided refund is never decided again;
- the approved refund stays on record: the items can still be re-issued later (intake's
  ``reissue_of`` accepts ``refunded`` items), and ``refund_items`` gives upstream the
  ``{batch_no, seq}`` to name.

An item is in at most one standing (proposed or approved) refund: the unique
``active_item_id`` column refuses a second one even under concurrent proposals. Approval
is all or nothing: if any item moved on since the proposal (e.g. it was re-issued), the
approval is refused and the checker rejects the proposal so that a fresh one can be made.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.kit.clock import china_today, utcnow
from gateway.kit.db import session_scope
from gateway.kit.logging import get_logger
from gateway.payments.states import ItemEvent, ItemState, item_sources
from gateway.payments.transitions import move_items
from gateway.rework import audit
from gateway.rework.errors import (
    MakerCheckerError,
    NothingSelectedError,
    RefundNotFoundError,
    RefundSelectionError,
    RefundStaleError,
    RefundStateError,
)
from gateway.rework.models import TreasuryRefund, TreasuryRefundItem
from gateway.rework.scope import Regions, any_item_outside, region_clause

log = get_logger(__name__)

# failed, returned, bounced: unpaid and final for the bank
REFUNDABLE = tuple(item_sources(ItemEvent.REFUND))
_CHUNK = 5000


class RefundState(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"

    @property
    def label_zh(self) -> str:
        return {"proposed": "待审核", "approved": "已批准退回国库", "rejected": "已驳回"}[
            self.value
        ]


@dataclass(frozen=True, slots=True)
class RefundView:
    id: int
    state: str
    fiscal_year: int
    payer_account: str
    cutoff: dt.date
    item_count: int
    amount_fen: int
    reason: str
    proposed_by: str
    proposed_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_note: str | None
    treasury_ref: str | None

    @property
    def state_zh(self) -> str:
        return RefundState(self.state).label_zh

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "state_zh": self.state_zh,
            "fiscal_year": self.fiscal_year,
            "payer_account": self.payer_account,
            "cutoff": self.cutoff.isoformat(),
            "item_count": self.item_count,
            "amount_fen": self.amount_fen,
            "reason": self.reason,
            "proposed_by": self.proposed_by,
            "proposed_at": self.proposed_at.isoformat() + "Z",
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() + "Z" if self.decided_at else None,
            "decision_note": self.decision_note,
            "treasury_ref": self.treasury_ref,
        }


@dataclass(frozen=True, slots=True)
class RefundItemView:
    """An item of a refund, masked, with the reference upstream names to re-issue it."""

    item_id: int
    batch_no: str
    seq: int
    amount_fen: int
    from_state: str
    state: str  # now (refunded, or reissued once re-issued after the refund)
    name_masked: str
    id_number_masked: str
    account_masked: str
    reason_code: str | None

    @property
    def reissue_of(self) -> dict[str, Any]:
        return {"batch_no": self.batch_no, "seq": self.seq}


def _view(r: TreasuryRefund) -> RefundView:
    return RefundView(
        id=r.id,
        state=r.state,
        fiscal_year=r.fiscal_year,
        payer_account=r.payer_account,
        cutoff=r.cutoff,
        item_count=r.item_count,
        amount_fen=r.amount_fen,
        reason=r.reason,
        proposed_by=r.proposed_by,
        proposed_at=r.proposed_at,
        decided_by=r.decided_by,
        decided_at=r.decided_at,
        decision_note=r.decision_note,
        treasury_ref=r.treasury_ref,
    )


def cutoff_date(cutoff: str, fiscal_year: int) -> dt.date:
    """The day in ``fiscal_year`` from which its unpaid items may be refunded."""
    try:
        month, day = (int(p) for p in cutoff.split("-"))
        return dt.date(fiscal_year, month, day)
    except ValueError:
        raise ValueError(f"refund cut-off {cutoff!r} is not a valid MM-DD day") from None


def mint_treasury_ref(refund_id: int, today: dt.date) -> str:
    """Our reference of the refund for the treasury voucher: ``TK`` + date + refund id."""
    return f"TK{today:%Y%m%d}{refund_id:06d}"


@dataclass(frozen=True, slots=True)
class _Candidate:
    item_id: int
    state: str
    amount_fen: int
    fiscal_year: int
    payer_account: str
    active: bool


def _candidates(session: Session, query: Any) -> list[_Candidate]:
    standing = (
        select(TreasuryRefundItem.id)
        .where(TreasuryRefundItem.active_item_id == PaymentItem.id)
        .exists()
    )
    rows = session.execute(
        query.with_only_columns(
            PaymentItem.id,
            PaymentItem.state,
            PaymentItem.amount_fen,
            Batch.fiscal_year,
            Batch.payer_account,
            standing,
        ).order_by(PaymentItem.id)
    ).all()
    return [
        _Candidate(int(a), str(b), int(c), int(d), str(e), bool(f)) for a, b, c, d, e, f in rows
    ]


def propose_refund(
    ctx: Context,
    *,
    proposer: str,
    reason: str,
    item_ids: Sequence[int] | None = None,
    batch_no: str | None = None,
    fiscal_year: int | None = None,
    payer_account: str | None = None,
    as_of: dt.date | None = None,
    regions: Regions = None,
) -> RefundView:
    """Propose a treasury refund (the maker's half).

    By ``item_ids``: every one must be refundable (state, cut-off reached, in no standing
    refund) or nothing is proposed. By ``batch_no`` / ``fiscal_year`` / ``payer_account``
    (combined with AND): every refundable item matching them whose fiscal year reached the
    cut-off on ``as_of`` (today in China by default). Items outside ``regions`` (the
    proposer's region prefixes; None: every region) are as if they did not exist."""
    proposer = audit.operator_name(proposer)
    reason = audit.stated_reason(reason, "退回国库", "a treasury refund")
    as_of = as_of or china_today()
    cutoff_setting = ctx.settings.refund_cutoff
    if not item_ids and batch_no is None and fiscal_year is None and payer_account is None:
        raise NothingSelectedError(
            "请指定明细、批次号、预算年度或付款账户", "select items, a batch, a year or an account"
        )
    selection: dict[str, Any] = {
        "item_ids": sorted(set(item_ids)) if item_ids else None,
        "batch_no": batch_no,
        "fiscal_year": fiscal_year,
        "payer_account": payer_account,
        "as_of": as_of.isoformat(),
        "cutoff": cutoff_setting,
    }

    def reached(year: int) -> bool:
        return as_of >= cutoff_date(cutoff_setting, year)

    base = select(PaymentItem.id).join(Batch, Batch.id == PaymentItem.batch_id)
    if batch_no is not None:
        base = base.where(Batch.batch_no == batch_no)
    if fiscal_year is not None:
        base = base.where(Batch.fiscal_year == fiscal_year)
    if payer_account is not None:
        base = base.where(Batch.payer_account == payer_account)
    in_scope = region_clause(regions)
    if in_scope is not None:
        base = base.where(in_scope)

    with session_scope(ctx.sessions) as session:
        if item_ids:
            wanted = sorted(set(item_ids))
            found: dict[int, _Candidate] = {}
            for i in range(0, len(wanted), _CHUNK):
                chunk = wanted[i : i + _CHUNK]
                for c in _candidates(session, base.where(PaymentItem.id.in_(chunk))):
                    found[c.item_id] = c
            problems: dict[int, str] = {}
            for item_id in wanted:
                cand = found.get(item_id)
                if cand is None:
                    problems[item_id] = "not_found"
                elif ItemState(cand.state) not in REFUNDABLE:
                    problems[item_id] = f"not_refundable:{cand.state}"
                elif cand.active:
                    problems[item_id] = "already_in_refund"
                elif not reached(cand.fiscal_year):
                    problems[item_id] = "before_cutoff"
            if problems:
                raise RefundSelectionError(
                    f"{len(problems)} 笔明细不能退回国库（状态、截止日或已在退库单中）",
                    f"{len(problems)} items cannot be refunded",
                    problems,
                )
            chosen = [found[i] for i in wanted]
        else:
            pool = _candidates(
                session, base.where(PaymentItem.state.in_([s.value for s in REFUNDABLE]))
            )
            free = [c for c in pool if not c.active]
            chosen = [c for c in free if reached(c.fiscal_year)]
            if not chosen:
                early = {c.item_id: "before_cutoff" for c in free}
                if early:
                    year = min(c.fiscal_year for c in free)
                    raise RefundSelectionError(
                        f"未到退库截止日（{cutoff_date(cutoff_setting, year)}），不能退回国库",
                        f"the refund cut-off ({cutoff_date(cutoff_setting, year)}) "
                        "has not been reached",
                        early,
                    )
                raise NothingSelectedError(
                    "没有可退回国库的未支付明细", "no unpaid item to refund matches"
                )
        groups = {(c.payer_account, c.fiscal_year) for c in chosen}
        if len(groups) > 1:
            raise RefundSelectionError(
                "所选明细属于多个付款账户或预算年度，请按账户和年度分别退库",
                "the items span several payer accounts or fiscal years; refund each apart",
                {},
            )
        (account, year) = groups.pop()
        now = utcnow()
        refund = TreasuryRefund(
            state=RefundState.PROPOSED.value,
            fiscal_year=year,
            payer_account=account,
            cutoff=cutoff_date(cutoff_setting, year),
            selection=selection,
            item_count=len(chosen),
            amount_fen=sum(c.amount_fen for c in chosen),
            reason=reason,
            proposed_by=proposer,
            proposed_at=now,
        )
        session.add(refund)
        session.flush()
        try:
            for i in range(0, len(chosen), _CHUNK):
                session.execute(
                    insert(TreasuryRefundItem),
                    [
                        {
                            "refund_id": refund.id,
                            "item_id": c.item_id,
                            "amount_fen": c.amount_fen,
                            "from_state": c.state,
                            "active_item_id": c.item_id,
                        }
                        for c in chosen[i : i + _CHUNK]
                    ],
                )
        except IntegrityError:
            raise RefundSelectionError(
                "部分明细刚被他人提交退库，请刷新后重试",
                "some items were just proposed for refund by someone else; try again",
                {},
            ) from None
        audit.record(
            session,
            actor=proposer,
            action="refund.propose",
            target_type="treasury_refund",
            target_id=refund.id,
            reason=reason,
            detail={"items": refund.item_count, "amount_fen": refund.amount_fen, **selection},
        )
        session.flush()
        log.info(
            "refund.proposed",
            refund_id=refund.id,
            items=refund.item_count,
            amount_fen=refund.amount_fen,
            proposer=proposer,
        )
        return _view(refund)


def _refunds_in(regions: Regions) -> Any:
    """Refunds none of whose items lies outside ``regions`` (None: every refund)."""
    outside = any_item_outside(
        regions, TreasuryRefundItem.item_id, TreasuryRefundItem.refund_id, TreasuryRefund.id
    )
    query = select(TreasuryRefund)
    return query if outside is None else query.where(~outside)


def _load(session: Session, refund_id: int, regions: Regions = None) -> TreasuryRefund:
    """A refund; one with an item outside ``regions`` answers as a missing one."""
    refund = session.get(TreasuryRefund, refund_id)
    if refund is not None and regions is not None:
        refund = session.scalar(_refunds_in(regions).where(TreasuryRefund.id == refund_id))
    if refund is None:
        raise RefundNotFoundError(
            f"退库单 {refund_id} 不存在", f"treasury refund {refund_id} does not exist"
        )
    return refund


def _check_decidable(refund: TreasuryRefund, checker: str) -> None:
    if refund.state != RefundState.PROPOSED:
        raise RefundStateError(
            f"退库单 {refund.id} 已{RefundState(refund.state).label_zh}，不能再次审核",
            f"treasury refund {refund.id} is already {refund.state}",
        )
    if audit.same_operator(refund.proposed_by, checker):
        raise MakerCheckerError(
            "提交人不能审核自己提交的退库单（需另一名操作员审核）",
            "the proposer cannot decide their own refund (maker-checker)",
        )


def _claim_decision(
    session: Session, refund: TreasuryRefund, state: RefundState, values: dict[str, Any]
) -> None:
    """Conditional update: only one decision ever lands, even between concurrent checkers."""
    result = session.execute(
        update(TreasuryRefund)
        .where(
            TreasuryRefund.id == refund.id,
            TreasuryRefund.state == RefundState.PROPOSED.value,
        )
        .values(state=state.value, **values)
        .execution_options(synchronize_session=False)
    )
    if int(result.rowcount) != 1:  # type: ignore[attr-defined]
        raise RefundStateError(
            f"退库单 {refund.id} 刚被他人审核", f"treasury refund {refund.id} was just decided"
        )
    session.refresh(refund)


def approve_refund(
    ctx: Context,
    refund_id: int,
    approver: str,
    *,
    note: str | None = None,
    regions: Regions = None,
) -> RefundView:
    """Approve a proposed refund (the checker's half; never the proposer). Its items move
    to ``refunded`` with a recorded event, and the treasury reference is minted. Refused
    whole if any item is no longer refundable; a refund with an item outside ``regions``
    (the approver's; None: every region) answers as a missing one."""
    approver = audit.operator_name(approver)
    with session_scope(ctx.sessions) as session:
        refund = _load(session, refund_id, regions)
        _check_decidable(refund, approver)
        now = utcnow()
        ref = mint_treasury_ref(refund.id, china_today())
        _claim_decision(
            session,
            refund,
            RefundState.APPROVED,
            {
                "decided_by": approver,
                "decided_at": now,
                "decision_note": (note or "").strip() or None,
                "treasury_ref": ref,
            },
        )
        members = select(TreasuryRefundItem.item_id).where(
            TreasuryRefundItem.refund_id == refund.id
        )
        moved = move_items(
            session,
            PaymentItem.id.in_(members),
            ItemEvent.REFUND,
            f"operator:{approver}",
            detail={"treasury_refund_id": refund.id, "treasury_ref": ref},
            now=now,
        )
        if moved != refund.item_count:
            raise RefundStaleError(
                f"退库单 {refund.id} 中有 {refund.item_count - moved} 笔明细状态已变化"
                "（如已重新发放），请驳回后重新提交",
                f"{refund.item_count - moved} items of refund {refund.id} changed since the "
                "proposal (e.g. re-issued); reject it and propose again",
            )
        audit.record(
            session,
            actor=approver,
            action="refund.approve",
            target_type="treasury_refund",
            target_id=refund.id,
            reason=refund.decision_note,
            detail={"treasury_ref": ref, "items": moved, "amount_fen": refund.amount_fen},
        )
        log.info("refund.approved", refund_id=refund.id, ref=ref, items=moved, approver=approver)
        return _view(refund)


def reject_refund(
    ctx: Context, refund_id: int, checker: str, reason: str, *, regions: Regions = None
) -> RefundView:
    """Reject a proposed refund (never by the proposer); its items may be proposed again.
    A refund with an item outside ``regions`` (None: every region) answers as missing."""
    checker = audit.operator_name(checker)
    reason = audit.stated_reason(reason, "驳回退库单", "rejecting a refund")
    with session_scope(ctx.sessions) as session:
        refund = _load(session, refund_id, regions)
        _check_decidable(refund, checker)
        _claim_decision(
            session,
            refund,
            RefundState.REJECTED,
            {"decided_by": checker, "decided_at": utcnow(), "decision_note": reason},
        )
        session.execute(
            update(TreasuryRefundItem)
            .where(TreasuryRefundItem.refund_id == refund.id)
            .values(active_item_id=None)
            .execution_options(synchronize_session=False)
        )
        audit.record(
            session,
            actor=checker,
            action="refund.reject",
            target_type="treasury_refund",
            target_id=refund.id,
            reason=reason,
        )
        log.info("refund.rejected", refund_id=refund.id, checker=checker)
        return _view(refund)


def list_refunds(
    ctx: Context, *, state: str | None = None, regions: Regions = None
) -> list[RefundView]:
    """Refunds, newest first (optionally only those in ``state``; only those all of whose
    items lie in ``regions``, None: every region)."""
    query = _refunds_in(regions).order_by(TreasuryRefund.id.desc())
    if state is not None:
        query = query.where(TreasuryRefund.state == RefundState(state).value)
    with ctx.sessions() as session:
        return [_view(r) for r in session.scalars(query).all()]


def get_refund(ctx: Context, refund_id: int, *, regions: Regions = None) -> RefundView:
    with ctx.sessions() as session:
        return _view(_load(session, refund_id, regions))


def refund_items(ctx: Context, refund_id: int, *, regions: Regions = None) -> list[RefundItemView]:
    """The items of a refund, masked, with their current state and re-issue reference."""
    with ctx.sessions() as session:
        _load(session, refund_id, regions)
        rows = session.execute(
            select(TreasuryRefundItem, PaymentItem, Batch.batch_no)
            .join(PaymentItem, PaymentItem.id == TreasuryRefundItem.item_id)
            .join(Batch, Batch.id == PaymentItem.batch_id)
            .where(TreasuryRefundItem.refund_id == refund_id)
            .order_by(Batch.batch_no, PaymentItem.seq)
        ).all()
        return [
            RefundItemView(
                item_id=it.id,
                batch_no=batch_no,
                seq=it.seq,
                amount_fen=ri.amount_fen,
                from_state=ri.from_state,
                state=it.state,
                name_masked=it.name_masked,
                id_number_masked=it.id_number_masked,
                account_masked=it.account_masked,
                reason_code=it.reason_code,
            )
            for ri, it, batch_no in rows
        ]


def refund_summary(ctx: Context, *, regions: Regions = None) -> dict[str, int]:
    """For reports and the demo JSON key ``refunds``: the items returned to the treasury by
    approved refunds (``count``) and their amount in fen (of the refunds in ``regions``;
    None: every refund). Items re-issued after their refund still count: the money did go
    back to the treasury; the re-issue is new money."""
    scoped = _refunds_in(regions).where(TreasuryRefund.state == RefundState.APPROVED.value)
    approved = scoped.subquery()
    with ctx.sessions() as session:
        count, amount = session.execute(
            select(
                func.coalesce(func.sum(approved.c.item_count), 0),
                func.coalesce(func.sum(approved.c.amount_fen), 0),
            )
        ).one()
    return {"count": int(count), "amount_fen": int(amount)}
