"""The SMS log (短信发送台账): every notice owed to a beneficiary — paid or failure notice —
with its sending state, the provider's ids and the latest delivery receipt, within the
viewer's regions (through the item's batch). Messages the provider refused because of our
own configuration (sign name, template, parameters, credentials) are called out at the top:
nobody receives them until the configuration is fixed."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session

from gateway.batches.models import Batch, PaymentItem
from gateway.dashboard.queries_overview import SMS_LABELS
from gateway.dashboard.views.audit_log import capped_count
from gateway.dashboard.web import (
    PAGE_SIZE,
    Page,
    Viewer,
    audit,
    china_day_start_utc,
    filters_of,
    page_number,
    parse_day,
    payments_viewer,
    record_id,
    render,
    scoped,
    unit_of_work,
)
from gateway.notifications.models import SmsNotice, SmsReceiptRecord

router = APIRouter()

# notice state → (中文, English): the same words as the overview's SMS figures
SMS_STATES = SMS_LABELS
SMS_KINDS: dict[str, tuple[str, str]] = {
    "paid": ("到账通知", "paid notice"),
    "failed": ("失败通知", "failure notice"),
}
RECEIPT_STATES: dict[str, tuple[str, str]] = {
    "pending": ("待回执", "pending"),
    "delivered": ("已送达", "delivered"),
    "failed": ("未送达", "not delivered"),
}
# the filter value that selects messages refused for our own configuration
CONFIG_REJECTED = "config_rejected"
# how the send step records a refusal: "<scope>: <provider's text>"
_CONFIG_PREFIX = "configuration:"
_DIGITS = re.compile(r"\d{7,}")


def _rejected_for_configuration() -> ColumnElement[bool]:
    return (SmsNotice.state == "rejected") & SmsNotice.last_error.startswith(_CONFIG_PREFIX)


def is_configuration_refusal(state: str, last_error: str | None) -> bool:
    return state == "rejected" and (last_error or "").startswith(_CONFIG_PREFIX)


def safe_error(text: str | None) -> str:
    """A provider's error text without the refusal's scope, with any long digit run (a
    phone number echoed back) masked."""
    if not text:
        return ""
    for scope in ("configuration: ", "recipient: "):
        text = text.removeprefix(scope)
    return _DIGITS.sub(lambda m: m.group(0)[:3] + "****" + m.group(0)[-4:], text)[:200]


def _base(viewer: Viewer) -> Select[Any]:
    stmt: Select[*tuple[Any, ...]] = (
        select(
            SmsNotice,
            PaymentItem.serial,
            PaymentItem.phone_masked,
            PaymentItem.name_masked,
            PaymentItem.amount_fen,
            PaymentItem.batch_id,
            Batch.batch_no,
            Batch.region_code,
            Batch.subsidy_name,
        )
        .join(PaymentItem, PaymentItem.id == SmsNotice.item_id)
        .join(Batch, Batch.id == PaymentItem.batch_id)
    )
    return scoped(stmt, viewer, Batch.region_code)


def _filtered(stmt: Select[Any], f: dict[str, str]) -> Select[Any]:
    status = f.get("status")
    if status == CONFIG_REJECTED:
        stmt = stmt.where(_rejected_for_configuration())
    elif status in SMS_STATES:
        stmt = stmt.where(SmsNotice.state == status)
    if f.get("kind") in SMS_KINDS:
        stmt = stmt.where(SmsNotice.notice_type == f["kind"])
    batch = f.get("batch")
    if batch:
        batch_id = record_id(batch)
        if batch_id is not None:
            stmt = stmt.where(or_(PaymentItem.batch_id == batch_id, Batch.batch_no == batch))
        else:
            stmt = stmt.where(Batch.batch_no == batch)
    day = parse_day(f.get("date"))
    if day is not None:
        stmt = stmt.where(
            SmsNotice.created_at >= china_day_start_utc(day),
            SmsNotice.created_at < china_day_start_utc(day + dt.timedelta(days=1)),
        )
    return stmt


def _latest_receipts(session: Session, out_ids: list[str]) -> dict[str, SmsReceiptRecord]:
    """The newest delivery receipt of each of the page's messages (one indexed query)."""
    latest: dict[str, SmsReceiptRecord] = {}
    if not out_ids:
        return latest
    rows = session.scalars(
        select(SmsReceiptRecord)
        .where(SmsReceiptRecord.out_id.in_(out_ids))
        .order_by(SmsReceiptRecord.received_at, SmsReceiptRecord.id)
    )
    for r in rows:
        latest[r.out_id] = r
    return latest


def _configuration_problems(session: Session, viewer: Viewer) -> tuple[int, str | None]:
    """How many messages of the viewer's regions the provider refused for our own
    configuration, and the newest refusal's code."""
    base: Select[*tuple[Any, ...]] = (
        select(SmsNotice.id, SmsNotice.last_code)
        .join(PaymentItem, PaymentItem.id == SmsNotice.item_id)
        .join(Batch, Batch.id == PaymentItem.batch_id)
        .where(_rejected_for_configuration())
    )
    scoped_base = scoped(base, viewer, Batch.region_code)
    count = capped_count(session, scoped_base)
    if not count:
        return 0, None
    newest = session.execute(scoped_base.order_by(SmsNotice.id.desc()).limit(1)).first()
    return count, newest.last_code if newest else None


@router.get("/sms", response_class=HTMLResponse)
def sms_log(
    request: Request,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    f = filters_of(request, ["status", "kind", "batch", "date"])
    number = page_number(request)
    with unit_of_work(request) as s:
        stmt = _filtered(_base(viewer), f)
        total = capped_count(s, stmt)
        page = Page(number=number, size=PAGE_SIZE, total=total)
        rows = s.execute(
            stmt.order_by(SmsNotice.id.desc()).offset(page.offset).limit(page.size)
        ).all()
        page.rows = rows
        receipts = _latest_receipts(s, [r[0].out_id for r in rows])
        problems, problem_code = _configuration_problems(s, viewer)
        audit(
            s, viewer, "view.sms", target_type="sms_notice",
            detail={"filters": f, "page": page.number, "rows": len(rows)},
        )  # fmt: skip
    return render(
        request,
        "sms_list.html",
        viewer,
        active="sms",
        page=page,
        f=f,
        receipts=receipts,
        problems=problems,
        problem_code=problem_code,
        states=SMS_STATES,
        kinds=SMS_KINDS,
        receipt_states=RECEIPT_STATES,
        config_rejected=CONFIG_REJECTED,
        is_configuration_refusal=is_configuration_refusal,
        safe_error=safe_error,
    )
