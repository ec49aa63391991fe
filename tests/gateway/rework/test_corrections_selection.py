"""A correction list of chosen items (``item_ids``: the dashboard's checked items, already
limited to the operator's regions): only those items, only in an exportable state, in the
list's usual order."""

from __future__ import annotations

import io

from openpyxl import load_workbook
from sqlalchemy import select

from gateway.context import Context
from gateway.rework.corrections import HEADER_ROW, export_correction_list
from gateway.rework.models import CorrectionList, CorrectionListItem
from tests.gateway.helpers import persons
from tests.gateway.rework.support import batch, fail, item, pay

PEOPLE = persons(6, seed=61)


def test_item_ids_narrow_the_list(ctx: Context) -> None:
    batch(ctx, "S-2", PEOPLE[3:5], region="430621102")
    batch(ctx, "S-1", PEOPLE[:3], region="430621101")
    fail(ctx, "S-1", [1, 2])
    pay(ctx, "S-1", [3])
    fail(ctx, "S-2", [1, 2])
    chosen = [item(ctx, n, s).id for n, s in (("S-2", 2), ("S-1", 2), ("S-1", 3))]
    exported = export_correction_list(ctx, operator="op", item_ids=chosen)
    # the paid item is left out; the rest in region, batch and seq order
    assert exported.item_ids == [item(ctx, "S-1", 2).id, item(ctx, "S-2", 2).id]
    assert len(exported.sheets) == 2
    wb = load_workbook(io.BytesIO(exported.content))
    assert [ws.cell(HEADER_ROW + 1, 2).value for ws in wb.worksheets] == ["S-1", "S-2"]
    with ctx.sessions() as s:
        record = s.get(CorrectionList, exported.list_id)
        members = set(s.scalars(select(CorrectionListItem.item_id)))
    assert record is not None and record.selection is not None
    assert record.selection["item_ids"] == 3
    assert members == set(exported.item_ids)


def test_without_item_ids_the_filters_apply_as_before(ctx: Context) -> None:
    batch(ctx, "S-3", PEOPLE[:2])
    fail(ctx, "S-3", [1, 2])
    exported = export_correction_list(ctx, operator="op", batch_nos=["S-3"])
    assert len(exported.item_ids) == 2
    with ctx.sessions() as s:
        record = s.get(CorrectionList, exported.list_id)
    assert record is not None and record.selection is not None
    assert "item_ids" not in record.selection
