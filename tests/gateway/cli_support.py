"""Running ``gateway`` commands in tests (typer's runner), on a test context's database."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.context import Context


def cli_runner(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner whose commands build their context from the environment, pointed at
    ``ctx``'s database and bank profiles."""
    monkeypatch.setenv("GATEWAY_ENVIRONMENT", "test")
    monkeypatch.setenv("GATEWAY_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("GATEWAY_BANK_PROFILES_FILE", str(ctx.settings.bank_profiles_file))
    # the commands configure logging for a process; keep the test process's as it is
    monkeypatch.setattr("gateway.kit.logging.configure_logging", lambda **_: None)
    return CliRunner()


def invoke_ok(runner: CliRunner, *args: str) -> str:
    """The output of a command that must succeed."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output
