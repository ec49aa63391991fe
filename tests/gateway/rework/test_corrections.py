"""Correction lists (更正清单): the XLSX the township stations fill in, masking, the audit
of unmasked exports, and "mark as returned for correction"."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from gateway.context import Context
from gateway.feedback.reasons import REASONS
from gateway.payments.states import ItemState
from gateway.rework.corrections import COLUMNS, export_correction_list, mark_returned
from gateway.rework.errors import (
    AlreadyMarkedError,
    NothingSelectedError,
    OperatorRequiredError,
    ReasonRequiredError,
)
from gateway.rework.models import AuditRecord, CorrectionList
from tests.gateway.helpers import persons
from tests.gateway.rework.support import batch, bounce, events, fail, item, item_state, pay

PEOPLE = persons(8, seed=11)
HEADERS = [c[0] for c in COLUMNS]


def _three_sheets(ctx: Context) -> None:
    """Two townships with 耕地地力保护补贴, one of them also with 低保."""
    batch(ctx, "C-1", PEOPLE[:4], region="430621101")
    batch(ctx, "C-2", PEOPLE[4:8], region="430621102")
    batch(ctx, "C-3", PEOPLE[:3], region="430621101", subsidy="DBBZ", subsidy_name="低保")
    fail(ctx, "C-1", [1, 3], "account_not_found")
    pay(ctx, "C-1", [2])
    fail(ctx, "C-2", [2], "name_mismatch", ("E102", "户名不符"))
    fail(ctx, "C-3", [1, 2], "account_closed", ("E104", "账户已销户"))


def _cells(wb: Any) -> list[str]:
    return [str(c.value) for ws in wb.worksheets for row in ws.iter_rows() for c in row]


def _data_rows(ws: Any) -> list[tuple[Any, ...]]:
    rows = []
    for row in ws.iter_rows(min_row=4, values_only=True):
        if not isinstance(row[0], int):
            break
        rows.append(row)
    return rows


def test_sheets_per_township_and_subsidy_masked_by_default(ctx: Context) -> None:
    _three_sheets(ctx)
    result = export_correction_list(ctx, operator="李会计")
    wb = load_workbook(io.BytesIO(result.content))
    assert wb.sheetnames == result.sheets
    assert wb.sheetnames == [
        "430621101-低保",
        "430621101-耕地地力保护补贴",
        "430621102-耕地地力保护补贴",
    ]
    assert len(result.item_ids) == 5
    assert result.amount_fen == (10001 + 10003) + 10002 + (10001 + 10002)

    ws = wb["430621101-耕地地力保护补贴"]
    assert [c.value for c in ws[3]] == HEADERS
    rows = _data_rows(ws)
    assert [(r[0], r[1], r[2]) for r in rows] == [(1, "C-1", 1), (2, "C-1", 3)]
    first = rows[0]
    # masked: name, ID and account; raw values appear nowhere in the workbook
    assert first[3] == PEOPLE[0].name[0] + "*" * (len(PEOPLE[0].name) - 1)
    assert first[4] == PEOPLE[0].id_number[:4] + "*" * 10 + PEOPLE[0].id_number[-4:]
    assert "*" in first[5] and first[5].endswith(PEOPLE[0].account_no[-4:])
    everything = "\n".join(_cells(wb))
    for p in PEOPLE:
        assert p.id_number not in everything
        assert p.account_no not in everything
    # amount in yuan, exact; reason and the station's advice in Chinese; station columns empty
    assert Decimal(str(first[6])) == Decimal("100.01")
    assert first[7].startswith(REASONS["account_not_found"].zh)
    assert "E101" in first[7]
    assert first[8] == REASONS["account_not_found"].action_zh
    assert first[9:12] == (None, None, None)
    assert ws.cell(4, HEADERS.index("更正后账号") + 1).number_format == "@"
    # total row
    total_row = 4 + len(rows)
    assert ws.cell(total_row, 1).value == "合计"
    assert Decimal(str(ws.cell(total_row, 7).value)) == Decimal("200.04")

    other = _data_rows(wb["430621101-低保"])
    assert {r[8] for r in other} == {REASONS["account_closed"].action_zh}

    # printable: landscape A4, one page wide, the header row on every page
    assert ws.page_setup.orientation == "landscape"
    assert ws.page_setup.fitToWidth == 1
    assert ws.sheet_properties.pageSetUpPr.fitToPage is True
    assert ws.print_title_rows == "$3:$3"
    assert ws.column_dimensions["E"].width == 21
    assert ws.freeze_panes == "A4"

    with ctx.sessions() as s:
        listed = s.get(CorrectionList, result.list_id)
        audit = s.scalars(select(AuditRecord)).all()
    assert listed is not None and listed.item_count == 5 and not listed.unmasked
    assert listed.sha256 == result.sha256
    assert [(a.action, a.actor, a.target_id) for a in audit] == [
        ("correction_list.export", "李会计", str(result.list_id))
    ]


def test_filters_select_one_township(ctx: Context) -> None:
    _three_sheets(ctx)
    result = export_correction_list(
        ctx, operator="李会计", region_code="430621102", subsidy_code="GDBH"
    )
    assert result.sheets == ["430621102-耕地地力保护补贴"]
    assert len(result.item_ids) == 1
    only_c3 = export_correction_list(ctx, operator="李会计", batch_nos=["C-3"])
    assert only_c3.sheets == ["430621101-低保"]


def test_unmasked_only_with_a_reason_and_audited(ctx: Context) -> None:
    _three_sheets(ctx)
    with pytest.raises(ReasonRequiredError):
        export_correction_list(ctx, operator="李会计", unmasked=True)
    with pytest.raises(ReasonRequiredError):
        export_correction_list(ctx, operator="李会计", unmasked=True, reason_text="   ")
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(CorrectionList)) == 0
        assert s.scalar(select(func.count()).select_from(AuditRecord)) == 0

    result = export_correction_list(
        ctx,
        operator="李会计",
        batch_nos=["C-1"],
        unmasked=True,
        reason_text="乡镇站所需核对完整账号",
    )
    rows = _data_rows(load_workbook(io.BytesIO(result.content)).worksheets[0])
    assert rows[0][3:6] == (PEOPLE[0].name, PEOPLE[0].id_number, PEOPLE[0].account_no)
    assert rows[1][3:6] == (PEOPLE[2].name, PEOPLE[2].id_number, PEOPLE[2].account_no)
    with ctx.sessions() as s:
        audit = s.scalars(select(AuditRecord)).one()
        listed = s.get(CorrectionList, result.list_id)
    assert audit.action == "correction_list.export_unmasked"
    assert audit.actor == "李会计" and audit.reason == "乡镇站所需核对完整账号"
    assert audit.detail is not None and audit.detail["items"] == 2
    assert PEOPLE[0].id_number not in str(audit.detail)
    assert listed is not None and listed.unmasked and listed.reason == "乡镇站所需核对完整账号"


def test_operator_is_required(ctx: Context) -> None:
    _three_sheets(ctx)
    for name in ("", "  ", "two words"):
        with pytest.raises(OperatorRequiredError):
            export_correction_list(ctx, operator=name)


def test_nothing_to_export(ctx: Context) -> None:
    batch(ctx, "C-9", PEOPLE[:2])
    pay(ctx, "C-9", [1, 2])
    with pytest.raises(NothingSelectedError):
        export_correction_list(ctx, operator="李会计")


def test_mark_returned_moves_the_exported_items_with_events(ctx: Context) -> None:
    _three_sheets(ctx)
    bounce(ctx, "C-2", [3])  # paid, then returned by the bank (退票): also to correct
    result = export_correction_list(ctx, operator="李会计", region_code="430621102")
    assert len(result.item_ids) == 2
    bounced = item(ctx, "C-2", 3)
    assert bounced.id in result.item_ids
    # one of them is re-issued before the list is marked: it is left alone
    batch(ctx, "C-4", [PEOPLE[5]], region="430621102", reissue_of={1: ("C-2", 2)})
    moved = mark_returned(ctx, result.list_id, "王站长")
    assert moved == 1
    assert item_state(ctx, "C-2", 2) == ItemState.REISSUED
    assert item_state(ctx, "C-2", 3) == ItemState.RETURNED
    assert item_state(ctx, "C-1", 1) == ItemState.FAILED  # not on this list
    trail = events(ctx, bounced.id)
    last = trail[-1]
    assert (last.event, last.from_state, last.to_state, last.actor) == (
        "return",
        "bounced",
        "returned",
        "operator:王站长",
    )
    assert last.detail == {"correction_list_id": result.list_id}
    with pytest.raises(AlreadyMarkedError):
        mark_returned(ctx, result.list_id, "王站长")
    with ctx.sessions() as s:
        listed = s.get(CorrectionList, result.list_id)
        actions = [a.action for a in s.scalars(select(AuditRecord).order_by(AuditRecord.id))]
    assert listed is not None and listed.returned_by == "王站长" and listed.returned_count == 1
    assert actions == ["correction_list.export", "correction_list.mark_returned"]
    # returned items are not listed again unless asked for (a reprint)
    with pytest.raises(NothingSelectedError):
        export_correction_list(ctx, operator="李会计", region_code="430621102")
    again = export_correction_list(
        ctx, operator="李会计", region_code="430621102", include_returned=True
    )
    assert again.item_ids == [bounced.id]


def test_mark_returned_of_failed_items(ctx: Context) -> None:
    _three_sheets(ctx)
    result = export_correction_list(ctx, operator="李会计", batch_nos=["C-1"])
    assert mark_returned(ctx, result.list_id, "王站长") == 2
    first = item(ctx, "C-1", 1)
    last = events(ctx, first.id)[-1]
    assert (last.event, last.from_state, last.to_state) == ("return", "failed", "returned")
    assert item_state(ctx, "C-1", 2) == ItemState.PAID
