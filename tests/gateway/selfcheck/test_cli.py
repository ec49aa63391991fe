"""``gateway selfcheck run|export`` through the real command line (typer)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from gateway.cli import app
from gateway.context import Context
from gateway.selfcheck.export import SUMMARY_SHEET
from tests.gateway.cli_support import cli_runner, invoke_ok
from tests.gateway.selfcheck.support import plant


@pytest.fixture
def run(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    return cli_runner(ctx, monkeypatch)


_ok = invoke_ok


def _json(output: str) -> Any:
    """The JSON document printed (the test process's log lines may come before it)."""
    lines = output.splitlines()
    return json.loads("\n".join(lines[lines.index("{") :]))


def test_run_and_export(ctx: Context, run: CliRunner, tmp_path: Path) -> None:
    planted = plant(ctx)
    out = _ok(run, "selfcheck", "run", "--operator", "审计员")
    assert "自查报告 1：" in out and "共 5 个疑点" in out
    assert "一个账户收到多人补贴（shared_account）：1" in out
    as_json = _json(_ok(run, "selfcheck", "run", "--operator", "审计员", "--json"))
    assert as_json["id"] == 2 and as_json["total"] == 5 and as_json["requested_by"] == "审计员"
    quiet = _json(
        _ok(run, "selfcheck", "run", "--since", "2020-01-01", "--until", "2020-12-31", "--json")
    )
    assert quiet["total"] == 0 and quiet["period_from"] == "2020-01-01"
    out = _ok(
        run, "selfcheck", "export", "--report", "1", "--out", str(tmp_path), "--operator", "李会计"
    )
    (written,) = tmp_path.glob("selfcheck-000001-*.xlsx")
    assert str(written) in out
    wb = load_workbook(io.BytesIO(written.read_bytes()))
    assert wb.sheetnames[0] == SUMMARY_SHEET and len(wb.sheetnames) == 6
    assert planted.people[0].account_no not in written.read_bytes().decode("latin-1")


def test_errors_are_explained(ctx: Context, run: CliRunner, tmp_path: Path) -> None:
    missing = run.invoke(
        app,
        ["selfcheck", "export", "--report", "9", "--out", str(tmp_path), "--operator", "李会计"],
    )
    assert missing.exit_code == 1 and "自查报告 9 不存在" in missing.output
    backwards = run.invoke(
        app, ["selfcheck", "run", "--since", "2026-02-01", "--until", "2026-01-01"]
    )
    assert backwards.exit_code == 1 and "开始日期晚于结束日期" in backwards.output
    bad_day = run.invoke(app, ["selfcheck", "run", "--since", "2026-13-01"])
    assert bad_day.exit_code == 2
