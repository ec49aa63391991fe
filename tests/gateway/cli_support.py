"""Running ``gateway`` commands in tests (typer's runner), on a test context's database,
logged in with dashboard accounts as the operators' commands require."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from typer.testing import CliRunner, Result

from gateway.cli import app
from gateway.context import Context
from gateway.dashboard.accounts import create_account
from gateway.kit.db import session_scope

PASSWORD = "Cli-Pass-2026!x"


def cli_runner(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner whose commands build their context from the environment, pointed at
    ``ctx``'s database and bank profiles."""
    monkeypatch.setenv("GATEWAY_ENVIRONMENT", "test")
    monkeypatch.setenv("GATEWAY_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("GATEWAY_BANK_PROFILES_FILE", str(ctx.settings.bank_profiles_file))
    monkeypatch.setenv("GATEWAY_DASHBOARD_ARGON2_PARAMETERS", "CHEAPEST")
    monkeypatch.delenv("GATEWAY_ACCOUNT_PASSWORD", raising=False)
    # the commands configure logging for a process; keep the test process's as it is
    monkeypatch.setattr("gateway.kit.logging.configure_logging", lambda **_: None)
    return CliRunner()


def make_account(
    ctx: Context,
    username: str,
    role: str,
    regions: Sequence[str] = ("430621",),
    *,
    real_name: str = "测试人员",
    password: str = PASSWORD,
) -> None:
    """A dashboard account that may log in at once (its password need not be changed)."""
    with session_scope(ctx.sessions) as s:
        create_account(
            s, ctx.settings, username=username, real_name=real_name, role=role,
            regions=list(regions) if role != "auditor" else [], password=password,
            created_by="test", must_change_password=False,
        )  # fmt: skip


def invoke_as(runner: CliRunner, account: str, *args: str, password: str = PASSWORD) -> Result:
    """Run a command as ``account``, typing its password at the hidden prompt."""
    return runner.invoke(app, [*args, "--account", account], input=password + "\n")


def ok_as(runner: CliRunner, account: str, *args: str) -> str:
    """The standard output of a command run as ``account`` that must succeed."""
    result = invoke_as(runner, account, *args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def invoke_ok(runner: CliRunner, *args: str) -> str:
    """The output of a command that must succeed."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output
