"""Operator cases (待处理事项): what the worker could not settle on its own — unknown
outcomes after inquiries, conflicting results, results for items never sent, broken result
files — and the reconciliation's discrepancies (对账差异), each with its evidence (files,
bank results, the item's facts masked, events, who did what) and the actions allowed:

- close a case with a reason (a supervisor); explain, then close, a discrepancy
  (``gateway.reconciliation.service``: open → explained → closed);
- record the bank's manual confirmation of an item whose outcome is unknown (an operator),
  approved by a different supervisor before anything moves (``gateway.feedback.cases``);
- re-inquire: the worker asks the bank again about the case's file (never a resend).

Region scope: a case or discrepancy belongs to the region of its batch (directly, or
through its item or file); one tied to no batch (a result file nobody can attribute) is
seen by county-wide viewers only — those who see every region or hold a county-level
prefix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from gateway.batches.models import Batch, ItemEventRecord, PaymentItem
from gateway.dashboard.views.audit_log import capped_count, compact_detail
from gateway.dashboard.web import (
    DONE_MESSAGES,
    PAGE_SIZE,
    FormRejected,
    NotFound,
    Page,
    Viewer,
    acting_viewer,
    audit,
    check_region,
    checked_form,
    ctx_of,
    filters_of,
    form_text,
    page_number,
    payments_viewer,
    record_id,
    redirect,
    region_clause,
    render,
    supervisor_viewer,
    unit_of_work,
)
from gateway.dispatch.models import OutboundFile
from gateway.feedback.cases import (
    CONFIRMABLE,
    MANUAL_FAILURE_CODES,
    ConfirmationState,
    approve_confirmation,
    close_case,
    propose_confirmation,
    reinquire_case,
    reject_confirmation,
)
from gateway.feedback.models import (
    AccountEntryRecord,
    InboundFile,
    ItemResult,
    ManualConfirmation,
    OperatorCase,
)
from gateway.feedback.reasons import REASONS, reason
from gateway.payments.states import FileState
from gateway.reconciliation.matching import UNRESOLVED, DiscrepancyState, DiscrepancyType
from gateway.reconciliation.models import Discrepancy, DiscrepancyEventRecord
from gateway.reconciliation.service import DiscrepancyNotFoundError, close, explain
from gateway.rework import audit as rework_audit
from gateway.rework.models import AuditRecord

router = APIRouter()
Rows = Select[*tuple[Any, ...]]  # a select of several entities and columns

COUNTY_PREFIX = 6  # a region prefix this short covers a whole county
EVIDENCE_ROWS = 100  # results, events and audit rows shown on a case page

CASE_KINDS: dict[str, tuple[str, str]] = {
    "outcome_unknown": ("多次查询仍无法确认文件是否送达", "outcome unknown after inquiries"),
    "never_sent": ("多次尝试仍未能连接银行", "could not reach the bank"),
    "host_key": ("银行服务器主机密钥不符", "bank host key mismatch"),
    "far_side_conflict": ("银行服务器上有内容不同的同名文件", "another file under our name"),
    "submission_rejected": ("银行拒绝了整笔请求", "submission rejected"),
    "idempotency_conflict": ("请求号已用于不同内容", "idempotency conflict"),
    "bank_auth_refused": ("银行拒绝本系统的签名或客户号", "bank refused our credentials"),
    "inquiry_malformed": ("银行状态查询应答不合规", "malformed status answers"),
    "bank_lost_submission": ("银行称未收到已受理的请求", "bank lost a submission"),
    "result_file_invalid": ("回盘文件签名或格式校验失败", "invalid result file"),
    "unknown_serial": ("银行报告了未发送的明细", "result for an item never sent"),
    "result_mismatch": ("回盘金额或账号与发送不一致", "result does not match the item"),
    "conflicting_result": ("同一明细的银行结果相互矛盾", "conflicting results"),
    "calendar_unknown_year": ("工作日历缺少该年安排", "calendar year unknown"),
    "request_unrenderable": ("批次数据无法写入银行文件", "batch data cannot be written"),
    "dispatch_config_error": ("银行配置错误，无法生成银行文件", "bank file could not be made"),
    "delivery_config_error": ("发送配置错误，已停止发送", "delivery configuration broken"),
    "delivery_error": ("发送多次出错，无法确认是否送达", "delivery kept failing"),
}
# the kinds whose file the worker may be asked to inquire about again
REINQUIRABLE = frozenset(
    {
        "outcome_unknown",
        "never_sent",
        "host_key",
        "bank_auth_refused",
        "inquiry_malformed",
        "bank_lost_submission",
        "delivery_config_error",
        "delivery_error",
    }
)
CASE_STATES = {"open": ("待处理", "open"), "closed": ("已关闭", "closed")}
DISCREPANCY_STATES = {s.value: (s.label_zh, s.value) for s in DiscrepancyState}
CONFIRMATION_STATES = {s.value: (s.label_zh, s.value) for s in ConfirmationState}
TABS = ("cases", "discrepancies", "confirmations")

DONE_MESSAGES.update(
    {
        "case_closed": ("事项已关闭", "Case closed"),
        "case_reinquired": (
            "已请后台任务重新向银行查询，结果将在下个处理周期更新",
            "The worker will ask the bank again in its next cycle",
        ),
        "confirmation_recorded": (
            "银行人工确认已记录，待另一名复核员审核",
            "Confirmation recorded; another supervisor must approve it",
        ),
        "confirmation_approved": ("银行人工确认已批准，明细状态已更新", "Confirmation approved"),
        "confirmation_rejected": ("银行人工确认已驳回", "Confirmation rejected"),
        "discrepancy_explained": ("差异已说明，待复核员关闭", "Discrepancy explained"),
        "discrepancy_closed": ("差异已关闭", "Discrepancy closed"),
    }
)


def kind_label(kind: str, lang: str) -> str:
    zh, en = CASE_KINDS.get(kind, (kind, kind))
    return en if lang == "en" else zh


def discrepancy_label(kind: str, lang: str) -> str:
    try:
        t = DiscrepancyType(kind)
    except ValueError:
        return kind
    return t.value.replace("_", " ") if lang == "en" else t.label_zh


def county_wide(viewer: Viewer) -> bool:
    scope = viewer.principal.region_filter()
    return scope is None or any(len(p) <= COUNTY_PREFIX for p in scope)


def _scope(stmt: Select[Any], viewer: Viewer) -> Select[Any]:
    """Rows whose batch (outer-joined as ``Batch``) is in the viewer's regions; rows with no
    batch only for county-wide viewers."""
    clause = region_clause(viewer, Batch.region_code)
    if clause is None:
        return stmt
    if county_wide(viewer):
        return stmt.where(or_(Batch.id.is_(None), clause))
    return stmt.where(and_(Batch.id.is_not(None), clause))


def case_query(viewer: Viewer) -> Select[Any]:
    batch_id = func.coalesce(OperatorCase.batch_id, OutboundFile.batch_id)
    stmt: Rows = (
        select(OperatorCase, Batch.id, Batch.batch_no, Batch.region_code)
        .select_from(OperatorCase)
        .outerjoin(OutboundFile, OutboundFile.id == OperatorCase.outbound_file_id)
        .outerjoin(Batch, Batch.id == batch_id)
    )
    return _scope(stmt, viewer)


def discrepancy_query(viewer: Viewer) -> Select[Any]:
    batch_id = func.coalesce(Discrepancy.batch_id, PaymentItem.batch_id, OutboundFile.batch_id)
    stmt: Rows = (
        select(Discrepancy, Batch.id, Batch.batch_no, Batch.region_code)
        .select_from(Discrepancy)
        .outerjoin(PaymentItem, PaymentItem.id == Discrepancy.item_id)
        .outerjoin(OutboundFile, OutboundFile.id == Discrepancy.outbound_file_id)
        .outerjoin(Batch, Batch.id == batch_id)
    )
    return _scope(stmt, viewer)


def confirmation_query(viewer: Viewer) -> Select[Any]:
    stmt: Rows = (
        select(ManualConfirmation, PaymentItem, Batch)
        .join(PaymentItem, PaymentItem.id == ManualConfirmation.item_id)
        .join(Batch, Batch.id == PaymentItem.batch_id)
    )
    clause = region_clause(viewer, Batch.region_code)
    return stmt if clause is None else stmt.where(clause)


def _visible_case(session: Session, viewer: Viewer, case_id: int) -> Any:
    row = session.execute(case_query(viewer).where(OperatorCase.id == case_id)).first()
    if row is None:
        raise NotFound
    return row


def _visible_discrepancy(session: Session, viewer: Viewer, discrepancy_id: int) -> Any:
    row = session.execute(discrepancy_query(viewer).where(Discrepancy.id == discrepancy_id)).first()
    if row is None:
        raise NotFound
    return row


def _visible_item(session: Session, viewer: Viewer, item_id: int) -> tuple[PaymentItem, Batch]:
    row = session.execute(
        select(PaymentItem, Batch)
        .join(Batch, Batch.id == PaymentItem.batch_id)
        .where(PaymentItem.id == item_id)
    ).first()
    if row is None:
        raise NotFound
    check_region(viewer, row[1].region_code)
    return row[0], row[1]


# --- the list ---------------------------------------------------------------------------------


@router.get("/cases", response_class=HTMLResponse)
def case_list(
    request: Request,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    f = filters_of(request, ["tab", "state", "kind"])
    tab = f.get("tab") if f.get("tab") in TABS else "cases"
    number = page_number(request)
    state = f.get("state")
    with unit_of_work(request) as s:
        counts = {
            "cases": capped_count(s, case_query(viewer).where(OperatorCase.state == "open")),
            "discrepancies": capped_count(
                s, discrepancy_query(viewer).where(Discrepancy.state.in_(UNRESOLVED))
            ),
            "confirmations": capped_count(
                s,
                confirmation_query(viewer).where(
                    ManualConfirmation.state == ConfirmationState.PROPOSED.value
                ),
            ),
        }
        if tab == "cases":
            stmt = case_query(viewer)
            if state != "all":
                stmt = stmt.where(OperatorCase.state == (state if state in CASE_STATES else "open"))
            if f.get("kind"):
                stmt = stmt.where(OperatorCase.kind == f["kind"])
            order: Any = OperatorCase.id.desc()
        elif tab == "discrepancies":
            stmt = discrepancy_query(viewer)
            if state in DISCREPANCY_STATES:
                stmt = stmt.where(Discrepancy.state == state)
            elif state != "all":
                stmt = stmt.where(Discrepancy.state.in_(UNRESOLVED))
            if f.get("kind"):
                stmt = stmt.where(Discrepancy.type == f["kind"])
            order = Discrepancy.id.desc()
        else:
            stmt = confirmation_query(viewer)
            if state != "all":
                wanted = state if state in CONFIRMATION_STATES else ConfirmationState.PROPOSED
                stmt = stmt.where(ManualConfirmation.state == wanted)
            order = ManualConfirmation.id.desc()
        page = Page(number=number, size=PAGE_SIZE, total=capped_count(s, stmt))
        page.rows = s.execute(stmt.order_by(order).offset(page.offset).limit(page.size)).all()
        audit(
            s, viewer, "view.cases", target_type="operator_case",
            detail={"filters": f, "page": page.number, "rows": len(page.rows)},
        )  # fmt: skip
    return render(
        request,
        "cases_list.html",
        viewer,
        active="cases",
        tab=tab,
        f=f,
        page=page,
        counts=counts,
        kind_label=lambda k: kind_label(k, viewer.lang),
        discrepancy_label=lambda k: discrepancy_label(k, viewer.lang),
        case_kinds=CASE_KINDS,
        discrepancy_types=[t.value for t in DiscrepancyType],
        case_states=CASE_STATES,
        discrepancy_states=DISCREPANCY_STATES,
        confirmation_states=CONFIRMATION_STATES,
        reason_zh=lambda code: reason(code).zh,
    )


# --- one operator case --------------------------------------------------------------------------


def _confirmations(session: Session, where: ColumnElement[bool]) -> list[Any]:
    return list(
        session.execute(
            select(ManualConfirmation, PaymentItem)
            .join(PaymentItem, PaymentItem.id == ManualConfirmation.item_id)
            .where(where)
            .order_by(ManualConfirmation.id.desc())
            .limit(EVIDENCE_ROWS)
        ).all()
    )


def _audit_rows(
    session: Session, target_type: str, target_id: int, item_ids: Sequence[int] = ()
) -> list[AuditRecord]:
    """What people did about a case or discrepancy (pages viewed aside), and about its
    items' manual confirmations."""
    about = (AuditRecord.target_type == target_type) & (AuditRecord.target_id == str(target_id))
    if item_ids:
        about = about | (
            (AuditRecord.target_type == "item")
            & AuditRecord.target_id.in_([str(i) for i in item_ids])
            & AuditRecord.action.startswith("case.")
        )
    return list(
        session.scalars(
            select(AuditRecord)
            .where(about, ~AuditRecord.action.startswith("view."))
            .order_by(AuditRecord.id)
            .limit(EVIDENCE_ROWS)
        )
    )


def _item_evidence(session: Session, item_id: int) -> tuple[list[Any], list[ItemEventRecord]]:
    results = list(
        session.execute(
            select(ItemResult, InboundFile.file_name)
            .join(InboundFile, InboundFile.id == ItemResult.inbound_file_id)
            .where(ItemResult.item_id == item_id)
            .order_by(ItemResult.id)
            .limit(EVIDENCE_ROWS)
        ).all()
    )
    events = list(
        session.scalars(
            select(ItemEventRecord)
            .where(ItemEventRecord.item_id == item_id)
            .order_by(ItemEventRecord.id)
            .limit(EVIDENCE_ROWS)
        )
    )
    return results, events


@router.get("/cases/case/{case_id:id}", response_class=HTMLResponse)
def case_page(
    request: Request,
    case_id: int,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    number = page_number(request)
    with unit_of_work(request) as s:
        case, batch_id, batch_no, region = _visible_case(s, viewer, case_id)
        file = s.get(OutboundFile, case.outbound_file_id) if case.outbound_file_id else None
        inbound = s.get(InboundFile, case.inbound_file_id) if case.inbound_file_id else None
        item = s.get(PaymentItem, case.item_id) if case.item_id else None
        results: list[Any] = []
        events: list[ItemEventRecord] = []
        page = Page(number=number, size=PAGE_SIZE, total=0)
        file_states: dict[str, int] = {}
        if item is not None:
            results, events = _item_evidence(s, item.id)
            confirmations = _confirmations(
                s, (ManualConfirmation.case_id == case.id) | (ManualConfirmation.item_id == item.id)
            )
        elif file is not None:
            members = PaymentItem.outbound_file_id == file.id
            file_states = {
                str(st): int(n)
                for st, n in s.execute(
                    select(PaymentItem.state, func.count())
                    .where(members)
                    .group_by(PaymentItem.state)
                )
            }
            page.total = sum(file_states.values())
            page.rows = list(
                s.scalars(
                    select(PaymentItem)
                    .where(members)
                    .order_by(PaymentItem.seq)
                    .offset(page.offset)
                    .limit(page.size)
                )
            )
            confirmations = _confirmations(
                s,
                (ManualConfirmation.case_id == case.id)
                | ManualConfirmation.item_id.in_(select(PaymentItem.id).where(members)),
            )
        else:
            confirmations = _confirmations(s, ManualConfirmation.case_id == case.id)
        confirmed_items = sorted({it.id for _, it in confirmations})
        trail = _audit_rows(s, "operator_case", case.id, confirmed_items)
        # items with a confirmation awaiting its checker: no second one is recorded
        awaiting = {mc.item_id for mc, _ in confirmations if mc.state == ConfirmationState.PROPOSED}
        audit(
            s, viewer, "view.case", target_type="operator_case", target_id=case.id,
            detail={"kind": case.kind, "item_id": case.item_id},
        )  # fmt: skip
    profile = ctx.profiles.get(file.bank_profile) if file is not None else None
    reinquirable = (
        case.state == "open"
        and case.kind in REINQUIRABLE
        and file is not None
        and (
            file.state in {FileState.ESCALATED, FileState.UNKNOWN, FileState.PLANNED}
            or (file.state == FileState.DELIVERED and profile is not None and profile.is_api)
        )
    )
    return render(
        request,
        "cases_case.html",
        viewer,
        active="cases",
        case=case,
        batch=(batch_id, batch_no, region),
        file=file,
        inbound=inbound,
        item=item,
        results=results,
        events=events,
        page=page,
        file_states=file_states,
        confirmations=confirmations,
        trail=trail,
        kind_label=kind_label(case.kind, viewer.lang),
        reinquirable=reinquirable,
        confirmable=[s.value for s in CONFIRMABLE],
        awaiting=awaiting,
        **_decision_helpers(viewer),
    )


def _decision_helpers(viewer: Viewer) -> dict[str, Any]:
    return {
        "acts": viewer.role.acts_on_payments(),
        "approves": viewer.role.approves(),
        "is_me": lambda name: rework_audit.same_operator(name, viewer.actor),
        "reason": reason,
        "compact_detail": compact_detail,
        "confirmation_states": CONFIRMATION_STATES,
    }


@router.post("/cases/case/{case_id:id}/close")
def case_close(
    request: Request,
    case_id: int,
    viewer: Viewer = Depends(supervisor_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    with unit_of_work(request) as s:
        _visible_case(s, viewer, case_id)
    close_case(ctx_of(request), case_id, viewer.actor, form_text(form, "reason"))
    return redirect(request, f"/cases/case/{case_id}", done="case_closed")


@router.post("/cases/case/{case_id:id}/reinquire")
def case_reinquire(
    request: Request,
    case_id: int,
    viewer: Viewer = Depends(acting_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    del form  # checked: CSRF and origin
    with unit_of_work(request) as s:
        case = _visible_case(s, viewer, case_id)[0]
        if case.kind not in REINQUIRABLE:
            raise FormRejected(
                "not_inquirable",
                "此类事项不能通过重新查询解决",
                "this kind of case is not settled by asking the bank again",
                back=f"/cases/case/{case_id}",
            )
    reinquire_case(ctx_of(request), case_id, viewer.actor)
    return redirect(request, f"/cases/case/{case_id}", done="case_reinquired")


# --- manual confirmations ---------------------------------------------------------------------


def _case_of(session: Session, viewer: Viewer, raw: str | None) -> int | None:
    case_id = record_id(raw)
    if case_id is None:
        return None
    return int(_visible_case(session, viewer, case_id)[0].id)


@router.get("/cases/confirm/{item_id:id}", response_class=HTMLResponse)
def confirm_form(
    request: Request,
    item_id: int,
    viewer: Viewer = Depends(acting_viewer),  # noqa: B008
) -> Response:
    with unit_of_work(request) as s:
        item, batch = _visible_item(s, viewer, item_id)
        case_id = _case_of(s, viewer, request.query_params.get("case"))
        confirmations = _confirmations(s, ManualConfirmation.item_id == item.id)
        audit(
            s, viewer, "view.item_confirm", target_type="item", target_id=item.id,
            detail={"case_id": case_id},
        )  # fmt: skip
    return render(
        request,
        "cases_confirm.html",
        viewer,
        active="cases",
        item=item,
        batch=batch,
        case_id=case_id,
        confirmations=confirmations,
        confirmable=item.state in {s.value for s in CONFIRMABLE},
        failure_codes=[(c, REASONS[c]) for c in MANUAL_FAILURE_CODES],
        **_decision_helpers(viewer),
    )


@router.post("/cases/confirm/{item_id:id}")
def confirm_record(
    request: Request,
    item_id: int,
    viewer: Viewer = Depends(acting_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    with unit_of_work(request) as s:
        item, _batch = _visible_item(s, viewer, item_id)
        case_id = _case_of(s, viewer, form_text(form, "case"))
    propose_confirmation(
        ctx_of(request),
        item_id=item.id,
        proposer=viewer.actor,
        outcome=form_text(form, "outcome"),
        note=form_text(form, "note", max_len=1000),
        bank_ref=form_text(form, "bank_ref", max_len=64),
        reason_code=form_text(form, "reason_code", max_len=40),
        case_id=case_id,
    )
    back = f"/cases/case/{case_id}" if case_id else f"/cases/confirm/{item.id}"
    return redirect(request, back, done="confirmation_recorded")


def _visible_confirmation(session: Session, viewer: Viewer, confirmation_id: int) -> Any:
    row = session.execute(
        confirmation_query(viewer).where(ManualConfirmation.id == confirmation_id)
    ).first()
    if row is None:
        raise NotFound
    return row[0]


def _after_decision(request: Request, confirmation: Any, done: str) -> Response:
    if confirmation.case_id:
        return redirect(request, f"/cases/case/{confirmation.case_id}", done=done)
    return redirect(request, f"/cases/confirm/{confirmation.item_id}", done=done)


@router.post("/cases/confirmations/{confirmation_id:id}/approve")
def confirmation_approve(
    request: Request,
    confirmation_id: int,
    viewer: Viewer = Depends(supervisor_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    with unit_of_work(request) as s:
        row = _visible_confirmation(s, viewer, confirmation_id)
    approve_confirmation(
        ctx_of(request), confirmation_id, viewer.actor, note=form_text(form, "note")
    )
    return _after_decision(request, row, "confirmation_approved")


@router.post("/cases/confirmations/{confirmation_id:id}/reject")
def confirmation_reject(
    request: Request,
    confirmation_id: int,
    viewer: Viewer = Depends(supervisor_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    with unit_of_work(request) as s:
        row = _visible_confirmation(s, viewer, confirmation_id)
    reject_confirmation(ctx_of(request), confirmation_id, viewer.actor, form_text(form, "reason"))
    return _after_decision(request, row, "confirmation_rejected")


# --- one discrepancy ----------------------------------------------------------------------------


@router.get("/cases/discrepancy/{discrepancy_id:id}", response_class=HTMLResponse)
def discrepancy_page(
    request: Request,
    discrepancy_id: int,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    with unit_of_work(request) as s:
        d, batch_id, batch_no, region = _visible_discrepancy(s, viewer, discrepancy_id)
        item = s.get(PaymentItem, d.item_id) if d.item_id else None
        file = s.get(OutboundFile, d.outbound_file_id) if d.outbound_file_id else None
        entry = s.get(AccountEntryRecord, d.account_entry_id) if d.account_entry_id else None
        result = s.get(ItemResult, d.item_result_id) if d.item_result_id else None
        steps = list(
            s.scalars(
                select(DiscrepancyEventRecord)
                .where(DiscrepancyEventRecord.discrepancy_id == d.id)
                .order_by(DiscrepancyEventRecord.id)
                .limit(EVIDENCE_ROWS)
            )
        )
        events = _item_evidence(s, item.id)[1] if item is not None else []
        trail = _audit_rows(s, "discrepancy", d.id)
        audit(
            s, viewer, "view.discrepancy", target_type="discrepancy", target_id=d.id,
            detail={"type": d.type},
        )  # fmt: skip
    return render(
        request,
        "cases_discrepancy.html",
        viewer,
        active="cases",
        d=d,
        batch=(batch_id, batch_no, region),
        item=item,
        file=file,
        entry=entry,
        result=result,
        steps=steps,
        events=events,
        trail=trail,
        type_label=discrepancy_label(d.type, viewer.lang),
        state_label=DISCREPANCY_STATES.get(d.state, (d.state, d.state)),
        states=DISCREPANCY_STATES,
        **_decision_helpers(viewer),
    )


def _discrepancy_step(
    request: Request, viewer: Viewer, discrepancy_id: int, step: str, text: str
) -> Response:
    ctx = ctx_of(request)
    with unit_of_work(request) as s:
        _visible_discrepancy(s, viewer, discrepancy_id)
    try:
        # audited by the service, in its transaction (discrepancy.explain|close)
        session_detail = {"session": viewer.session_id}
        if step == "explain":
            explain(ctx, discrepancy_id, viewer.actor, text, audit_detail=session_detail)
        else:
            close(ctx, discrepancy_id, viewer.actor, text, audit_detail=session_detail)
    except DiscrepancyNotFoundError:
        raise NotFound from None
    except ValueError as exc:
        zh = "请填写说明" if not text.strip() else "当前状态不能执行此操作（先说明，再关闭）"
        raise FormRejected(
            "discrepancy_refused", zh, str(exc), back=f"/cases/discrepancy/{discrepancy_id}"
        ) from None
    done = "discrepancy_explained" if step == "explain" else "discrepancy_closed"
    return redirect(request, f"/cases/discrepancy/{discrepancy_id}", done=done)


@router.post("/cases/discrepancy/{discrepancy_id:id}/explain")
def discrepancy_explain(
    request: Request,
    discrepancy_id: int,
    viewer: Viewer = Depends(acting_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    text = form_text(form, "explanation", max_len=2000)
    return _discrepancy_step(request, viewer, discrepancy_id, "explain", text)


@router.post("/cases/discrepancy/{discrepancy_id:id}/close")
def discrepancy_close(
    request: Request,
    discrepancy_id: int,
    viewer: Viewer = Depends(supervisor_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    text = form_text(form, "reason", max_len=2000)
    return _discrepancy_step(request, viewer, discrepancy_id, "close", text)
