"""``gateway corrections|refunds|history`` through the real command line (typer), on the
same database as the services."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.cli import app
from gateway.context import Context
from gateway.payments.states import ItemState
from gateway.rework.models import AuditRecord
from tests.gateway.cli_support import cli_runner, invoke_ok
from tests.gateway.helpers import persons
from tests.gateway.rework.support import batch, fail, item_state, pay

PEOPLE = persons(4, seed=41)


@pytest.fixture
def run(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    return cli_runner(ctx, monkeypatch)


_ok = invoke_ok


def test_corrections_export_and_mark_returned(ctx: Context, run: CliRunner, tmp_path: Path) -> None:
    batch(ctx, "K-1", PEOPLE)
    fail(ctx, "K-1", [1, 3])
    pay(ctx, "K-1", [2, 4])
    out = _ok(run, "corrections", "export", "--operator", "李会计", "--out", str(tmp_path))
    assert "更正清单 1：2 笔，200.04 元，1 个工作表" in out
    (written,) = tmp_path.glob("correction-list-000001-*.xlsx")
    wb = load_workbook(io.BytesIO(written.read_bytes()))
    assert wb.sheetnames == ["430621101-耕地地力保护补贴"]
    refused = run.invoke(
        app, ["corrections", "export", "--operator", "李会计", "--out", "x.xlsx", "--unmasked"]
    )
    assert refused.exit_code == 1 and "必须说明理由" in refused.output
    marked = _ok(run, "corrections", "mark-returned", "1", "--operator", "王站长")
    assert "更正清单 1：2 笔明细已标记为已退回修改" in marked
    assert item_state(ctx, "K-1", 1) == ItemState.RETURNED


def test_refunds_maker_checker_on_the_command_line(ctx: Context, run: CliRunner) -> None:
    batch(ctx, "K-2", PEOPLE[:2])
    fail(ctx, "K-2", [1, 2])
    common = ["--reason", "当年无法更正", "--as-of", "2026-12-31"]
    out = _ok(run, "refunds", "propose", "--operator", "张出纳", "--batch-no", "K-2", *common)
    assert "#1 待审核 2026年" in out and "2 笔 200.03 元" in out
    same = run.invoke(app, ["refunds", "approve", "1", "--operator", "张出纳"])
    assert same.exit_code == 1 and "提交人不能审核" in same.output
    out = _ok(run, "refunds", "approve", "1", "--operator", "赵科长")
    assert "已批准退回国库" in out and "国库退库编号 TK" in out
    again = run.invoke(app, ["refunds", "reject", "1", "--operator", "钱主任", "--reason", "否"])
    assert again.exit_code == 1 and "不能再次审核" in again.output
    listed = json.loads(_ok(run, "refunds", "list", "--operator", "钱主任", "--json"))
    assert listed["approved"] == {"count": 2, "amount_fen": 20003}
    assert [r["state"] for r in listed["refunds"]] == ["approved"]
    shown = json.loads(_ok(run, "refunds", "show", "1", "--operator", "钱主任", "--json"))
    assert [i["reissue_of"] for i in shown["items"]] == [
        {"batch_no": "K-2", "seq": 1},
        {"batch_no": "K-2", "seq": 2},
    ]
    assert PEOPLE[0].id_number not in json.dumps(shown, ensure_ascii=False)


def test_history_is_masked_and_audited(
    ctx: Context, run: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch(ctx, "K-3", PEOPLE[:1])
    fail(ctx, "K-3", [1])
    monkeypatch.setattr("getpass.getuser", lambda: "county-operator-7")
    out = _ok(run, "history", "--id-number", PEOPLE[0].id_number)
    assert "1 笔明细" in out and "支付失败" in out and "处理建议" in out
    assert PEOPLE[0].id_number not in out and PEOPLE[0].account_no not in out
    as_json = json.loads(_ok(run, "history", "--id-number", PEOPLE[0].id_number, "--json"))
    assert as_json["chains"][0]["entries"][0]["batch_no"] == "K-3"
    with ctx.sessions() as s:
        actors = s.scalars(
            select(AuditRecord.actor).where(AuditRecord.action == "history.query")
        ).all()
    assert actors == ["county-operator-7", "county-operator-7"]
    bad = run.invoke(app, ["history", "--id-number", "123", "--operator", "审计员"])
    assert bad.exit_code == 1 and "身份证号码无效" in bad.output
