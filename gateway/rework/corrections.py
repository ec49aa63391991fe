"""Correction lists (更正清单): failed items sent back to the township stations.

Article 10 (十): items that failed because of wrong data are fed back, corrected by the
township station and paid again through the same procedure. The export is an XLSX workbook
with one sheet per (township = the batch's region code, subsidy item), printable (A4
landscape, fit to width, the header row repeated on every page, page numbers, a signature
line), with empty columns the station fills in (corrected name, corrected account, remark).

Personal data is masked unless the operator asks for it in clear *and* states why; either
way the export is recorded (which items, by whom, the file's hash) and audited. Marking the
list "returned for correction" then moves its items ``failed``/``bounced`` → ``returned``
with a recorded event per item.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import insert, select, update

from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.feedback.reasons import reason
from gateway.kit.clock import CHINA, utcnow
from gateway.kit.db import session_scope
from gateway.kit.logging import get_logger
from gateway.kit.money import format_yuan
from gateway.payments.states import ItemEvent, ItemState
from gateway.payments.transitions import move_items
from gateway.rework import audit
from gateway.rework.errors import (
    AlreadyMarkedError,
    CorrectionListNotFoundError,
    NothingSelectedError,
)
from gateway.rework.models import CorrectionList, CorrectionListItem
from gateway.rework.scope import Regions, any_item_outside, region_clause

log = get_logger(__name__)

# Items a station must correct: failed at the bank, or paid and then returned (退票).
EXPORTABLE = (ItemState.FAILED, ItemState.BOUNCED)

# (header, width in characters, text column: digits must stay text, never a number)
COLUMNS: tuple[tuple[str, float, bool], ...] = (
    ("序号", 6, False),
    ("批次号", 18, True),
    ("明细序号", 9, False),
    ("姓名", 14, True),
    ("身份证号", 21, True),
    ("银行账号", 24, True),
    ("金额(元)", 13, False),
    ("失败原因", 24, True),
    ("处理建议", 38, True),
    ("更正后姓名", 14, True),
    ("更正后账号", 24, True),
    ("备注", 18, True),
)
STATION_COLUMNS = ("更正后姓名", "更正后账号", "备注")
TITLE_ROW, INFO_ROW, HEADER_ROW = 1, 2, 3
_THIN = Side(style="thin")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_FILL_INPUT = PatternFill("solid", fgColor="FFF2CC")  # the station's columns
_FILL_HEADER = PatternFill("solid", fgColor="D9E1F2")
_SHEET_FORBIDDEN = set("[]:*?/\\")
_CHUNK = 5000  # item ids per IN (...) list


@dataclass(frozen=True, slots=True)
class CorrectionListFile:
    """An exported correction list: the workbook bytes and what it holds."""

    list_id: int
    file_name: str
    content: bytes
    sha256: str
    sheets: list[str]
    item_ids: list[int]
    amount_fen: int
    unmasked: bool


@dataclass(frozen=True, slots=True)
class _Row:
    item_id: int
    batch_no: str
    seq: int
    region_code: str
    subsidy_code: str
    subsidy_name: str
    name: str
    id_number: str
    account: str
    amount_fen: int
    reason_zh: str
    action_zh: str


def export_correction_list(
    ctx: Context,
    *,
    operator: str,
    batch_nos: Sequence[str] | None = None,
    region_code: str | None = None,
    subsidy_code: str | None = None,
    fiscal_year: int | None = None,
    include_returned: bool = False,
    unmasked: bool = False,
    reason_text: str | None = None,
    item_ids: Sequence[int] | None = None,
    regions: Regions = None,
) -> CorrectionListFile:
    """Export the failed (and bounced) items matching the filters as a correction list.

    ``include_returned`` also lists items already marked returned (a lost or reprinted
    list). ``item_ids`` narrows the selection to those items (the dashboard passes the items
    an operator checked, already limited to their regions); items among them in another
    state are left out. ``unmasked=True`` writes names, ID numbers and account numbers in
    clear and requires ``reason_text``; the export is audited either way. ``regions``
    (the caller's region prefixes; None: every region) leaves out items of other
    regions."""
    operator = audit.operator_name(operator)
    reason_given = (
        audit.stated_reason(reason_text, "导出未脱敏的更正清单", "an unmasked export")
        if unmasked
        else (reason_text or "").strip() or None
    )
    states = [s.value for s in EXPORTABLE]
    if include_returned:
        states.append(ItemState.RETURNED.value)
    selection: dict[str, Any] = {
        "batch_nos": sorted(batch_nos) if batch_nos else None,
        "region_code": region_code,
        "subsidy_code": subsidy_code,
        "fiscal_year": fiscal_year,
        "states": states,
    }
    if item_ids is not None:
        selection["item_ids"] = len(set(item_ids))  # how many; the list records which
    query = (
        select(PaymentItem, Batch)
        .join(Batch, Batch.id == PaymentItem.batch_id)
        .where(PaymentItem.state.in_(states))
        .order_by(
            Batch.region_code, Batch.subsidy_code, Batch.received_at, Batch.id, PaymentItem.seq
        )
    )
    if batch_nos:
        query = query.where(Batch.batch_no.in_(list(batch_nos)))
    if region_code:
        query = query.where(Batch.region_code == region_code)
    if subsidy_code:
        query = query.where(Batch.subsidy_code == subsidy_code)
    if fiscal_year is not None:
        query = query.where(Batch.fiscal_year == fiscal_year)
    in_scope = region_clause(regions)
    if in_scope is not None:
        query = query.where(in_scope)

    with session_scope(ctx.sessions) as session:
        if item_ids is None:
            found = list(session.execute(query).all())
        else:
            wanted = sorted(set(item_ids))
            found = []
            for i in range(0, len(wanted), _CHUNK):
                chunk = wanted[i : i + _CHUNK]
                found += session.execute(query.where(PaymentItem.id.in_(chunk))).all()
            found.sort(
                key=lambda r: (
                    r[1].region_code,
                    r[1].subsidy_code,
                    r[1].received_at,
                    r[1].id,
                    r[0].seq,
                )
            )
        rows = [_row(ctx, item, batch, unmasked) for item, batch in found]
        if not rows:
            raise NothingSelectedError(
                "没有符合条件的支付失败明细", "no failed item matches the selection"
            )
        now = utcnow()
        amount = sum(r.amount_fen for r in rows)
        record = CorrectionList(
            created_at=now,
            created_by=operator,
            unmasked=unmasked,
            reason=reason_given,
            selection=selection,
            file_name="",
            sha256="",
            sheet_count=0,
            item_count=len(rows),
            amount_fen=amount,
        )
        session.add(record)
        session.flush()
        session.execute(
            insert(CorrectionListItem),
            [{"list_id": record.id, "item_id": r.item_id} for r in rows],
        )
        local = now.replace(tzinfo=dt.UTC).astimezone(CHINA)
        content, sheets = render_workbook(rows, list_id=record.id, operator=operator, when=local)
        sha = hashlib.sha256(content).hexdigest()
        record.file_name = f"correction-list-{record.id:06d}-{local:%Y%m%d}.xlsx"
        record.sha256 = sha
        record.sheet_count = len(sheets)
        audit.record(
            session,
            actor=operator,
            action="correction_list.export_unmasked" if unmasked else "correction_list.export",
            target_type="correction_list",
            target_id=record.id,
            reason=reason_given,
            detail={
                "items": len(rows),
                "amount_fen": amount,
                "sheets": sheets,
                "sha256": sha,
                "selection": selection,
            },
        )
        session.flush()
        log.info(
            "correction_list.exported",
            list_id=record.id,
            items=len(rows),
            unmasked=unmasked,
            operator=operator,
        )
        return CorrectionListFile(
            list_id=record.id,
            file_name=record.file_name,
            content=content,
            sha256=sha,
            sheets=sheets,
            item_ids=[r.item_id for r in rows],
            amount_fen=amount,
            unmasked=unmasked,
        )


def mark_returned(ctx: Context, list_id: int, operator: str, *, regions: Regions = None) -> int:
    """Mark the items of a correction list as returned for correction (已退回修改):
    ``failed``/``bounced`` → ``returned``, one recorded event per item naming the operator
    and the list. Items that moved on meanwhile (e.g. already re-issued) are left alone.
    Returns how many items moved; a list is marked once. A list with an item outside
    ``regions`` (None: every region) answers as a missing one."""
    operator = audit.operator_name(operator)
    with session_scope(ctx.sessions) as session:
        record = session.get(CorrectionList, list_id)
        outside = any_item_outside(
            regions, CorrectionListItem.item_id, CorrectionListItem.list_id, list_id
        )
        if record is None or (outside is not None and session.scalar(select(outside))):
            raise CorrectionListNotFoundError(
                f"更正清单 {list_id} 不存在", f"correction list {list_id} does not exist"
            )
        now = utcnow()
        claimed = session.execute(
            update(CorrectionList)
            .where(CorrectionList.id == list_id, CorrectionList.returned_at.is_(None))
            .values(returned_at=now, returned_by=operator)
            .execution_options(synchronize_session=False)
        )
        if int(claimed.rowcount) != 1:  # type: ignore[attr-defined]
            raise AlreadyMarkedError(
                f"更正清单 {list_id} 已标记为退回修改",
                f"correction list {list_id} was already marked returned",
            )
        in_list = select(CorrectionListItem.item_id).where(CorrectionListItem.list_id == list_id)
        moved = move_items(
            session,
            PaymentItem.id.in_(in_list),
            ItemEvent.RETURN,
            f"operator:{operator}",
            detail={"correction_list_id": list_id},
            now=now,
        )
        session.execute(
            update(CorrectionList)
            .where(CorrectionList.id == list_id)
            .values(returned_count=moved)
            .execution_options(synchronize_session=False)
        )
        audit.record(
            session,
            actor=operator,
            action="correction_list.mark_returned",
            target_type="correction_list",
            target_id=list_id,
            detail={"moved": moved, "listed": record.item_count},
        )
        log.info("correction_list.returned", list_id=list_id, moved=moved, operator=operator)
        return moved


# --- rendering ----------------------------------------------------------------------------


def reason_text(item: PaymentItem) -> tuple[str, str]:
    """(失败原因, 处理建议) of a failed, bounced or returned item, as the list writes them:
    our reason in Chinese with what the bank said, and the recommended action."""
    code = item.reason_code or ("bounced" if item.state == ItemState.BOUNCED else None)
    why = reason(code)
    reason_zh = why.zh
    if item.bank_code or item.bank_message:
        bank = " ".join(p for p in (item.bank_code, item.bank_message) if p)
        reason_zh = f"{why.zh}（银行返回：{bank}）"
    return reason_zh, why.action_zh


def _row(ctx: Context, item: PaymentItem, batch: Batch, unmasked: bool) -> _Row:
    reason_zh, action_zh = reason_text(item)
    if unmasked:
        name = ctx.pii.decrypt("name", item.name_enc)
        id_number = ctx.pii.decrypt("id_number", item.id_number_enc)
        account = ctx.pii.decrypt("account_no", item.account_enc)
    else:
        name, id_number, account = item.name_masked, item.id_number_masked, item.account_masked
    return _Row(
        item_id=item.id,
        batch_no=batch.batch_no,
        seq=item.seq,
        region_code=batch.region_code,
        subsidy_code=batch.subsidy_code,
        subsidy_name=batch.subsidy_name,
        name=name,
        id_number=id_number,
        account=account,
        amount_fen=item.amount_fen,
        reason_zh=reason_zh,
        action_zh=action_zh,
    )


def sheet_title(region_code: str, subsidy_name: str, taken: set[str]) -> str:
    """An Excel sheet name (≤ 31 characters, none of ``[]:*?/\\``), unique in the book."""
    clean = "".join("_" if c in _SHEET_FORBIDDEN else c for c in subsidy_name).strip("'")
    base = f"{region_code}-{clean}"[:31]
    title, n = base, 2
    while title.casefold() in taken:
        suffix = f"({n})"
        title, n = base[: 31 - len(suffix)] + suffix, n + 1
    taken.add(title.casefold())
    return title


def render_workbook(
    rows: Sequence[_Row], *, list_id: int, operator: str, when: dt.datetime
) -> tuple[bytes, list[str]]:
    """The workbook: one sheet per (region code, subsidy item), rows in the given order."""
    groups: dict[tuple[str, str], list[_Row]] = {}
    for r in rows:
        groups.setdefault((r.region_code, r.subsidy_code), []).append(r)
    wb = Workbook()
    default = wb.active
    if default is not None:
        wb.remove(default)
    taken: set[str] = set()
    titles: list[str] = []
    for (region, subsidy), group in groups.items():
        title = sheet_title(region, group[0].subsidy_name, taken)
        titles.append(title)
        ws = wb.create_sheet(title)
        _fill_sheet(ws, group, region, subsidy, list_id=list_id, operator=operator, when=when)
    wb.properties.title = f"更正清单 {list_id}"
    wb.properties.creator = "subsidy-bank-gateway"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue(), titles


def _fill_sheet(
    ws: Worksheet,
    group: Sequence[_Row],
    region: str,
    subsidy: str,
    *,
    list_id: int,
    operator: str,
    when: dt.datetime,
) -> None:
    ncol = len(COLUMNS)
    last = get_column_letter(ncol)
    total = sum(r.amount_fen for r in group)
    ws.merge_cells(f"A{TITLE_ROW}:{last}{TITLE_ROW}")
    title = ws.cell(TITLE_ROW, 1, "惠民惠农财政补贴资金“一卡通”发放失败更正清单")
    title.font = Font(size=16, bold=True)
    title.alignment = Alignment(horizontal="center", vertical="center")
    ws.row_dimensions[TITLE_ROW].height = 28
    ws.merge_cells(f"A{INFO_ROW}:{last}{INFO_ROW}")
    info = ws.cell(
        INFO_ROW,
        1,
        f"乡镇（区划代码）：{region}　补贴项目：{group[0].subsidy_name}（{subsidy}）　"
        f"清单编号：{list_id}　笔数：{len(group)}　金额合计：{format_yuan(total)}元　"
        f"导出：{operator} {when:%Y-%m-%d %H:%M}",
    )
    info.alignment = Alignment(horizontal="left", vertical="center", wrap_text=True)
    ws.row_dimensions[INFO_ROW].height = 30

    for col, (header, width, _text) in enumerate(COLUMNS, start=1):
        cell = ws.cell(HEADER_ROW, col, header)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.border = _BORDER
        cell.fill = _FILL_INPUT if header in STATION_COLUMNS else _FILL_HEADER
        ws.column_dimensions[get_column_letter(col)].width = width

    wrap = Alignment(vertical="top", wrap_text=True)
    row_no = HEADER_ROW
    for n, r in enumerate(group, start=1):
        row_no += 1
        values: list[int | str | Decimal | None] = [
            n,
            r.batch_no,
            r.seq,
            r.name,
            r.id_number,
            r.account,
            Decimal(r.amount_fen) / 100,
            r.reason_zh,
            r.action_zh,
            None,
            None,
            None,
        ]
        for col, value in enumerate(values, start=1):
            header, _width, text = COLUMNS[col - 1]
            cell = ws.cell(row_no, col, value)
            cell.border = _BORDER
            cell.alignment = wrap
            if text:
                # card and ID numbers typed by the station must stay text (no 6.2E+18)
                cell.number_format = "@"
            if header == "金额(元)":
                cell.number_format = "#,##0.00"
            if header in STATION_COLUMNS:
                cell.fill = _FILL_INPUT
    row_no += 1
    ws.cell(row_no, 1, "合计").font = Font(bold=True)
    ws.cell(row_no, 3, len(group)).font = Font(bold=True)
    amount = ws.cell(row_no, 7, Decimal(total) / 100)
    amount.number_format = "#,##0.00"
    amount.font = Font(bold=True)
    for col in range(1, ncol + 1):
        ws.cell(row_no, col).border = _BORDER
    row_no += 2
    ws.merge_cells(f"A{row_no}:{last}{row_no}")
    ws.cell(
        row_no,
        1,
        "乡镇业务主管站所经办人：__________　审核人：__________　"
        "乡镇财政服务中心：__________　日期：____年__月__日",
    )

    ws.freeze_panes = f"A{HEADER_ROW + 1}"
    ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    ws.print_area = f"A1:{last}{row_no}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True  # type: ignore[union-attr]
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.6
    header_item, footer_item = ws.oddHeader, ws.oddFooter
    if header_item is not None and footer_item is not None:
        header_item.center.text = f"更正清单 {list_id} · {region} · {group[0].subsidy_name}"
        footer_item.center.text = "第 &P 页，共 &N 页"
