"""``gateway selfcheck run|export`` through the real command line (typer), logged in with
dashboard accounts."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.cli import app
from gateway.commands.selfcheck import narrowed
from gateway.context import Context
from gateway.rework.models import AuditRecord
from gateway.selfcheck.export import SUMMARY_SHEET
from tests.gateway.cli_support import cli_runner, invoke_as, make_account, ok_as
from tests.gateway.selfcheck.support import plant


@pytest.fixture
def run(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    make_account(ctx, "county.op", "operator", ["430621"], real_name="孙经办")
    make_account(ctx, "aud", "auditor", real_name="吴审计")
    return cli_runner(ctx, monkeypatch)


def _json(output: str) -> Any:
    """The JSON document printed (the test process's log lines may come before it)."""
    lines = output.splitlines()
    return json.loads("\n".join(lines[lines.index("{") :]))


def test_run_and_export(ctx: Context, run: CliRunner, tmp_path: Path) -> None:
    planted = plant(ctx)
    out = ok_as(run, "county.op", "selfcheck", "run")
    assert "自查报告 1：" in out and "共 5 个疑点" in out
    assert "一个账户收到多人补贴（shared_account）：1" in out
    as_json = _json(ok_as(run, "county.op", "selfcheck", "run", "--json"))
    assert as_json["id"] == 2 and as_json["total"] == 5 and as_json["requested_by"] == "county.op"
    quiet = _json(
        ok_as(run, "county.op", "selfcheck", "run", "--since", "2020-01-01", "--until",
              "2020-12-31", "--json")
    )  # fmt: skip
    assert quiet["total"] == 0 and quiet["period_from"] == "2020-01-01"
    out = ok_as(run, "aud", "selfcheck", "export", "--report", "1", "--out", str(tmp_path))
    (written,) = tmp_path.glob("selfcheck-000001-*.xlsx")
    assert str(written) in out
    wb = load_workbook(io.BytesIO(written.read_bytes()))
    assert wb.sheetnames[0] == SUMMARY_SHEET and len(wb.sheetnames) == 6
    assert planted.people[0].account_no not in written.read_bytes().decode("latin-1")
    with ctx.sessions() as s:
        exported = s.scalars(
            select(AuditRecord).where(AuditRecord.action == "selfcheck.export")
        ).all()
    assert [(a.actor, (a.detail or {})["regions"]) for a in exported] == [("aud", None)]


def test_an_auditor_reads_but_does_not_run(ctx: Context, run: CliRunner) -> None:
    refused = invoke_as(run, "aud", "selfcheck", "run")
    assert refused.exit_code == 1 and "您的角色只能查看，不能操作" in refused.output


def test_the_export_keeps_to_the_accounts_regions(
    ctx: Context, run: CliRunner, tmp_path: Path
) -> None:
    plant(ctx)
    ok_as(run, "county.op", "selfcheck", "run")
    make_account(ctx, "far.op", "operator", ["110101"], real_name="外县")
    ok_as(run, "far.op", "selfcheck", "export", "--report", "1", "--out", str(tmp_path),
          "--region", "430621")  # fmt: skip
    with ctx.sessions() as s:
        exported = s.scalars(
            select(AuditRecord).where(AuditRecord.action == "selfcheck.export")
        ).one()
    assert exported.actor == "far.op"
    assert exported.detail is not None and exported.detail["regions"] == []
    assert exported.detail["findings"] == 0


def test_region_narrowing() -> None:
    assert narrowed(None, None) is None
    assert narrowed(None, ["4306"]) == ["4306"]
    assert narrowed(("430621",), None) == ["430621"]
    assert narrowed(("430621",), ["4306"]) == ["430621"]
    assert narrowed(("430621",), ["430621101"]) == ["430621101"]
    assert narrowed(("430621",), ["110101"]) == []


def test_errors_are_explained(ctx: Context, run: CliRunner, tmp_path: Path) -> None:
    missing = invoke_as(run, "aud", "selfcheck", "export", "--report", "9", "--out", str(tmp_path))
    assert missing.exit_code == 1 and "自查报告 9 不存在" in missing.output
    backwards = invoke_as(
        run, "county.op", "selfcheck", "run", "--since", "2026-02-01", "--until", "2026-01-01"
    )
    assert backwards.exit_code == 1 and "开始日期晚于结束日期" in backwards.output
    bad_day = run.invoke(app, ["selfcheck", "run", "--since", "2026-13-01"])
    assert bad_day.exit_code == 2
