"""The XLSX export: a summary and one sheet per kind, Chinese headers, masked, amounts in
yuan as text from integer fen, scoped by region, audited; nothing raw in the workbook."""

from __future__ import annotations

import io
import zipfile

from openpyxl import load_workbook
from sqlalchemy import select

from gateway.context import Context
from gateway.rework.models import AuditRecord
from gateway.selfcheck.export import FINDING_COLUMNS, SUMMARY_SHEET, export_xlsx
from gateway.selfcheck.service import KIND_LABELS, KINDS, run_selfcheck
from tests.gateway.selfcheck.support import plant


def test_export_is_masked_per_kind_and_audited(ctx: Context) -> None:
    planted = plant(ctx)
    report_id = run_selfcheck(ctx, requested_by="审计员")
    name, content = export_xlsx(ctx, report_id, actor="李会计")
    assert name.startswith(f"selfcheck-{report_id:06d}-") and name.endswith(".xlsx")
    wb = load_workbook(io.BytesIO(content))
    assert wb.sheetnames == [SUMMARY_SHEET, *(KIND_LABELS[k][0] for k in KINDS)]
    for kind in KINDS:
        ws = wb[KIND_LABELS[kind][0]]
        assert [c.value for c in ws[1]] == [h for h, _ in FINDING_COLUMNS]
        assert ws.max_row == 2  # one finding of each kind
    dup = wb[KIND_LABELS["duplicate_claim"][0]]
    row = {h: c.value for (h, _), c in zip(FINDING_COLUMNS, dup[2], strict=True)}
    assert row["金额（元）"] == "200.03"  # text written from integer fen
    assert row["对象（已脱敏）"] == "4306**********" + planted.people[1].id_number[-4:]
    assert row["涉及乡镇（区划代码）"] == "430621101、430621103"
    assert row["处理建议"] == KIND_LABELS["duplicate_claim"][2]
    assert row["核查结果"] is None  # for the person who checks it
    summary = [[c.value for c in r] for r in wb[SUMMARY_SHEET].iter_rows()]
    assert summary[-1][:3] == ["合计", None, 5]
    assert ["报告编号", str(report_id)] == summary[1][:2]
    # no raw ID, account or phone number, nor a full name, anywhere in the file
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        xml = "".join(z.read(n).decode("utf-8") for n in z.namelist() if n.endswith(".xml"))
    for p in planted.people:
        for secret in (p.id_number, p.account_no, p.phone, p.name):
            assert secret not in xml
    with ctx.sessions() as s:
        audit = s.scalars(select(AuditRecord).where(AuditRecord.action == "selfcheck.export")).one()
    assert audit.actor == "李会计" and audit.target_id == str(report_id)
    assert audit.detail is not None and audit.detail["findings"] == 5


def test_export_of_one_region(ctx: Context) -> None:
    plant(ctx)
    report_id = run_selfcheck(ctx, requested_by="审计员")
    _, content = export_xlsx(ctx, report_id, regions=["430621102"], actor="王站长")
    wb = load_workbook(io.BytesIO(content))
    rows = {k: wb[KIND_LABELS[k][0]].max_row - 1 for k in KINDS}
    assert rows == {k: int(k == "implausible_age") for k in KINDS}
    scope = {r[0].value: r[1].value for r in wb[SUMMARY_SHEET].iter_rows(max_col=2)}
    assert scope["导出范围（区划代码）"] == "430621102"
