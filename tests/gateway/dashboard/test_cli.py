"""``gateway accounts create|unlock`` through the real command line: the first
administrator without logging in, every later account by a logged-in administrator."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.cli import app
from gateway.context import Context
from gateway.dashboard.models import OperatorAccount
from gateway.rework.models import AuditRecord
from tests.gateway.cli_support import cli_runner, invoke_as, make_account, ok_as
from tests.gateway.dashboard.support import DashClient

NEW_OP = ["accounts", "create", "--username", "li.op", "--name", "李经办", "--role", "operator",
          "--region", "430621101"]  # fmt: skip


@pytest.fixture
def run(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    return cli_runner(ctx, monkeypatch)


def _created_by(ctx: Context, username: str) -> str:
    with ctx.sessions() as s:
        found = s.scalar(select(OperatorAccount).where(OperatorAccount.username == username))
        assert found is not None
        return found.created_by


def test_the_first_administrator_then_accounts_by_an_administrator(
    ctx: Context, run: CliRunner
) -> None:
    # no administrator yet: only an administrator may be created, without logging in
    early = run.invoke(app, NEW_OP)
    assert early.exit_code == 1 and "administrator_first" in early.output
    first = run.invoke(
        app, ["accounts", "create", "--username", "Ｒｏｏｔ", "--name", "赵管理", "--role", "admin"]
    )
    assert first.exit_code == 0, first.output
    password = re.search(r"shown once\): (\S+)", first.stdout)
    assert password and "created root" in first.stdout
    assert _created_by(ctx, "root") == "cli-bootstrap"
    # from now on an administrator logs in
    anonymous = run.invoke(app, NEW_OP)
    assert anonymous.exit_code == 2 and "account_required" in anonymous.output
    make_account(ctx, "boss", "admin", [], real_name="钱管理")
    make_account(ctx, "sup", "supervisor", ["430621"], real_name="钱复核")
    refused = invoke_as(run, "sup", *NEW_OP)
    assert refused.exit_code == 1 and "只有系统管理员可以管理账户" in refused.output
    ok_as(run, "boss", *NEW_OP)
    assert _created_by(ctx, "li.op") == "boss"
    twin = invoke_as(run, "boss", *NEW_OP[:3], "ＬＩ.ＯＰ", *NEW_OP[4:])
    assert twin.exit_code == 2 and "username_taken" in twin.output
    hidden = invoke_as(run, "boss", *NEW_OP[:3], "li.op\u200b2", *NEW_OP[4:])
    assert hidden.exit_code == 2 and "bad_username" in hidden.output
    free_text = run.invoke(app, [*NEW_OP, "--by", "张三"])
    assert free_text.exit_code == 2 and "--by 已停用" in free_text.output


def test_unlock_by_an_administrator(ctx: Context, run: CliRunner) -> None:
    make_account(ctx, "boss", "admin", [], real_name="钱管理")
    make_account(ctx, "op101", "operator", ["430621101"])
    client = DashClient(ctx)
    for _ in range(ctx.settings.dashboard_lockout_failures):
        location = client.login("op101", "Wrong-Pass-2026!").headers["location"]
    assert "error=locked" in location
    assert invoke_as(run, "op101", "accounts", "unlock", "op101").exit_code == 1
    assert "unlocked op101" in ok_as(run, "boss", "accounts", "unlock", "ＯＰ101")
    with ctx.sessions() as s:
        row = s.scalar(select(AuditRecord).where(AuditRecord.action == "account.unlock"))
        assert row is not None and (row.actor, row.target_id) == ("boss", "op101")
