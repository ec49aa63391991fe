"""The daily reconciliation statement: CSV and XLSX with Chinese headers whose totals tie
out, read back with the csv module and with openpyxl; no personal data in clear."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from gateway.context import Context
from gateway.reconciliation.service import reconcile
from gateway.reconciliation.statements import SUMMARY_COLUMNS, build_statement, write_statement
from gateway.worker import run_cycle
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, states, submit
from tests.gateway.reconciliation.forge import camt054_debit, items_of
from tests.waits import wait_until

PEOPLE = persons(4, seed=43)
HEADERS = [name for name, _, _ in SUMMARY_COLUMNS]
COUNTS = ["发送笔数", "成功笔数", "失败笔数", "退票笔数", "未决笔数", "未结差异数"]
AMOUNTS = [
    "发送金额（元）",
    "成功金额（元）",
    "失败金额（元）",
    "退票金额（元）",
    "未决金额（元）",
    "银行扣款（元）",
    "银行退回（元）",
    "差额（元）",
]


@pytest.fixture
def accounts() -> list[dict[str, str]]:
    return [
        {
            "account_no": p.account_no,
            "name": p.name,
            "id_number": p.id_number,
            "status": "closed" if i == 3 else "active",
        }
        for i, p in enumerate(PEOPLE)
    ]


@pytest.fixture
def bank_extra() -> str:
    return (
        "\n[faults]\nseed = 5\nbounce_after_seconds = 0.2\n"
        '[[faults.rules]]\nkind = "bounce_after_paid"\nnth = [1]\n'
    )


def check_ties(rows: list[dict[str, Any]]) -> None:
    """Every row and the total: sent = paid + failed + bounced + pending; difference =
    debited − credited − paid; the total is the sum of the rows."""
    *body, total = rows
    assert total["批次号"] == "合计"
    for row in rows:
        for unit in ("笔数", "金额（元）"):
            assert row["发送" + unit] == sum(
                row[k + unit] for k in ("成功", "失败", "退票", "未决")
            ), row
        assert (
            row["差额（元）"]
            == row["银行扣款（元）"] - row["银行退回（元）"] - row["成功金额（元）"]
        )
    for key in COUNTS + AMOUNTS:
        assert total[key] == sum(r[key] for r in body), key


def test_statement_ties_out_in_csv_and_xlsx(
    ctx: Context, iso_bank: Any, dev_keys: Path, tmp_path: Path
) -> None:
    body = payload("ST-1", PEOPLE)
    body["header"]["bank_profile"] = "psbc"
    submit(ctx, body)
    drive(ctx)

    def bounce_recorded() -> bool:
        if states(ctx).get("bounced") == 1:
            return True
        run_cycle(ctx, "t")
        return False

    wait_until(bounce_recorded, what=lambda: f"the 退票 to be recorded (items: {states(ctx)})")
    batch, items = items_of(ctx, "ST-1")
    assert batch.dispatch_on is not None
    day = batch.dispatch_on
    # the bank also debited the payer account that day for something that is not ours
    camt054_debit(
        ctx,
        dev_keys,
        "ZZZZZZZZZZZZZZZZ",
        [("ZZZZZZZZZZZZZZZZ00000001", 500)],
        booked_on=day,
        account=batch.payer_account,
    )
    reconcile(ctx, "recon")

    csv_path, xlsx_path = write_statement(ctx, day, "psbc", batch.payer_account, tmp_path)
    assert csv_path.suffix == ".csv" and xlsx_path.suffix == ".xlsx"

    # CSV: UTF-8 with BOM, Chinese headers, yuan with two decimals
    with csv_path.open(encoding="utf-8-sig", newline="") as f:
        raw = list(csv.DictReader(f))
    assert list(raw[0]) == HEADERS
    rows = [
        {k: Decimal(v) if k in AMOUNTS else int(v) if k in COUNTS else v for k, v in r.items()}
        for r in raw
    ]
    check_ties(rows)
    batch_row, entry_row, total = rows
    assert batch_row["批次号"] == "ST-1" and batch_row["对账结果"] == "平（有未结差异）"
    paid = sum(it.amount_fen for it in items if it.state == "paid")
    bounced = sum(it.amount_fen for it in items if it.state == "bounced")
    assert batch_row["成功金额（元）"] == Decimal(paid) / 100
    assert batch_row["退票笔数"] == 1 and batch_row["退票金额（元）"] == Decimal(bounced) / 100
    assert batch_row["失败笔数"] == 1 and batch_row["差额（元）"] == 0
    assert batch_row["银行扣款（元）"] == Decimal(paid + bounced) / 100
    assert entry_row["银行扣款（元）"] == Decimal("5.00") and entry_row["差额（元）"] == Decimal(
        "5.00"
    )
    assert total["差额（元）"] == Decimal("5.00") and total["对账结果"] == "不平"
    assert total["未结差异数"] == 2  # the bounce and the stranger debit

    # XLSX: the same figures, as exact decimals
    wb = load_workbook(xlsx_path)
    assert wb.sheetnames == ["对账汇总", "文件明细", "差异明细", "说明"]
    ws = wb["对账汇总"]
    header = [str(c.value) for c in ws[1]]
    assert header == HEADERS
    xrows: list[dict[str, Any]] = []
    for values in ws.iter_rows(min_row=2, values_only=True):
        row = dict(zip(header, values, strict=True))
        xrows.append(
            {
                k: Decimal(str(v)).quantize(Decimal("0.01")) if k in AMOUNTS else v
                for k, v in row.items()
            }
        )
    check_ties(xrows)
    assert [r["发送金额（元）"] for r in xrows] == [r["发送金额（元）"] for r in rows]
    assert xrows[-1]["差额（元）"] == Decimal("5.00")
    files = list(wb["文件明细"].iter_rows(min_row=2, values_only=True))
    assert len(files) == 1 and files[0][2] == 4  # one file of four items
    found = [
        {str(h.value): str(v) for h, v in zip(wb["差异明细"][1], r, strict=True)}
        for r in wb["差异明细"].iter_rows(min_row=2, values_only=True)
    ]
    assert sorted(d["差异类型"] for d in found) == ["成功后退票", "有扣款无明细"]
    bounce = next(d for d in found if d["差异类型"] == "成功后退票")
    assert "*" in bounce["姓名"] and "*" in bounce["账号"]

    # personal data never in clear, in either file
    text = csv_path.read_text(encoding="utf-8-sig")
    cells = " ".join(
        str(c)
        for sheet in wb.worksheets
        for row in sheet.iter_rows(values_only=True)
        for c in row
        if c is not None
    )
    for p in PEOPLE:
        for secret in (p.name, p.id_number, p.account_no):
            assert secret not in text and secret not in cells
    assert batch.payer_account not in text and batch.payer_account not in cells


def test_statement_of_a_quiet_day_is_empty_but_balanced(ctx: Context, tmp_path: Path) -> None:
    import datetime as dt

    st = build_statement(ctx, dt.date(2026, 1, 5), "hnrcu", "6228480010000000001")
    assert st.rows == [] and st.total.difference_fen == 0 and st.total.result == "平"
    csv_path, xlsx_path = write_statement(
        ctx, dt.date(2026, 1, 5), "hnrcu", "6228480010000000001", tmp_path
    )
    with csv_path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["批次号"] for r in rows] == ["合计"] and rows[0]["差额（元）"] == "0.00"
    assert load_workbook(xlsx_path)["对账汇总"].max_row == 2
