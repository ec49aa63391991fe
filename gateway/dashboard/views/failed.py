"""The failed-payments queue (失败支付处理): every failed or unknown item of the viewer's
regions, why it failed (in Chinese) and what to do next, and the bulk actions on it —
export the correction list (更正清单, XLSX, masked unless unmasked with a reason), mark a
list's items returned for correction, propose a treasury refund (退回国库).

The queue reads ``payment_items`` by state, newest first (index
``ix_payment_items_state_id``). A bulk action applies to the checked items or to every item
matching the filter the page was showing; either way the server selects the items again
within the viewer's regions, and a checked item outside them refuses the whole action as
if it did not exist. The rework services record each action in the audit log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Select, not_, select
from sqlalchemy.orm import InstrumentedAttribute, Session
from starlette.datastructures import FormData

from gateway.batches.models import Batch, PaymentItem
from gateway.dashboard.views.audit_log import COUNT_CAP, capped_count
from gateway.dashboard.web import (
    DONE_MESSAGES,
    NO_STORE,
    PAGE_SIZE,
    FormRejected,
    NotFound,
    Page,
    Viewer,
    acting_viewer,
    audit,
    checked_form,
    china_day_start_utc,
    ctx_of,
    filters_of,
    form_ints,
    form_text,
    page_number,
    parse_day,
    payments_viewer,
    redirect,
    region_clause,
    render,
    scoped,
    text_problem,
    unit_of_work,
)
from gateway.feedback.models import OperatorCase
from gateway.feedback.reasons import REASONS, reason
from gateway.payments.states import ItemState
from gateway.rework.corrections import (
    COLUMNS,
    export_correction_list,
    mark_returned,
    reason_text,
)
from gateway.rework.models import CorrectionList, CorrectionListItem, TreasuryRefund
from gateway.rework.refunds import REFUNDABLE, propose_refund

router = APIRouter()

# shown by default: failed at the bank, returned after payment, outcome not known
QUEUE_STATES = (
    ItemState.FAILED.value,
    ItemState.BOUNCED.value,
    ItemState.UNKNOWN.value,
    ItemState.OPERATOR_CASE.value,
)
# the state filter may also pick the follow-ups
FILTER_STATES = (*QUEUE_STATES, ItemState.RETURNED.value, ItemState.REFUNDED.value)
FILTERS = ("bank", "region", "subsidy", "reason", "state", "date_from", "date_to")
BULK_MAX = 20_000  # items one bulk action may take
RECENT_LISTS = 5
PRINT_PAGE_SIZE = 500
_CHUNK = 5000
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# items whose outcome we do not know yet: no bank reason, a next step all the same
_PENDING: dict[str, tuple[str, str, str]] = {
    ItemState.UNKNOWN.value: (
        "结果未知：正在向银行查询",
        "outcome unknown: asking the bank",
        "系统正在向银行查询文件是否送达，暂不需操作；多次查询无果将转为待人工处理",
    ),
    ItemState.OPERATOR_CASE.value: (
        "待人工处理：银行结果无法自动确认",
        "needs a person: the bank's outcome is not known",
        "在「待处理事项」中查看证据：向银行核实后记录人工确认，或重新查询",
    ),
}

DONE_MESSAGES.update(
    {
        "list_returned": (
            "已将更正清单中的明细标记为「已退回修改」",
            "The list's items were marked returned for correction",
        ),
    }
)


@dataclass(frozen=True, slots=True)
class Why:
    """What the queue says about one item: the reason and the recommended action."""

    label: str
    bank: str
    action: str


def why(item: PaymentItem, lang: str) -> Why:
    pending = _PENDING.get(item.state)
    if pending is not None:
        return Why(pending[1] if lang == "en" else pending[0], "", pending[2])
    code = item.reason_code or ("bounced" if item.state == ItemState.BOUNCED else None)
    known = reason(code)
    bank = " ".join(p for p in (item.bank_code, item.bank_message) if p)
    label = known.en if lang == "en" else known.zh
    return Why(label, bank, reason_text(item)[1])


def clean_filters(values: Mapping[str, str]) -> dict[str, str]:
    """The queue's filters from a query string or a form's hidden copy (trimmed, short)."""
    out: dict[str, str] = {}
    for name in FILTERS:
        value = (values.get(name) or "").strip()[:64]
        if value and not text_problem(value):
            out[name] = value
    return out


def queue_query(viewer: Viewer, f: Mapping[str, str], *columns: Any) -> Select[Any]:
    """The queue's rows (``columns``) for filters ``f``, within the viewer's regions."""
    state = f.get("state")
    states = [state] if state in FILTER_STATES else list(QUEUE_STATES)
    stmt = (
        select(*columns)
        .select_from(PaymentItem)
        .join(Batch, Batch.id == PaymentItem.batch_id)
        .where(PaymentItem.state.in_(states))
    )
    if f.get("bank"):
        stmt = stmt.where(Batch.bank_profile == f["bank"])
    if f.get("region"):
        stmt = stmt.where(Batch.region_code.startswith(f["region"], autoescape=True))
    if f.get("subsidy"):
        stmt = stmt.where(Batch.subsidy_code == f["subsidy"])
    if f.get("reason"):
        stmt = stmt.where(PaymentItem.reason_code == f["reason"])
    since = parse_day(f.get("date_from"))
    if since is not None:
        stmt = stmt.where(Batch.received_at >= china_day_start_utc(since))
    until = parse_day(f.get("date_to"))
    if until is not None:
        stmt = stmt.where(Batch.received_at < china_day_start_utc(until + dt.timedelta(days=1)))
    return scoped(stmt, viewer, Batch.region_code)


def records_in_scope(
    viewer: Viewer,
    model: type[CorrectionList] | type[TreasuryRefund],
    item_col: InstrumentedAttribute[int],
    parent_col: InstrumentedAttribute[int],
) -> Select[Any]:
    """Records made of items (correction lists, refunds) none of whose items lies outside
    the viewer's regions: a township sees its own, the county all of the county's."""
    stmt = select(model)
    clause = region_clause(viewer, Batch.region_code)
    if clause is None:
        return stmt
    outside = (
        select(item_col)
        .join(PaymentItem, PaymentItem.id == item_col)
        .join(Batch, Batch.id == PaymentItem.batch_id)
        .where(parent_col == model.id, not_(clause))
    )
    return stmt.where(~outside.exists())


def in_scope_ids(session: Session, viewer: Viewer, wanted: Sequence[int]) -> set[int]:
    """Which of ``wanted`` are items of the viewer's regions."""
    seen: set[int] = set()
    for i in range(0, len(wanted), _CHUNK):
        chunk = list(wanted[i : i + _CHUNK])
        stmt = (
            select(PaymentItem.id)
            .join(Batch, Batch.id == PaymentItem.batch_id)
            .where(PaymentItem.id.in_(chunk))
        )
        seen.update(session.scalars(scoped(stmt, viewer, Batch.region_code)))
    return seen


def _lists(viewer: Viewer) -> Select[Any]:
    return records_in_scope(
        viewer, CorrectionList, CorrectionListItem.item_id, CorrectionListItem.list_id
    )


def _visible_list(session: Session, viewer: Viewer, list_id: int) -> CorrectionList:
    found: CorrectionList | None = session.scalar(
        _lists(viewer).where(CorrectionList.id == list_id)
    )
    if found is None:
        raise NotFound
    return found


def _open_cases(session: Session, rows: Sequence[Any]) -> dict[int, int]:
    """item id → an open operator case about it (or about its file), for the page's rows."""
    items = {it.id: it for it, _ in rows if it.state == ItemState.OPERATOR_CASE}
    if not items:
        return {}
    files = {it.outbound_file_id for it in items.values() if it.outbound_file_id}
    found: dict[int, int] = {}
    for case in session.scalars(
        select(OperatorCase)
        .where(
            OperatorCase.state == "open",
            OperatorCase.item_id.in_(list(items)) | OperatorCase.outbound_file_id.in_(list(files)),
        )
        .order_by(OperatorCase.id)
    ):
        for it in items.values():
            if case.item_id == it.id or (
                case.item_id is None and case.outbound_file_id == it.outbound_file_id
            ):
                found.setdefault(it.id, case.id)
    return found


def _subsidies(session: Session, viewer: Viewer) -> list[tuple[str, str]]:
    stmt = select(Batch.subsidy_code, Batch.subsidy_name).distinct()
    rows = session.execute(scoped(stmt, viewer, Batch.region_code)).all()
    names: dict[str, str] = {}
    for code, name in rows:
        names.setdefault(str(code), str(name))
    return sorted(names.items())


@router.get("/failed", response_class=HTMLResponse)
def failed_queue(
    request: Request,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    f = filters_of(request, FILTERS)
    number = page_number(request)
    with unit_of_work(request) as s:
        # the page's ids first (narrow rows, index order), then those rows in full: never
        # sort every failed item ever at full width
        ids_stmt = queue_query(viewer, f, PaymentItem.id)
        total = capped_count(s, ids_stmt)
        page = Page(number=number, size=PAGE_SIZE, total=total)
        ids = list(
            s.scalars(ids_stmt.order_by(PaymentItem.id.desc()).offset(page.offset).limit(page.size))
        )
        page.rows = s.execute(
            select(PaymentItem, Batch)
            .join(Batch, Batch.id == PaymentItem.batch_id)
            .where(PaymentItem.id.in_(ids))
            .order_by(PaymentItem.id.desc())
        ).all()
        cases = _open_cases(s, page.rows)
        lists = list(
            s.scalars(_lists(viewer).order_by(CorrectionList.id.desc()).limit(RECENT_LISTS))
        )
        subsidies = _subsidies(s, viewer)
        audit(
            s, viewer, "view.failed", target_type="failed_queue",
            detail={"filters": f, "page": page.number, "rows": len(page.rows)},
        )  # fmt: skip
    return render(
        request,
        "failed_list.html",
        viewer,
        active="failed",
        page=page,
        f=f,
        filter_query=urlencode(f),
        why=lambda it: why(it, viewer.lang),
        cases=cases,
        lists=lists,
        banks={name: p.display_name for name, p in sorted(ctx.profiles.items())},
        subsidies=subsidies,
        reasons=REASONS,
        states=FILTER_STATES,
        acts=viewer.role.acts_on_payments(),
        capped=total >= COUNT_CAP,
    )


def _selection(
    session: Session, viewer: Viewer, form: FormData
) -> tuple[list[int], dict[str, str]]:
    """The items a bulk action applies to, selected again on the server, and the filter
    the page was showing."""
    f = clean_filters(dict(parse_qsl(form_text(form, "filter", max_len=2000))))
    scope = form_text(form, "scope")
    back = "/failed" + ("?" + urlencode(f) if f else "")
    if scope == "filter":
        ids = list(
            session.scalars(
                queue_query(viewer, f, PaymentItem.id).order_by(PaymentItem.id).limit(BULK_MAX + 1)
            )
        )
        if not ids:
            raise FormRejected(
                "nothing_selected", "当前筛选条件下没有明细", "no item matches the filter",
                back=back,
            )  # fmt: skip
    else:
        ids = sorted(set(form_ints(form, "item")))
        if not ids:
            raise FormRejected(
                "nothing_checked",
                "请先勾选明细，或选择“当前筛选的全部明细”",
                "check some items, or choose every item matching the filter",
                back=back,
            )
        # an item outside the viewer's regions answers like a missing one
        if len(ids) <= BULK_MAX and in_scope_ids(session, viewer, ids) != set(ids):
            raise NotFound
    if len(ids) > BULK_MAX:
        raise FormRejected(
            "too_many",
            f"一次最多处理{BULK_MAX}笔明细，请缩小筛选范围",
            f"at most {BULK_MAX} items per action: narrow the filter",
            back=back,
        )
    if form_text(form, "action") == "refund" and scope == "filter":
        # every unpaid, final item of the filter (unknown outcomes are not refundable)
        refundable = [s.value for s in REFUNDABLE]
        ids = list(
            session.scalars(
                queue_query(viewer, f, PaymentItem.id)
                .where(PaymentItem.state.in_(refundable))
                .order_by(PaymentItem.id)
                .limit(BULK_MAX)
            )
        )
        if not ids:
            raise FormRejected(
                "nothing_refundable",
                "当前筛选中没有可退回国库的明细（支付失败、退票或已退回修改）",
                "no item matching the filter may be refunded (failed, bounced or returned)",
                back=back,
            )
    return ids, f


@router.post("/failed/actions")
def bulk_action(
    request: Request,
    viewer: Viewer = Depends(acting_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    action = form_text(form, "action")
    if action not in {"export", "export_return", "refund"}:
        raise FormRejected("unknown_action", "请选择要执行的操作", "choose an action")
    with unit_of_work(request) as s:
        ids, f = _selection(s, viewer, form)
    if action == "refund":
        refund = propose_refund(
            ctx, proposer=viewer.actor, reason=form_text(form, "refund_reason"), item_ids=ids
        )
        return redirect(request, f"/refunds/{refund.id}", done="refund_proposed")
    unmasked = form_text(form, "unmask") == "1"
    why_text = form_text(form, "unmask_reason")
    if unmasked and not why_text:
        raise FormRejected(
            "reason_required",
            "导出未脱敏（明文）的更正清单必须说明理由",
            "an unmasked export requires a reason",
            back="/failed",
        )
    exported = export_correction_list(
        ctx,
        operator=viewer.actor,
        item_ids=ids,
        # a list of items already returned (reprinting a lost list) only when asked for
        include_returned=f.get("state") == ItemState.RETURNED,
        unmasked=unmasked,
        reason_text=why_text or None,
    )
    if unmasked:
        with unit_of_work(request) as s:
            audit(
                s, viewer, "pii.unmask", target_type="correction_list",
                target_id=exported.list_id, reason=why_text,
                detail={"what": "correction_list_export", "items": len(exported.item_ids)},
            )  # fmt: skip
    if action == "export_return":
        mark_returned(ctx, exported.list_id, viewer.actor)
    return Response(
        content=exported.content,
        media_type=XLSX,
        headers={
            "Content-Disposition": f'attachment; filename="{exported.file_name}"',
            **NO_STORE,
        },
    )


@router.get("/failed/corrections", response_class=HTMLResponse)
def correction_lists(
    request: Request,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    number = page_number(request)
    with unit_of_work(request) as s:
        stmt = _lists(viewer)
        page = Page(number=number, size=PAGE_SIZE, total=capped_count(s, stmt))
        page.rows = list(
            s.scalars(stmt.order_by(CorrectionList.id.desc()).offset(page.offset).limit(page.size))
        )
        audit(
            s, viewer, "view.correction_lists", target_type="correction_list",
            detail={"page": page.number, "rows": len(page.rows)},
        )  # fmt: skip
    return render(
        request,
        "failed_corrections.html",
        viewer,
        active="failed",
        page=page,
        acts=viewer.role.acts_on_payments(),
    )


@dataclass
class PrintGroup:
    region_code: str
    subsidy_code: str
    subsidy_name: str
    rows: list[tuple[int, PaymentItem, Batch, str, str]]

    @property
    def amount_fen(self) -> int:
        return sum(it.amount_fen for _, it, _, _, _ in self.rows)


@router.get("/failed/corrections/{list_id:id}/print", response_class=HTMLResponse)
def print_list(
    request: Request,
    list_id: int,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    number = page_number(request)
    with unit_of_work(request) as s:
        record = _visible_list(s, viewer, list_id)
        page = Page(number=number, size=PRINT_PAGE_SIZE, total=record.item_count)
        rows = s.execute(
            select(PaymentItem, Batch)
            .join(CorrectionListItem, CorrectionListItem.item_id == PaymentItem.id)
            .join(Batch, Batch.id == PaymentItem.batch_id)
            .where(CorrectionListItem.list_id == list_id)
            .order_by(
                Batch.region_code,
                Batch.subsidy_code,
                Batch.received_at,
                Batch.id,
                PaymentItem.seq,
            )
            .offset(page.offset)
            .limit(page.size)
        ).all()
        groups: list[PrintGroup] = []
        for n, (it, b) in enumerate(rows, start=page.offset + 1):
            if not groups or (groups[-1].region_code, groups[-1].subsidy_code) != (
                b.region_code,
                b.subsidy_code,
            ):
                groups.append(PrintGroup(b.region_code, b.subsidy_code, b.subsidy_name, []))
            label, action = reason_text(it)
            groups[-1].rows.append((n, it, b, label, action))
        audit(
            s, viewer, "view.correction_list", target_type="correction_list",
            target_id=list_id, detail={"page": page.number, "rows": len(rows)},
        )  # fmt: skip
    return render(
        request,
        "failed_print.html",
        viewer,
        active="failed",
        record=record,
        page=page,
        groups=groups,
        headers=[c[0] for c in COLUMNS],
    )


@router.post("/failed/corrections/{list_id:id}/returned")
def list_returned(
    request: Request,
    list_id: int,
    viewer: Viewer = Depends(acting_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    del form  # checked: CSRF and origin
    with unit_of_work(request) as s:
        _visible_list(s, viewer, list_id)
    moved = mark_returned(ctx_of(request), list_id, viewer.actor)
    return redirect(request, "/failed/corrections", done="list_returned", moved=moved)
