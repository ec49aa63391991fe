"""The daily reconciliation statement (对账单) per bank and payer account, as CSV and XLSX.

One row per batch that went to the bank that business day (``Batch.dispatch_on``), one row
per payer-account entry of that day that names no batch of ours, one row for the bank's
other unresolved discrepancies of the day, and a total (合计). The totals tie out:

- 发送 = 成功 + 失败 + 退票 + 未决 (counts and amounts), on every row;
- 差额 = 银行扣款 − 银行退回 − 成功金额, on every row; the total is the sum of the rows.

Money is integer fen throughout; the files show yuan (CSV: ``"1234.56"`` text; XLSX: exact
decimals formatted ``#,##0.00``). Headers are Chinese (operators read Chinese); personal
data appears only masked (the discrepancy sheet shows masked names and card numbers) and
the payer account is masked too. The statement reflects the last reconciliation run.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Literal

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.feedback.models import AccountEntryRecord
from gateway.kit.clock import CHINA, utcnow
from gateway.kit.money import format_yuan
from gateway.kit.pii import mask_account
from gateway.payments.states import BatchState
from gateway.reconciliation.matching import (
    UNRESOLVED,
    DiscrepancyState,
    DiscrepancyType,
    Outcome,
    Tally,
    check_batch,
)
from gateway.reconciliation.models import AccountEntryLink, Discrepancy
from gateway.reconciliation.service import DISPATCHED, has_account_notices, load_batch_facts

RowKind = Literal["batch", "entry", "other", "total"]


@dataclass
class StatementRow:
    kind: RowKind
    label: str  # batch number, or what the row is
    serial: str = ""
    subsidy: str = ""
    status: str = ""
    sent_count: int = 0
    sent_fen: int = 0
    paid_count: int = 0
    paid_fen: int = 0
    failed_count: int = 0
    failed_fen: int = 0
    bounced_count: int = 0
    bounced_fen: int = 0
    pending_count: int = 0
    pending_fen: int = 0
    debited_fen: int = 0
    credited_fen: int = 0
    open_discrepancies: int = 0
    result: str = ""

    @property
    def difference_fen(self) -> int:
        """debited − credited − paid."""
        return self.debited_fen - self.credited_fen - self.paid_fen

    @property
    def ties_out(self) -> bool:
        return (
            self.sent_count
            == self.paid_count + self.failed_count + self.bounced_count + self.pending_count
            and self.sent_fen
            == self.paid_fen + self.failed_fen + self.bounced_fen + self.pending_fen
        )


_SUMMED = (
    "sent_count",
    "sent_fen",
    "paid_count",
    "paid_fen",
    "failed_count",
    "failed_fen",
    "bounced_count",
    "bounced_fen",
    "pending_count",
    "pending_fen",
    "debited_fen",
    "credited_fen",
    "open_discrepancies",
)


@dataclass
class FileRow:
    batch_no: str
    file_name: str
    declared_count: int
    declared_fen: int
    sent_count: int
    paid_count: int
    failed_count: int
    bounced_count: int
    pending_count: int


@dataclass
class DiscrepancyRow:
    id: int
    type: str
    state: str
    batch_no: str
    serial: str
    name_masked: str
    account_masked: str
    amount_fen: int | None
    summary: str
    detected_at: dt.datetime
    cleared: bool
    explained_by: str
    explanation: str
    closed_by: str
    close_reason: str
    closed_at: dt.datetime | None


@dataclass
class Statement:
    day: dt.date
    bank_profile: str
    bank_name: str
    payer_account_masked: str
    evidence: str  # what the bank's money figures come from
    generated_at: dt.datetime
    rows: list[StatementRow] = field(default_factory=list)
    files: list[FileRow] = field(default_factory=list)
    discrepancies: list[DiscrepancyRow] = field(default_factory=list)

    @property
    def total(self) -> StatementRow:
        total = StatementRow(kind="total", label="合计")
        for row in self.rows:
            for name in _SUMMED:
                setattr(total, name, getattr(total, name) + getattr(row, name))
        total.result = (
            "平" if total.difference_fen == 0 and not total.open_discrepancies else "不平"
        )
        return total


# --- building --------------------------------------------------------------------------------


def build_statement(
    ctx: Context,
    day: dt.date,
    bank_profile: str,
    payer_account: str,
    *,
    now: dt.datetime | None = None,
) -> Statement:
    """The statement's figures, from the database (no files written)."""
    now = now or utcnow()
    profile = ctx.profiles.get(bank_profile)
    notices = has_account_notices(ctx, bank_profile)
    st = Statement(
        day=day,
        bank_profile=bank_profile,
        bank_name=profile.display_name if profile else bank_profile,
        payer_account_masked=mask_account(payer_account),
        evidence="银行付款账户扣款通知（camt.054）"
        if notices
        else "银行回盘报告的成功金额（该行不发扣款通知）",
        generated_at=now,
    )
    with ctx.sessions() as session:
        batches = list(
            session.scalars(
                select(Batch)
                .where(
                    Batch.dispatch_on == day,
                    Batch.bank_profile == bank_profile,
                    Batch.payer_account == payer_account,
                    Batch.state.in_(DISPATCHED),
                )
                .order_by(Batch.id)
            )
        )
        open_by_batch = _unresolved_by(session, "batch", [b.id for b in batches])
        for batch in batches:
            facts = load_batch_facts(session, ctx, batch)
            verdict = check_batch(facts, now)
            t = verdict.tally
            money = verdict.money
            row = StatementRow(
                kind="batch",
                label=batch.batch_no,
                serial=batch.serial or "",
                subsidy=batch.subsidy_name,
                status=BatchState(batch.state).label_zh,
                sent_count=t.sent_count,
                sent_fen=t.sent_fen,
                paid_count=t.count[Outcome.PAID],
                paid_fen=t.fen[Outcome.PAID],
                failed_count=t.count[Outcome.FAILED],
                failed_fen=t.fen[Outcome.FAILED],
                bounced_count=t.count[Outcome.BOUNCED],
                bounced_fen=t.fen[Outcome.BOUNCED],
                pending_count=t.count[Outcome.PENDING],
                pending_fen=t.fen[Outcome.PENDING],
                open_discrepancies=open_by_batch.get(batch.id, 0),
            )
            if money is not None:
                row.debited_fen, row.credited_fen = money.debited_fen, money.credited_fen
            else:  # items still with the bank: show what the bank has booked so far
                row.debited_fen = sum(
                    line.amount_fen for line in facts.lines if line.direction == "debit"
                )
                row.credited_fen = sum(
                    line.amount_fen for line in facts.lines if line.direction == "credit"
                )
            row.result = _result(batch.state, verdict.money_state, row)
            st.rows.append(row)
            for f in facts.files:
                ft = verdict.files.get(f.file_id) or Tally()
                count = ft.count.__getitem__
                st.files.append(
                    FileRow(
                        batch_no=batch.batch_no,
                        file_name=f.file_name,
                        declared_count=f.item_count,
                        declared_fen=f.total_fen,
                        sent_count=ft.sent_count,
                        paid_count=count(Outcome.PAID),
                        failed_count=count(Outcome.FAILED),
                        bounced_count=count(Outcome.BOUNCED),
                        pending_count=count(Outcome.PENDING),
                    )
                )
        entries = list(
            session.scalars(
                select(AccountEntryRecord)
                .join(AccountEntryLink, AccountEntryLink.entry_id == AccountEntryRecord.id)
                .where(
                    AccountEntryLink.batch_id.is_(None),
                    AccountEntryRecord.bank_profile == bank_profile,
                    AccountEntryRecord.account == payer_account,
                    AccountEntryRecord.booked_on == day,
                )
                .order_by(AccountEntryRecord.id)
            )
        )
        open_by_entry = _unresolved_by(session, "entry", [e.id for e in entries])
        for e in entries:
            row = StatementRow(
                kind="entry",
                label="无对应批次的账户流水",
                serial=e.bank_ref,
                debited_fen=e.amount_fen if e.direction == "debit" else 0,
                credited_fen=e.amount_fen if e.direction == "credit" else 0,
                open_discrepancies=open_by_entry.get(e.id, 0),
                result="不平",
            )
            st.rows.append(row)
        others = session.scalar(
            select(func.count())
            .select_from(Discrepancy)
            .where(
                Discrepancy.bank_profile == bank_profile,
                Discrepancy.day == day,
                Discrepancy.batch_id.is_(None),
                Discrepancy.account_entry_id.is_(None),
                or_(
                    Discrepancy.payer_account.is_(None), Discrepancy.payer_account == payer_account
                ),
                Discrepancy.state.in_(UNRESOLVED),
            )
        )
        if others:
            st.rows.append(
                StatementRow(
                    kind="other",
                    label="其他未结差异（如未发送明细的结果）",
                    open_discrepancies=int(others),
                    result="不平",
                )
            )
        st.discrepancies = _discrepancy_rows(
            session,
            day,
            bank_profile,
            payer_account,
            [b.id for b in batches],
            [e.id for e in entries],
            {b.id: b.batch_no for b in batches},
        )
    return st


def _result(state: str, money_state: str, row: StatementRow) -> str:
    if state == BatchState.RECONCILED:
        return "已对账" if not row.open_discrepancies else "已对账（有新差异）"
    if money_state == "in_flight":
        return "处理中"
    if money_state == "awaiting":
        return "待银行扣款通知"
    if money_state == "differs":
        return "不平"
    return "平（有未结差异）" if row.open_discrepancies else "平"


def _unresolved_by(
    session: Session, by: Literal["batch", "entry"], ids: Sequence[int]
) -> dict[int, int]:
    """Unresolved discrepancies per batch (or per payer-account entry)."""
    if not ids:
        return {}
    col = Discrepancy.batch_id if by == "batch" else Discrepancy.account_entry_id
    return {
        int(k): int(n)
        for k, n in session.execute(
            select(col, func.count())
            .where(col.in_(list(ids)), Discrepancy.state.in_(UNRESOLVED))
            .group_by(col)
        )
        if k is not None
    }


def _discrepancy_rows(
    session: Session,
    day: dt.date,
    bank_profile: str,
    payer_account: str,
    batch_ids: Sequence[int],
    entry_ids: Sequence[int],
    batch_nos: dict[int, str],
) -> list[DiscrepancyRow]:
    conditions: list[ColumnElement[bool]] = [
        (Discrepancy.bank_profile == bank_profile)
        & (Discrepancy.day == day)
        & Discrepancy.batch_id.is_(None)
        & Discrepancy.account_entry_id.is_(None)
        & or_(Discrepancy.payer_account.is_(None), Discrepancy.payer_account == payer_account)
    ]
    if batch_ids:
        conditions.append(Discrepancy.batch_id.in_(list(batch_ids)))
    if entry_ids:
        conditions.append(Discrepancy.account_entry_id.in_(list(entry_ids)))
    found = list(
        session.scalars(select(Discrepancy).where(or_(*conditions)).order_by(Discrepancy.id))
    )
    item_ids = [d.item_id for d in found if d.item_id is not None]
    items = {
        it.id: it
        for it in (
            session.scalars(select(PaymentItem).where(PaymentItem.id.in_(item_ids)))
            if item_ids
            else []
        )
    }
    rows = []
    for d in found:
        it = items.get(d.item_id) if d.item_id is not None else None
        rows.append(
            DiscrepancyRow(
                id=d.id,
                type=DiscrepancyType(d.type).label_zh,
                state=DiscrepancyState(d.state).label_zh,
                batch_no=batch_nos.get(d.batch_id, "") if d.batch_id is not None else "",
                serial=it.serial if it else str(d.evidence.get("serial") or ""),
                name_masked=it.name_masked if it else "",
                account_masked=it.account_masked if it else "",
                amount_fen=d.amount_fen,
                summary=d.summary,
                detected_at=d.detected_at,
                cleared=d.cleared_at is not None,
                explained_by=d.explained_by or "",
                explanation=d.explanation or "",
                closed_by=d.closed_by or "",
                close_reason=d.close_reason or "",
                closed_at=d.closed_at,
            )
        )
    return rows


# --- writing ---------------------------------------------------------------------------------

_Kind = Literal["text", "count", "fen"]
SUMMARY_COLUMNS: list[tuple[str, _Kind, Callable[[Statement, StatementRow], object]]] = [
    ("业务日期", "text", lambda s, r: s.day.isoformat()),
    ("代发银行", "text", lambda s, r: s.bank_name),
    ("付款账户", "text", lambda s, r: s.payer_account_masked),
    ("批次号", "text", lambda s, r: r.label),
    ("银行批次流水号", "text", lambda s, r: r.serial),
    ("补贴项目", "text", lambda s, r: r.subsidy),
    ("批次状态", "text", lambda s, r: r.status),
    ("发送笔数", "count", lambda s, r: r.sent_count),
    ("发送金额（元）", "fen", lambda s, r: r.sent_fen),
    ("成功笔数", "count", lambda s, r: r.paid_count),
    ("成功金额（元）", "fen", lambda s, r: r.paid_fen),
    ("失败笔数", "count", lambda s, r: r.failed_count),
    ("失败金额（元）", "fen", lambda s, r: r.failed_fen),
    ("退票笔数", "count", lambda s, r: r.bounced_count),
    ("退票金额（元）", "fen", lambda s, r: r.bounced_fen),
    ("未决笔数", "count", lambda s, r: r.pending_count),
    ("未决金额（元）", "fen", lambda s, r: r.pending_fen),
    ("银行扣款（元）", "fen", lambda s, r: r.debited_fen),
    ("银行退回（元）", "fen", lambda s, r: r.credited_fen),
    ("差额（元）", "fen", lambda s, r: r.difference_fen),
    ("未结差异数", "count", lambda s, r: r.open_discrepancies),
    ("对账结果", "text", lambda s, r: r.result),
]

FILE_COLUMNS: list[tuple[str, _Kind, Callable[[FileRow], object]]] = [
    ("批次号", "text", lambda f: f.batch_no),
    ("发送文件", "text", lambda f: f.file_name),
    ("文件笔数", "count", lambda f: f.declared_count),
    ("文件金额（元）", "fen", lambda f: f.declared_fen),
    ("已发送笔数", "count", lambda f: f.sent_count),
    ("成功笔数", "count", lambda f: f.paid_count),
    ("失败笔数", "count", lambda f: f.failed_count),
    ("退票笔数", "count", lambda f: f.bounced_count),
    ("未决笔数", "count", lambda f: f.pending_count),
]


def _local(at: dt.datetime | None) -> str:
    if at is None:
        return ""
    return at.replace(tzinfo=dt.UTC).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


DISCREPANCY_COLUMNS: list[tuple[str, _Kind, Callable[[DiscrepancyRow], object]]] = [
    ("差异编号", "count", lambda d: d.id),
    ("差异类型", "text", lambda d: d.type),
    ("状态", "text", lambda d: d.state),
    ("批次号", "text", lambda d: d.batch_no),
    ("明细流水号", "text", lambda d: d.serial),
    ("姓名", "text", lambda d: d.name_masked),
    ("账号", "text", lambda d: d.account_masked),
    ("金额（元）", "fen", lambda d: d.amount_fen),
    ("差异说明", "text", lambda d: d.summary),
    ("发现时间", "text", lambda d: _local(d.detected_at)),
    ("差异已消除", "text", lambda d: "是" if d.cleared else "否"),
    ("说明人", "text", lambda d: d.explained_by),
    ("说明内容", "text", lambda d: d.explanation),
    ("关闭人", "text", lambda d: d.closed_by),
    ("关闭原因", "text", lambda d: d.close_reason),
    ("关闭时间", "text", lambda d: _local(d.closed_at)),
]


def _safe_text(value: object) -> str:
    """Text a spreadsheet will not run as a formula (CSV/formula injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


def _csv_value(kind: _Kind, value: object) -> str:
    if kind == "fen":
        return "" if value is None else format_yuan(int(str(value)))
    if kind == "count":
        return str(value)
    return _safe_text(value)


def _xlsx_value(kind: _Kind, value: object) -> object:
    if kind == "fen":
        return None if value is None else Decimal(int(str(value))).scaleb(-2)
    if kind == "count":
        return value
    return _safe_text(value)


def _file_stem(st: Statement) -> str:
    tail = st.payer_account_masked[-4:]
    return f"reconciliation_{st.day.isoformat()}_{st.bank_profile}_{tail}"


def write_statement(
    ctx: Context,
    day: dt.date,
    bank_profile: str,
    payer_account: str,
    directory: Path,
) -> tuple[Path, Path]:
    """Write the day's statement for one bank and payer account; returns (CSV, XLSX)."""
    st = build_statement(ctx, day, bank_profile, payer_account)
    directory.mkdir(parents=True, exist_ok=True)
    stem = _file_stem(st)
    csv_path = directory / f"{stem}.csv"
    xlsx_path = directory / f"{stem}.xlsx"
    rows = [*st.rows, st.total]
    # UTF-8 with a byte-order mark: what spreadsheet programs on Chinese Windows expect
    with csv_path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([name for name, _, _ in SUMMARY_COLUMNS])
        for row in rows:
            writer.writerow([_csv_value(kind, get(st, row)) for _, kind, get in SUMMARY_COLUMNS])
    wb = Workbook()
    summary_sheet = wb.active
    assert summary_sheet is not None  # noqa: S101 (a new workbook has one sheet)
    summary_sheet.title = "对账汇总"
    _sheet(
        summary_sheet,
        [(n, k) for n, k, _ in SUMMARY_COLUMNS],
        [[get(st, r) for _, _, get in SUMMARY_COLUMNS] for r in rows],
        bold_last=True,
    )
    _sheet(
        wb.create_sheet("文件明细"),
        [(n, k) for n, k, _ in FILE_COLUMNS],
        [[get(f) for _, _, get in FILE_COLUMNS] for f in st.files],
    )
    _sheet(
        wb.create_sheet("差异明细"),
        [(n, k) for n, k, _ in DISCREPANCY_COLUMNS],
        [[get(d) for _, _, get in DISCREPANCY_COLUMNS] for d in st.discrepancies],
    )
    notes = wb.create_sheet("说明")
    total = st.total
    for line in (
        ("对账单", "惠民惠农财政补贴资金“一卡通”代发对账单"),
        ("业务日期", st.day.isoformat()),
        ("代发银行", f"{st.bank_name}（{st.bank_profile}）"),
        ("付款账户", st.payer_account_masked),
        ("银行金额依据", st.evidence),
        ("生成时间", _local(st.generated_at)),
        ("勾稽关系", "发送 = 成功 + 失败 + 退票 + 未决；差额 = 银行扣款 − 银行退回 − 成功金额"),
        ("合计差额（元）", format_yuan(total.difference_fen)),
        ("未结差异数", str(total.open_discrepancies)),
        ("对账结果", total.result),
        ("个人信息", "姓名、账号均已脱敏"),
    ):
        notes.append([_safe_text(v) for v in line])
    notes.column_dimensions["A"].width = 16
    notes.column_dimensions["B"].width = 70
    wb.save(xlsx_path)
    return csv_path, xlsx_path


def _sheet(
    ws: Worksheet,
    columns: Sequence[tuple[str, _Kind]],
    rows: Sequence[Sequence[object]],
    *,
    bold_last: bool = False,
) -> None:
    ws.append([name for name, _ in columns])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append([_xlsx_value(kind, v) for (_, kind), v in zip(columns, row, strict=True)])
    for index, (name, kind) in enumerate(columns, start=1):
        letter = get_column_letter(index)
        ws.column_dimensions[letter].width = max(10, min(40, 2 * len(name) + 2))
        if kind == "fen":
            for (cell,) in ws.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = "#,##0.00"
    if bold_last and rows:
        for cell in ws[ws.max_row]:
            cell.font = Font(bold=True)
    ws.freeze_panes = "A2"
