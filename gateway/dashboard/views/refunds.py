"""Treasury refunds (退回国库) with maker-checker: the list, one refund's items (masked), who
proposed it and who decided, and the supervisor's approval or rejection — never by the
proposer (``gateway.rework.refunds`` refuses it; the page shows why).

A refund is visible when every one of its items lies in the viewer's regions (one proposed
by a township operator is theirs; a county supervisor sees the county's)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Select, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from gateway.batches.models import Batch, PaymentItem
from gateway.dashboard.views.audit_log import capped_count
from gateway.dashboard.views.failed import records_in_scope
from gateway.dashboard.web import (
    DONE_MESSAGES,
    PAGE_SIZE,
    NotFound,
    Page,
    Viewer,
    audit,
    checked_form,
    ctx_of,
    filters_of,
    form_text,
    page_number,
    payments_viewer,
    redirect,
    render,
    supervisor_viewer,
    unit_of_work,
)
from gateway.feedback.reasons import reason
from gateway.rework.audit import same_operator
from gateway.rework.models import TreasuryRefund, TreasuryRefundItem
from gateway.rework.refunds import RefundState, approve_refund, reject_refund

router = APIRouter()

REFUND_STATES = {s.value: (s.label_zh, s.value) for s in RefundState}

DONE_MESSAGES.update(
    {
        "refund_proposed": (
            "退回国库申请已提交，待另一名复核员审核",
            "Refund proposed; another supervisor must decide",
        ),
        "refund_approved": ("退库单已批准，明细已退回国库", "Refund approved; items refunded"),
        "refund_rejected": ("退库单已驳回", "Refund rejected"),
    }
)


def _refunds(viewer: Viewer) -> Select[Any]:
    return records_in_scope(
        viewer, TreasuryRefund, TreasuryRefundItem.item_id, TreasuryRefundItem.refund_id
    )


def _visible(session: Session, viewer: Viewer, refund_id: int) -> TreasuryRefund:
    found: TreasuryRefund | None = session.scalar(
        _refunds(viewer).where(TreasuryRefund.id == refund_id)
    )
    if found is None:
        raise NotFound
    return found


@router.get("/refunds", response_class=HTMLResponse)
def refund_list(
    request: Request,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    f = filters_of(request, ["state"])
    number = page_number(request)
    with unit_of_work(request) as s:
        stmt = _refunds(viewer)
        if f.get("state") in REFUND_STATES:
            stmt = stmt.where(TreasuryRefund.state == f["state"])
        page = Page(number=number, size=PAGE_SIZE, total=capped_count(s, stmt))
        page.rows = list(
            s.scalars(stmt.order_by(TreasuryRefund.id.desc()).offset(page.offset).limit(page.size))
        )
        audit(
            s, viewer, "view.refunds", target_type="treasury_refund",
            detail={"filters": f, "page": page.number, "rows": len(page.rows)},
        )  # fmt: skip
    return render(
        request, "refunds_list.html", viewer, active="refunds", page=page, f=f,
        states=REFUND_STATES,
    )  # fmt: skip


@router.get("/refunds/{refund_id:id}", response_class=HTMLResponse)
def refund_page(
    request: Request,
    refund_id: int,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    number = page_number(request)
    with unit_of_work(request) as s:
        refund = _visible(s, viewer, refund_id)
        page = Page(number=number, size=PAGE_SIZE, total=refund.item_count)
        page.rows = s.execute(
            select(TreasuryRefundItem, PaymentItem, Batch)
            .join(PaymentItem, PaymentItem.id == TreasuryRefundItem.item_id)
            .join(Batch, Batch.id == PaymentItem.batch_id)
            .where(TreasuryRefundItem.refund_id == refund_id)
            .order_by(TreasuryRefundItem.id)
            .offset(page.offset)
            .limit(page.size)
        ).all()
        audit(
            s, viewer, "view.refund", target_type="treasury_refund", target_id=refund_id,
            detail={"page": page.number, "rows": len(page.rows)},
        )  # fmt: skip
    own = same_operator(refund.proposed_by, viewer.actor)
    return render(
        request,
        "refunds_detail.html",
        viewer,
        active="refunds",
        refund=refund,
        state_label=REFUND_STATES.get(refund.state, (refund.state, refund.state)),
        page=page,
        reason=reason,
        may_decide=viewer.role.approves() and refund.state == RefundState.PROPOSED and not own,
        own=own,
    )


@router.post("/refunds/{refund_id:id}/approve")
def approve(
    request: Request,
    refund_id: int,
    viewer: Viewer = Depends(supervisor_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    with unit_of_work(request) as s:
        _visible(s, viewer, refund_id)
    approve_refund(ctx_of(request), refund_id, viewer.actor, note=form_text(form, "note"))
    return redirect(request, f"/refunds/{refund_id}", done="refund_approved")


@router.post("/refunds/{refund_id:id}/reject")
def reject(
    request: Request,
    refund_id: int,
    viewer: Viewer = Depends(supervisor_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    with unit_of_work(request) as s:
        _visible(s, viewer, refund_id)
    reject_refund(ctx_of(request), refund_id, viewer.actor, form_text(form, "reason"))
    return redirect(request, f"/refunds/{refund_id}", done="refund_rejected")
