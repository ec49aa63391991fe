"""The self-check report as an XLSX workbook: a summary sheet and one sheet per kind of
finding, Chinese headers, personal data masked, amounts in yuan written from integer fen as
text (never a float), with empty columns for the result of the check. An export for some
regions holds their findings only, without the item ids and region codes of other regions'
payments (the remark counts them). Every export is audited (``selfcheck.export``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from gateway.context import Context
from gateway.kit.clock import CHINA, utcnow
from gateway.kit.db import session_scope
from gateway.kit.money import format_yuan
from gateway.rework import audit
from gateway.selfcheck.service import (
    KIND_LABELS,
    KINDS,
    FindingView,
    ReportView,
    all_findings,
    get_report,
)

SUMMARY_SHEET = "自查汇总"
# (header, width in characters)
FINDING_COLUMNS: tuple[tuple[str, int], ...] = (
    ("序号", 6),
    ("疑点编号", 10),
    ("对象（已脱敏）", 22),
    ("涉及乡镇（区划代码）", 22),
    ("明细笔数", 9),
    ("明细编号", 24),
    ("金额（元）", 14),
    ("情况说明", 60),
    ("处理建议", 40),
    ("核查结果", 24),
    ("备注", 16),
)
SUMMARY_COLUMNS: tuple[tuple[str, int], ...] = (
    ("疑点类型", 26),
    ("类型代码", 24),
    ("疑点数", 9),
    ("金额（元）", 14),
    ("处理建议", 60),
)
TRIGGER_ZH = {"manual": "人工发起", "quarterly": "按季度自动"}
_WRAP = Alignment(vertical="top", wrap_text=True)


def _text(value: object) -> str:
    """Text a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


def _local(at: dt.datetime | None) -> str:
    if at is None:
        return ""
    return at.replace(tzinfo=dt.UTC).astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


def export_xlsx(
    ctx: Context, report_id: int, *, regions: Sequence[str] | None = None, actor: str
) -> tuple[str, bytes]:
    """The report (only the findings in ``regions``, region code prefixes; None: all) as an
    XLSX workbook: (file name, bytes)."""
    actor = audit.operator_name(actor)
    report = get_report(ctx, report_id)
    findings = all_findings(ctx, report_id, regions=regions)
    now = utcnow()
    content = render_workbook(report, findings, regions=regions, actor=actor, when=now)
    local = now.replace(tzinfo=dt.UTC).astimezone(CHINA)
    file_name = f"selfcheck-{report_id:06d}-{local:%Y%m%d}.xlsx"
    with session_scope(ctx.sessions) as session:
        audit.record(
            session,
            actor=actor,
            action="selfcheck.export",
            target_type="selfcheck_report",
            target_id=report_id,
            detail={
                "regions": None if regions is None else list(regions),
                "findings": len(findings),
                "file_name": file_name,
                "sha256": hashlib.sha256(content).hexdigest(),
            },
        )
    return file_name, content


def render_workbook(
    report: ReportView,
    findings: Sequence[FindingView],
    *,
    regions: Sequence[str] | None,
    actor: str,
    when: dt.datetime,
) -> bytes:
    wb = Workbook()
    summary = wb.active
    assert summary is not None  # noqa: S101 (a new workbook has one sheet)
    summary.title = SUMMARY_SHEET
    by_kind: dict[str, list[FindingView]] = {k: [] for k in KINDS}
    for f in findings:
        by_kind.setdefault(f.kind, []).append(f)
    _summary_sheet(summary, report, by_kind, regions=regions, actor=actor, when=when)
    for kind in KINDS:
        _finding_sheet(wb.create_sheet(KIND_LABELS[kind][0]), by_kind[kind])
    wb.properties.title = f"自查报告 {report.id}"
    wb.properties.creator = "subsidy-bank-gateway"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _header(ws: Worksheet, row: int, columns: Sequence[tuple[str, int]]) -> None:
    for col, (name, width) in enumerate(columns, start=1):
        ws.cell(row, col, name).font = Font(bold=True)
        ws.column_dimensions[get_column_letter(col)].width = width


def _summary_sheet(
    ws: Worksheet,
    report: ReportView,
    by_kind: dict[str, list[FindingView]],
    *,
    regions: Sequence[str] | None,
    actor: str,
    when: dt.datetime,
) -> None:
    ws.cell(1, 1, "惠民惠农财政补贴资金“一卡通”发放自查报告").font = Font(size=14, bold=True)
    scope = "全部" if regions is None else ("、".join(regions) or "无")
    lines = (
        ("报告编号", str(report.id)),
        ("自查期间（批次接收日期）", f"{report.period_from} 至 {report.period_to}"),
        ("发起方式", TRIGGER_ZH.get(report.trigger, report.trigger)),
        ("发起人", report.requested_by),
        ("开始时间", _local(report.started_at)),
        ("完成时间", _local(report.finished_at)),
        ("导出范围（区划代码）", scope),
        ("导出人", f"{actor} {_local(when)}"),
        ("个人信息", "身份证号、账号均已脱敏"),
    )
    row = 2
    for label, value in lines:
        ws.cell(row, 1, label).font = Font(bold=True)
        ws.cell(row, 2, _text(value))
        row += 1
    row += 1
    _header(ws, row, SUMMARY_COLUMNS)
    total_n, total_fen = 0, 0
    for kind, found in by_kind.items():
        zh, _en, action = KIND_LABELS.get(kind, (kind, kind, ""))
        fen = sum(f.amount_fen for f in found)
        total_n, total_fen = total_n + len(found), total_fen + fen
        row += 1
        cells: tuple[str | int, ...] = (zh, kind, len(found), format_yuan(fen), action)
        for col, cell in enumerate(cells, start=1):
            ws.cell(row, col, cell).alignment = _WRAP
    row += 1
    totals: tuple[str | int, ...] = ("合计", "", total_n, format_yuan(total_fen))
    for col, total in enumerate(totals, start=1):
        ws.cell(row, col, total).font = Font(bold=True)


def _finding_sheet(ws: Worksheet, found: Sequence[FindingView]) -> None:
    _header(ws, 1, FINDING_COLUMNS)
    for n, f in enumerate(found, start=1):
        values: list[object] = [
            n,
            f.id,
            _text(f.subject_masked),
            _text("、".join(f.region_codes)),
            len(f.item_ids),
            _text("、".join(str(i) for i in f.item_ids)),
            format_yuan(f.amount_fen),
            _text(f.explanation_zh),
            _text(f.action_zh),
            None,
            _text(f"另有{f.other_region_items}笔属于其他区划") if f.other_region_items else None,
        ]
        ws.append(values)
        for cell in ws[ws.max_row]:
            cell.alignment = _WRAP
    ws.freeze_panes = "A2"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.print_title_rows = "1:1"
